"""Configuration: defaults, then instance/config.py, then FLASKR_* environment variables."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask

#: Secret keys that are known to the world and so are no secret at all.
INSECURE_KEYS = {"", "dev", "secret", "changeme", "change-me"}

KEY_LENGTH = 32
KEY_VARIETY = 8
#: Words of placeholders and made-up keys (CHANGE_ME_TO_A_RANDOM_SECRET_KEY,
#: my-super-secret-key-for-flaskr-2026): a key holding one, in any case, is refused.
#: See check_secret_key for what that costs random keys.
PLACEHOLDER_WORDS = (
    "change", "secret", "passwd", "sample", "random", "flaskr",
    "example", "replace", "default",
    "generate", "password", "insecure",
    "placeholder",
)  # fmt: skip
#: What separates the words or letters of a made-up key (" a b c d", "my-key-for-this").
SEPARATORS = frozenset(" \t\n-_.,:;/|")

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class ConfigError(RuntimeError):
    """The configuration cannot run in production; the message says how to fix it."""


def load(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Fill ``app.config`` from defaults, the instance file, the environment or ``test_config``."""
    app.config.from_mapping(
        SECRET_KEY=None,
        # A file holding the key (Docker secrets); systemd's credential is read when unset.
        SECRET_KEY_FILE=None,
        DATABASE_URL=None,
        # Forms may carry a 5 MB image plus the text fields around it.
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES + 256 * 1024,
        MAX_IMAGE_BYTES=MAX_UPLOAD_BYTES,
        # What the images of one account's posts may hold in all (images.check_quota).
        IMAGE_BYTES_PER_USER=50 * 1024 * 1024,
        # What one upload may cost (flaskr/images.py; docs/security.md has the measured costs):
        # the pixels are bounded so that a re-encode fits the CPU budget in every format;
        # progressive JPEGs go over every pixel once per scan; the decoding child stops at
        # IMAGE_CPU_SECONDS of CPU or IMAGE_MEMORY_BYTES of memory.
        MAX_IMAGE_PIXELS=12_000_000,
        MAX_JPEG_SCANS=32,
        IMAGE_CPU_SECONDS=1,
        IMAGE_MEMORY_BYTES=512 * 1024 * 1024,
        POSTS_PER_PAGE=5,
        # A post's page shows this many comments, the newest first, older ones a page further.
        COMMENTS_PER_PAGE=20,
        # Pages kept per worker for visitors who are not logged in (page_cache.py): at most
        # this many, holding at most these bytes; 0: none.
        PAGE_CACHE_SIZE=256,
        PAGE_CACHE_BYTES=8 * 1024 * 1024,
        PROXY_FIX=0,
        # Host names the site answers to (Flask's setting); None: any.
        TRUSTED_HOSTS=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # A session cookie is refused this long after it was issued (seconds; Flask: 31 days).
        PERMANENT_SESSION_LIFETIME=7 * 24 * 3600,
        WTF_CSRF_TIME_LIMIT=None,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        # Login throttling (throttle.py): failed logins allowed within the window from a
        # browser that logged in to the account before, and else per account from one
        # address, per address, per account from everywhere and for the whole site.
        LOGIN_WINDOW_SECONDS=15 * 60,
        LOGIN_FAILURES_PER_DEVICE=5,
        LOGIN_FAILURES_PER_ACCOUNT_ADDRESS=5,
        LOGIN_FAILURES_PER_ADDRESS=20,
        LOGIN_FAILURES_PER_USER=20,
        LOGIN_FAILURES_GLOBAL=1000,
        # Registration throttling (throttle.py): accounts made within the window from one
        # address (an IPv6 /64 is one address), one network (an IPv4 /24, an IPv6 /48), and
        # on the whole site.
        REGISTRATION_WINDOW_SECONDS=3600,
        REGISTRATIONS_PER_ADDRESS=20,
        REGISTRATIONS_PER_NETWORK=60,
        REGISTRATIONS_GLOBAL=1000,
        # What rendering posts, comments, previews and images may cost (render_budget.py):
        # CPU milliseconds within the window, for each account and for all of them.
        RENDER_WINDOW_SECONDS=60,
        RENDER_CPU_MS_PER_USER=4000,
        RENDER_CPU_MS_SITE=30000,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        # Prometheus metrics at /metrics: off by default, then only for these addresses.
        METRICS=False,
        METRICS_ALLOW=["127.0.0.1", "::1"],
        # The operator page /admin/isolation: only JSON true turns it on.
        ISOLATION_PAGE=False,
        # Where `flask backup` writes; None: backups/ in the instance folder.
        BACKUP_FOLDER=None,
        # No longer read: a name in it made an admin of whoever registered it. Set, it stops
        # the server from starting, saying to use `flask make-admin` instead.
        ADMINS=None,
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env("FLASKR")
        if "FLASKR_SECRET_KEY" in os.environ:
            # from_prefixed_env parses values as JSON: a key of digits would become a number.
            app.config["SECRET_KEY"] = os.environ["FLASKR_SECRET_KEY"]
    else:
        app.config.from_mapping(test_config)

    try:
        _check(app, test_config)
    except ConfigError as e:
        if click.get_current_context(silent=True) is not None:
            # A command, `flask run` included: one line saying why, not a traceback.
            from flaskr.logs import fail

            fail(app, str(e))
        raise
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url(app)


def _check(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Refuse settings the app cannot run with, each with a message saying how to fix it."""
    check_types(app.config)
    _merge_engine_options(app)
    _load_secret_key(app)
    if app.config["ADMINS"] and not _is_cli_command():
        raise ConfigError(
            "flaskr: FLASKR_ADMINS no longer makes anyone an admin (anyone could register a "
            "name it lists). Remove it and run `flask --app flaskr make-admin NAME` instead."
        )
    # Only the test suite's own apps may sign with a made-up key: DEBUG or TESTING set in the
    # environment of a real server must not turn the check off.
    suite = test_config is not None and bool(test_config.get("TESTING"))
    if not (suite or _is_cli_command()):
        check_secret_key(app.config["SECRET_KEY"])


#: Settings that are whole numbers, and the least each may be.
WHOLE_NUMBERS = {
    "MAX_CONTENT_LENGTH": 1,
    "MAX_IMAGE_BYTES": 1,
    "MAX_IMAGE_PIXELS": 1,
    "MAX_JPEG_SCANS": 1,
    "IMAGE_CPU_SECONDS": 0,
    "IMAGE_MEMORY_BYTES": 1,
    "POSTS_PER_PAGE": 1,
    "COMMENTS_PER_PAGE": 1,
    "PAGE_CACHE_SIZE": 0,
    "PAGE_CACHE_BYTES": 0,
    "PROXY_FIX": 0,
    "LOGIN_WINDOW_SECONDS": 1,
    "LOGIN_FAILURES_PER_DEVICE": 1,
    "LOGIN_FAILURES_PER_ACCOUNT_ADDRESS": 1,
    "LOGIN_FAILURES_PER_ADDRESS": 1,
    "LOGIN_FAILURES_PER_USER": 1,
    "LOGIN_FAILURES_GLOBAL": 1,
    "REGISTRATION_WINDOW_SECONDS": 1,
    "REGISTRATIONS_PER_ADDRESS": 1,
    "REGISTRATIONS_PER_NETWORK": 1,
    "REGISTRATIONS_GLOBAL": 1,
    "RENDER_WINDOW_SECONDS": 1,
    "RENDER_CPU_MS_PER_USER": 1,
    "RENDER_CPU_MS_SITE": 1,
    "IMAGE_BYTES_PER_USER": 1,
}
#: Settings that hold one of a few words.
CHOICES = {"LOG_FORMAT": ("json", "text")}
#: Settings that are lists of strings (None allowed where Flask takes None to mean "any").
STRING_LISTS = {"METRICS_ALLOW": False, "TRUSTED_HOSTS": True}


def _invalid(name: str, wanted: str, value: Any) -> ConfigError:
    return ConfigError(f"flaskr: FLASKR_{name} must be {wanted}, not {value!r}.")


def check_types(settings: dict[str, Any]) -> None:
    """Refuse a value of the wrong kind when the app starts, not in every request later.

    Environment variables are read as JSON when they parse and as text otherwise, so a typo
    (``FLASKR_POSTS_PER_PAGE=abc``) would otherwise start a server whose pages all fail.
    """
    for name, least in WHOLE_NUMBERS.items():
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise _invalid(name, f"a whole number of at least {least}", value)
    lifetime = settings["PERMANENT_SESSION_LIFETIME"]
    if not isinstance(lifetime, timedelta) and (
        isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1
    ):
        raise _invalid("PERMANENT_SESSION_LIFETIME", "a number of seconds", lifetime)
    if settings["METRICS"] not in (True, False):  # JSON true, false, 1 or 0; "False" is text
        raise _invalid("METRICS", "true or false", settings["METRICS"])
    for name, words in CHOICES.items():
        if settings[name] not in words:
            raise _invalid(name, " or ".join(words), settings[name])
    level = settings["LOG_LEVEL"]
    if not (
        (isinstance(level, str) and level in logging.getLevelNamesMapping())
        or (isinstance(level, int) and not isinstance(level, bool))
    ):
        raise _invalid("LOG_LEVEL", "a level such as DEBUG, INFO or WARNING", level)
    for name, none_allowed in STRING_LISTS.items():
        value = settings[name]
        if value is None and none_allowed:
            continue
        if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            raise _invalid(name, 'a JSON list of strings, for example ["a", "b"]', value)


def _merge_engine_options(app: Flask) -> None:
    """Add the engine options given to the defaults rather than replace them.

    FLASKR_SQLALCHEMY_ENGINE_OPTIONS='{"pool_size": 5}' keeps pre-ping on; anything but a JSON
    object is refused.
    """
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    if not isinstance(options, dict):
        raise ConfigError(
            "flaskr: SQLALCHEMY_ENGINE_OPTIONS must be a JSON object, for example "
            """FLASKR_SQLALCHEMY_ENGINE_OPTIONS='{"pool_size": 5, "pool_recycle": 1800}'"""
        )
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, **options}


def _load_secret_key(app: Flask) -> None:
    """Read the key from SECRET_KEY_FILE (Docker secrets, systemd credentials) when one is named."""
    path = app.config["SECRET_KEY_FILE"] or _credential_path()
    if path and not app.config["SECRET_KEY"]:
        try:
            app.config["SECRET_KEY"] = Path(path).read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"flaskr: cannot read the secret key file {path} ({e.strerror}) as uid "
                f"{os.getuid()}, the user this app runs as. Fix: make it that user's and "
                f"readable by it alone, `chown {os.getuid()} {path} && chmod 0400 {path}` "
                "(0600 to let it rewrite the file), in a folder it may enter; or name another "
                "file in FLASKR_SECRET_KEY_FILE."
            ) from e


def _credential_path() -> str | None:
    """The key systemd hands over with LoadCredential=secret_key, if it did."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and os.path.exists(os.path.join(directory, "secret_key")):
        return os.path.join(directory, "secret_key")
    return None


def check_secret_key(key: Any) -> None:
    """Refuse to serve with a missing, well-known or guessable key: sessions could be forged.

    A real key has at least KEY_LENGTH characters, KEY_VARIETY of them different, and is not
    a run or a sequence (``aaaa...``, ``0123456789abcdef...``, ``abcdefghij123456...``, also
    once its separators are left out: `` a b c d ...``): no more than half of its
    neighbouring characters are equal or one apart. Nor is it mostly one character (half of
    it or more) or separators (a third or more), nor does it hold a placeholder's word
    (PLACEHOLDER_WORDS: ``CHANGE_ME...``, ``...secret-key...``). ``secrets.token_hex(32)`` is
    a key.

    What the words cost random keys: none can occur in a token_hex key (each has a letter
    after f). In a token_urlsafe(32) key, 43 characters of 64 (1.3 of them ``-`` or ``_``,
    left out before the words are looked for), a letter matches a word's one in either case
    with 2/62 = 1/31: a 6-letter word lies at one of about 37 places with 37 / 31**6 = 4.1e-8,
    a 7-letter one with 1.3e-9. These 6 of 6 letters, 3 of 7 and 4 longer ones refuse at
    most 2.5e-7 of such keys, 1 in 4 million; a single 5-letter word would cost 1.3e-6.
    None of 2,000,000 token_urlsafe(32) and 1,000,000 token_hex(32) keys was refused. The
    other rules cost less: half of a token_hex(16) key one character, 2e-10; a third of a
    token_urlsafe(32) key separators, 2e-12.
    """
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    if not isinstance(key, str) or key.strip().lower() in INSECURE_KEYS or _guessable(key):
        raise ConfigError(
            "flaskr: refusing to start without a real secret key (at least "
            f"{KEY_LENGTH} characters, {KEY_VARIETY} of them different, not a run or a sequence "
            "such as 0123... or abcd..., not mostly one character or separators, and no "
            "placeholder's word such as change, secret or example). Set FLASKR_SECRET_KEY to "
            "a long random string, or FLASKR_SECRET_KEY_FILE to a file holding one, for "
            "example:\n"
            "  python3 -c 'import secrets; print(secrets.token_hex(32))' > secret_key\n"
            "  export FLASKR_SECRET_KEY_FILE=$PWD/secret_key"
        )


def _guessable(key: str) -> bool:
    """The key breaks one of check_secret_key's rules."""
    if len(key.strip()) < KEY_LENGTH or len(set(key)) < KEY_VARIETY:
        return True
    bare = "".join(c for c in key if c not in SEPARATORS)
    most = max(key.count(c) for c in set(key))
    return (
        _mostly_a_sequence(key)
        or _mostly_a_sequence(bare)
        or 2 * most >= len(key)
        or 3 * (len(key) - len(bare)) >= len(key)
        or any(word in bare.lower() for word in PLACEHOLDER_WORDS)
    )


def _mostly_a_sequence(key: str) -> bool:
    """More than half of the neighbouring characters are equal or one apart.

    About 1 pair in 6 is in a random hex key.
    """
    steps = [abs(ord(b) - ord(a)) <= 1 for a, b in zip(key, key[1:], strict=False)]
    return sum(steps) * 2 > len(steps)


def _is_cli_command() -> bool:
    """True inside a ``flask`` command other than ``run``: it serves no sessions, needs no key."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name != "run"


def database_url(app: Flask) -> str:
    """FLASKR_DATABASE_URL, else DATABASE_URL, else an SQLite file in the instance folder."""
    url = app.config["DATABASE_URL"] or os.environ.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(app.instance_path, "flaskr.sqlite")
    return with_driver(url)


def with_driver(url: str) -> str:
    """Hosting platforms hand out postgres:// URLs; SQLAlchemy wants a driver named."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
