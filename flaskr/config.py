"""Configuration: defaults, then instance/config.py, then FLASKR_* environment variables.

Every setting is declared once, in ``SETTINGS``: its default, the kind of value it takes,
and what it means. ``load`` fills the app's config from it, ``check_types`` checks what was
set against it, and the settings tables in README.md and docs/security.md are rendered from
it (``settings_table``; ``scripts/settings-table`` rewrites them, tests/test_docs.py checks).
"""

from __future__ import annotations

import logging
import os
from copy import deepcopy
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import click
from flask import Flask

from flaskr import db, mail, secret_key

MAX_UPLOAD_BYTES = 5 * 1024 * 1024

#: What check_types accepts: "whole" a whole number of at least ``least``, "seconds" that or
#: a timedelta, "flag" JSON true or false (or 1, 0), "choice" one of ``choices``, "level" a
#: logging level, "strings" a list of strings, "object" a JSON object; "any" is not checked
#: (the secret key has checks of its own, and Flask's settings are Flask's).
Kind = Literal["any", "whole", "seconds", "flag", "choice", "level", "strings", "object"]


@dataclass(frozen=True)
class Setting:
    """One setting: the app reads it by name, check_types checks it, the tables show it.

    A setting whose default is None may also be set to None (null). ``env_only`` marks those
    read before instance/config.py is (by gunicorn, or to find that file): only the
    environment sets them. ``guide`` is the document whose table lists it; ``shown`` is the
    default as that table shows it, where the value alone would mislead.
    """

    name: str
    default: Any
    meaning: str
    kind: Kind = "any"
    least: int = 0
    choices: tuple[str, ...] = ()
    env_only: bool = False
    guide: str = "README.md"
    shown: str = ""


#: The limits an operator has no reason to change are listed in docs/security.md.
LIMITS = "docs/security.md"
ACCOUNTS = "[docs/security.md](docs/security.md#accounts-sessions-and-lock-outs)"
RENDERS = "[docs/security.md](docs/security.md#a-registered-user-who-wants-the-site-down)"

#: Every setting, once. Flask's own (SESSION_COOKIE_*, ...) keep Flask's meaning.
SETTINGS = (
    Setting("SECRET_KEY", None,
            "signs sessions; the app refuses to start without a real one (32+ characters, 8+ "
            "different, not a run or a sequence such as `0123…`), also when `FLASKR_DEBUG` or "
            "`FLASKR_TESTING` is set"),
    Setting("SECRET_KEY_FILE", None,
            "a file holding the key (Docker secrets); systemd's `LoadCredential=secret_key` is "
            "read too"),
    Setting("DATABASE_URL", None,
            "`postgresql://user:pass@host/db` for PostgreSQL; unset, `DATABASE_URL` is read "
            "(the app adds its driver; the Kubernetes backup's plain `pg_dump` reads the same "
            "Secret and rejects `postgresql+psycopg://`)",
            shown="`sqlite:///instance/flaskr.sqlite`"),
    Setting("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True},
            'JSON object added to the defaults, e.g. `{"pool_size": 5, "pool_recycle": 1800}`',
            kind="object", shown='`{"pool_pre_ping": true}`; on PostgreSQL also '
            '`"connect_args": {"connect_timeout": 5, "tcp_user_timeout": 5000}`'),
    Setting("INSTANCE_PATH", None, "where the SQLite database and the secret key live",
            env_only=True, shown="`./instance` beside the package"),
    Setting("MIGRATE_ON_START", 0,
            "`1`: apply migrations before gunicorn's workers start (the image sets it)",
            env_only=True),
    Setting("PROXY_FIX", 0, "how many proxies to trust for `X-Forwarded-*` (1 behind nginx)",
            kind="whole"),
    Setting("TRUSTED_HOSTS", None,
            'JSON list of the host names the site answers to, e.g. `["blog.example.com"]`; '
            "any other `Host` header is a 400, so no feed id or redirect is built from a "
            "forged one", kind="strings", shown="none (any)"),
    Setting("POSTS_PER_PAGE", 5, "posts on each page of the index", kind="whole", least=1),
    Setting("COMMENTS_PER_PAGE", 20,
            "comments on each page of a post, the newest first (each page renders only its "
            "own)", kind="whole", least=1),
    Setting("PAGE_CACHE_SIZE", 256,
            "pages each worker keeps for visitors who are not logged in, checked against the "
            "database on every request so never stale; `0` turns the cache off "
            "([docs/performance.md](docs/performance.md))", kind="whole"),
    Setting("PAGE_CACHE_BYTES", 8 * 1024 * 1024,
            "the bytes those pages may hold (a page over an eighth of that is never kept); "
            "`0` turns the cache off", kind="whole"),
    Setting("POST_CACHE_BYTES", 2 * 1024 * 1024,
            "the bytes of listed posts' HTML each worker keeps, so a listing renders only new "
            "or changed posts; `0` keeps none", kind="whole"),
    Setting("URL_CACHE_BYTES", 256 * 1024,
            "the bytes of links each worker keeps, each built once; `0` keeps none",
            kind="whole"),
    Setting("COOKIE_CACHE_BYTES", 256 * 1024,
            "the bytes of session cookies each worker keeps once their signature is verified "
            "(each still expires); `0` keeps none", kind="whole"),
    Setting("LOG_FORMAT", "json", "`text` for plain logs, gunicorn's own lines included",
            kind="choice", choices=("json", "text"), env_only=True),
    Setting("LOG_LEVEL", "INFO", "the app's log level (`DEBUG`, `WARNING`, ...)", kind="level"),
    Setting("METRICS", False,
            "Prometheus `/metrics`, summed over all gunicorn workers (gunicorn makes the "
            "folder where they are summed)", kind="flag", env_only=True),
    Setting("METRICS_ALLOW", ["127.0.0.1", "::1"],
            "the addresses `/metrics` answers; any other gets a 404", kind="strings"),
    Setting("ISOLATION_PAGE", False,
            "`true`: the operator page `/admin/isolation`, for admins (`flask make-admin`) "
            "only"),
    Setting("PERMANENT_SESSION_LIFETIME", 7 * 24 * 3600,
            "seconds after login that a session cookie is refused "
            "([docs/security.md](docs/security.md))", kind="seconds", least=1),
    Setting("REQUIRE_2FA_FOR_ADMINS", True,
            "`true`: an admin without a second factor is sent to enrol one before any admin "
            f"page opens ({ACCOUNTS})", kind="flag"),
    Setting("LOGIN_WINDOW_SECONDS", 15 * 60,
            f"the window in which failed logins are counted; past a limit, 429 ({ACCOUNTS})",
            kind="whole", least=1),
    Setting("LOGIN_FAILURES_PER_DEVICE", 5,
            "failed logins allowed within the window from a browser that logged in to the "
            "account before", kind="whole", least=1),
    Setting("LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", 5,
            "failed logins allowed within the window for one account from one address",
            kind="whole", least=1),
    Setting("LOGIN_FAILURES_PER_ADDRESS", 20,
            "failed logins allowed within the window from one address", kind="whole", least=1),
    Setting("LOGIN_FAILURES_PER_USER", 20,
            "failed logins allowed within the window for one account from everywhere",
            kind="whole", least=1),
    Setting("LOGIN_FAILURES_GLOBAL", 1000,
            "failed logins allowed within the window on the whole site", kind="whole", least=1),
    Setting("REGISTRATION_WINDOW_SECONDS", 3600,
            f"the window in which new accounts are counted; past a limit, 429 ({ACCOUNTS})",
            kind="whole", least=1),
    Setting("REGISTRATIONS_PER_ADDRESS", 20,
            "accounts made within the window from one address (an IPv6 /64 is one)",
            kind="whole", least=1),
    Setting("REGISTRATIONS_PER_NETWORK", 60,
            "accounts made within the window from one network (an IPv4 /24, an IPv6 /48)",
            kind="whole", least=1),
    Setting("REGISTRATIONS_GLOBAL", 1000, "accounts made within the window on the whole site",
            kind="whole", least=1),
    Setting("MAIL_URL", None,
            "where mail goes: `smtp://host:587` (STARTTLS required) or `smtps://host:465` "
            "(TLS from the start), with the login name if any (`smtp://name@host:587`), never "
            "the password; unset, the site sends no mail and says so "
            "([docs/operating.md](docs/operating.md#mail))"),
    Setting("SITE_URL", None,
            "the site's address as mailed links and each page's canonical link show it, e.g. "
            "`https://blog.example.com`; needed with `FLASKR_MAIL_URL` (a link built from a "
            "request's `Host` header could point anywhere); also the name and origin passkeys "
            "are bound to (unset: the request's host); unset, pages name no canonical address"),
    Setting("MAIL_PASSWORD_FILE", None,
            "a file holding the SMTP password; systemd's `LoadCredential=mail_password` is "
            "read too"),
    Setting("MAIL_FROM", None, "the sender address, e.g. `blog@example.com`; needed with "
            "`FLASKR_MAIL_URL`"),
    Setting("MAIL_TIMEOUT_SECONDS", 30, "how long `flask send-mail` waits on the SMTP server",
            kind="whole", least=1),
    Setting("MAIL_POLL_SECONDS", 5, "how often `flask send-mail` looks for mail to send",
            kind="whole", least=1),
    Setting("MAIL_RETRY_SECONDS", 60,
            "the wait after a failed attempt, doubled after each one (up to an hour)",
            kind="whole", least=1),
    Setting("MAIL_ATTEMPTS", 20,
            "attempts before a message is given up (a permanent refusal, 5xx, gives up at "
            "once)", kind="whole", least=1),
    Setting("PASSWORD_RESET_SECONDS", 3600, "how long a password reset link works",
            kind="whole", least=60),
    Setting("MAIL_WINDOW_SECONDS", 3600,
            f"the window in which requests that send mail are counted ({ACCOUNTS})",
            kind="whole", least=1),
    Setting("MAIL_PER_ACCOUNT", 3,
            "mails one account (and one recipient address) may be sent within the window; "
            "more are dropped, answered the same", kind="whole", least=1),
    Setting("MAIL_REQUESTS_PER_ADDRESS", 10,
            "requests that may send mail from one client address within the window; past it, "
            "429", kind="whole", least=1),
    Setting("MAIL_REQUESTS_GLOBAL", 500,
            "requests that may send mail on the whole site within the window; past it, 429",
            kind="whole", least=1),
    Setting("IMAGE_BYTES_PER_USER", 50 * 1024 * 1024,
            "what the images of one account's posts may hold in all; another upload is then "
            "a form error", kind="whole", least=1),
    Setting("RENDER_WINDOW_SECONDS", 60,
            f"the window in which rendering's CPU time is summed; past a budget, 429 ({RENDERS})",
            kind="whole", least=1),
    Setting("RENDER_CPU_MS_PER_USER", 4000,
            "CPU milliseconds rendering one account's posts, comments, previews and images may "
            "take within the window", kind="whole", least=1),
    Setting("RENDER_CPU_MS_SITE", 30000,
            "the same for all accounts together; past it, the accounts that spent a quarter "
            "of their own wait", kind="whole", least=1),
    Setting("BACKUP_FOLDER", None,
            "where `flask backup` writes and `flask restore` keeps the database it replaces "
            "([docs/backup.md](docs/backup.md))", shown="`backups/` in the instance folder"),
    Setting("ADMINS", None,
            "no longer read: set, the app refuses to start (anyone could register a name it "
            "listed); use `flask make-admin NAME`"),
    # What one request or upload may cost (flaskr/images.py; docs/security.md has the
    # measured costs): the pixels are bounded so that a re-encode fits the CPU budget in
    # every format; progressive JPEGs go over every pixel once per scan.
    Setting("MAX_CONTENT_LENGTH", MAX_UPLOAD_BYTES + 256 * 1024,
            "a request's body: an image plus the form fields around it", kind="whole",
            least=1, guide=LIMITS, shown="`5505024` (5 MB + 256 KB)"),
    Setting("MAX_IMAGE_BYTES", MAX_UPLOAD_BYTES, "an uploaded image", kind="whole", least=1,
            guide=LIMITS),
    Setting("MAX_IMAGE_PIXELS", 12_000_000, "an image's width × height, read from its header",
            kind="whole", least=1, guide=LIMITS),
    Setting("MAX_JPEG_SCANS", 32, "a progressive JPEG's scans, each a full decode pass",
            kind="whole", least=1, guide=LIMITS),
    Setting("IMAGE_CPU_SECONDS", 1,
            "CPU seconds of the child process that decodes and re-encodes an upload",
            kind="whole", guide=LIMITS),
    Setting("IMAGE_MEMORY_BYTES", 512 * 1024 * 1024,
            "memory of the child process that decodes and re-encodes an upload", kind="whole",
            least=1, guide=LIMITS),
    Setting("SESSION_COOKIE_HTTPONLY", True, "scripts cannot read the session cookie",
            guide=LIMITS),
    Setting("SESSION_COOKIE_SAMESITE", "Lax", "other sites' forms do not send the session "
            "cookie", guide=LIMITS),
    Setting("WTF_CSRF_TIME_LIMIT", None,
            "a form's token lasts as long as its session, so a long post is never lost to a "
            "timeout", guide=LIMITS),
)  # fmt: skip


class ConfigError(RuntimeError):
    """The configuration cannot run in production; the message says how to fix it."""


def load(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Fill ``app.config`` from defaults, the instance file, the environment or ``test_config``."""
    # Copies: an app that changes a list or dict it was given changes no other app's.
    app.config.from_mapping({setting.name: deepcopy(setting.default) for setting in SETTINGS})
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
    app.config["SQLALCHEMY_DATABASE_URI"] = db.database_url(app)


def _check(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Refuse settings the app cannot run with, each with a message saying how to fix it."""
    check_types(app.config)
    _merge_engine_options(app)
    _load_secret_key(app)
    if problem := mail.settings_problem(app.config):
        raise ConfigError(problem)
    site = app.config["SITE_URL"]
    if site and (urlsplit(str(site)).scheme not in ("http", "https") or "?" in str(site)):
        raise ConfigError("flaskr: FLASKR_SITE_URL must be https://NAME (or http://NAME).")
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


def _invalid(name: str, wanted: str, value: Any) -> ConfigError:
    return ConfigError(f"flaskr: FLASKR_{name} must be {wanted}, not {value!r}.")


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def check_types(settings: dict[str, Any]) -> None:
    """Refuse a value of the wrong kind when the app starts, not in every request later.

    Environment variables are read as JSON when they parse and as text otherwise, so a typo
    (``FLASKR_POSTS_PER_PAGE=abc``) would otherwise start a server whose pages all fail.
    """
    for setting in SETTINGS:
        name, value = setting.name, settings[setting.name]
        if value is None and setting.default is None:
            continue
        if setting.kind == "whole" and not _whole(value, setting.least):
            raise _invalid(name, f"a whole number of at least {setting.least}", value)
        if setting.kind == "seconds" and not (
            isinstance(value, timedelta) or _whole(value, setting.least)
        ):
            raise _invalid(name, "a number of seconds", value)
        if setting.kind == "flag" and value not in (True, False):  # "False" is text: refused
            raise _invalid(name, "true or false", value)
        if setting.kind == "choice" and value not in setting.choices:
            raise _invalid(name, " or ".join(setting.choices), value)
        if setting.kind == "level" and not (
            (isinstance(value, str) and value in logging.getLevelNamesMapping())
            or (isinstance(value, int) and not isinstance(value, bool))
        ):
            raise _invalid(name, "a level such as DEBUG, INFO or WARNING", value)
        if setting.kind == "strings" and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise _invalid(name, 'a JSON list of strings, for example ["a", "b"]', value)
        if setting.kind == "object" and not isinstance(value, dict):
            raise ConfigError(
                f"flaskr: {name} must be a JSON object, for example "
                f"""FLASKR_{name}='{{"pool_size": 5, "pool_recycle": 1800}}'"""
            )


def _merge_engine_options(app: Flask) -> None:
    """Add the engine options given to the defaults rather than replace them.

    FLASKR_SQLALCHEMY_ENGINE_OPTIONS='{"pool_size": 5}' keeps pre-ping on.
    """
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]  # a JSON object: check_types saw to it
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True, **options}


def _load_secret_key(app: Flask) -> None:
    """Read the key from SECRET_KEY_FILE (Docker secrets, systemd credentials) when one is named."""
    path = app.config["SECRET_KEY_FILE"] or secret_key.credential_path()
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


def check_secret_key(key: Any) -> None:
    """Refuse to serve with a missing, well-known or guessable key: sessions could be forged."""
    if not secret_key.is_real(key):
        raise ConfigError(
            "flaskr: refusing to start without a real secret key (at least "
            f"{secret_key.KEY_LENGTH} characters, {secret_key.KEY_VARIETY} of them different, "
            "not a run or a sequence such as 0123... or abcd..., not mostly one character or "
            "separators, and no placeholder's word such as change, secret or example). Set "
            "FLASKR_SECRET_KEY to a long random string, or FLASKR_SECRET_KEY_FILE to a file "
            "holding one, for example:\n"
            "  python3 -c 'import secrets; print(secrets.token_hex(32))' > secret_key\n"
            "  export FLASKR_SECRET_KEY_FILE=$PWD/secret_key"
        )


def _is_cli_command() -> bool:
    """True inside a ``flask`` command other than ``run``: it serves no sessions, needs no key."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name != "run"
