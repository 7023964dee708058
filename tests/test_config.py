"""Settings: defaults, the instance file and FLASKR_* variables, and what is refused at start."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import FlaskGroup

from flaskr import create_app
from flaskr.config import SETTINGS, ConfigError, check_secret_key
from flaskr.settings_table import with_settings_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "key",
    [
        None, "", "dev", "changeme", "short", " " * 16, "a" * 64, b"ab" * 20, "Change-Me",
        "0123456789abcdef", "abcdefghij123456",  # accepted before: 16 characters, 16 and 16 kinds
        "0123456789abcdef" * 2, "abcdefghij123456" * 2, "9876543210zyxwvu" * 2,  # sequences
        "x" * 16 + "9f86d081884c7d65",  # half a run
        pytest.param(secrets.token_hex(15), id="30-random-characters"),  # too short, however random
    ],
)  # fmt: skip
def test_refuses_to_start_without_a_real_secret_key(key) -> None:
    with pytest.raises(ConfigError, match="FLASKR_SECRET_KEY") as refused:
        create_app({"SECRET_KEY": key})
    assert "at least 32 characters" in str(refused.value)
    assert "secrets.token_hex(32)" in str(refused.value)  # how to make a good one


@pytest.mark.parametrize(
    "key",
    [
        "CHANGE_ME_TO_A_RANDOM_SECRET_KEY", "changeme-changeme-changeme-changeme",
        "my-super-secret-key-for-flaskr-2026", " a b c d e f g h i j k l m n o p q",
        "Replace This With Your Own Key 1987", "xK9#pLaCeHoLdEr!mQ7vZ2wR4tY8uJ3nB",
        "k-q-z-b-m-w-c-r-j-x-f-d-h-p-y-g-t",  # a third or more separators
        "a0a1a2a3a4a5a6a7a8a9aAaBaCaDaEaFaG",  # half of it one character
    ],
)  # fmt: skip
def test_refuses_placeholders_and_keys_mostly_one_character_or_separators(key) -> None:
    """Each passed: long enough, varied enough, no run or sequence next to next."""
    with pytest.raises(ConfigError, match="placeholder's word such as change") as refused:
        check_secret_key(key)
    assert "not mostly one character or separators" in str(refused.value)
    assert "secrets.token_hex(32)" in str(refused.value)


@pytest.mark.parametrize("setting", ["FLASKR_DEBUG", "FLASKR_TESTING"])
def test_debug_or_testing_from_the_environment_does_not_skip_the_key_check(
    monkeypatch, setting
) -> None:
    monkeypatch.setenv(setting, "true")
    monkeypatch.setenv("FLASKR_SECRET_KEY", "a" * 32)
    with pytest.raises(ConfigError, match="8 of them different"):
        create_app()
    monkeypatch.setenv("FLASKR_SECRET_KEY", "a-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    assert create_app().config[setting.removeprefix("FLASKR_")] is True


def test_secret_key_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", "31415926535897932384626433832795028")
    app = create_app()
    assert app.config["SECRET_KEY"] == "31415926535897932384626433832795028"  # digits: a string


def test_secret_key_file(tmp_path: Path, monkeypatch) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("k-9f86d081884c7d65a2f0e3b1c4d7e6f8" + "\n")
    monkeypatch.setenv("FLASKR_SECRET_KEY_FILE", str(key_file))
    assert create_app().config["SECRET_KEY"] == "k-9f86d081884c7d65a2f0e3b1c4d7e6f8"


def test_unreadable_secret_key_file_says_which(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="missing") as raised:
        create_app()
    message = str(raised.value)
    assert f"as uid {os.getuid()}" in message
    # Readable by the app's user alone: never a world-readable key (0444).
    path = tmp_path / "missing"
    assert f"`chown {os.getuid()} {path} && chmod 0400 {path}`" in message
    assert "0444" not in message


def test_secret_key_from_systemd_credential(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "secret_key").write_text("c-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert create_app().config["SECRET_KEY"] == "c-9f86d081884c7d65a2f0e3b1c4d7e6f8"


def test_instance_config_file(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text(
        "SECRET_KEY = 'i-9f86d081884c7d65a2f0e3b1c4d7e6f8'\nPOSTS_PER_PAGE = 3\n"
    )
    app = create_app()
    assert app.config["POSTS_PER_PAGE"] == 3


def test_default_database_is_sqlite_in_instance(tmp_path: Path) -> None:
    app = create_app({"SECRET_KEY": "x-9f86d081884c7d65a2f0e3b1c4d7e6f8"})
    expected = tmp_path / "instance" / "flaskr.sqlite"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{expected}"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgresql+psycopg://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
    ],
)
def test_database_url_from_environment(monkeypatch, given, expected) -> None:
    monkeypatch.setenv("DATABASE_URL", given)
    app = create_app({"SECRET_KEY": "x-9f86d081884c7d65a2f0e3b1c4d7e6f8"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == expected
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True


def test_flaskr_database_url_wins(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a/b")
    monkeypatch.setenv("FLASKR_DATABASE_URL", "sqlite:////tmp/x.sqlite")
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    assert create_app().config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////tmp/x.sqlite"


def test_engine_options_add_to_the_defaults(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    monkeypatch.setenv("FLASKR_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("FLASKR_SQLALCHEMY_ENGINE_OPTIONS", '{"pool_size": 5, "pool_recycle": 60}')
    options = create_app().config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options == {
        "pool_pre_ping": True,
        "pool_size": 5,
        "pool_recycle": 60,
        # A database gone away holds no worker for long: bounded connects and unanswered sends.
        "connect_args": {"connect_timeout": 5, "tcp_user_timeout": 5000},
    }


def test_the_connection_bounds_can_be_changed(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    monkeypatch.setenv("FLASKR_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv(
        "FLASKR_SQLALCHEMY_ENGINE_OPTIONS", '{"connect_args": {"connect_timeout": 20}}'
    )
    options = create_app().config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["connect_args"] == {"connect_timeout": 20, "tcp_user_timeout": 5000}


def test_engine_options_must_be_an_object(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    monkeypatch.setenv("FLASKR_SQLALCHEMY_ENGINE_OPTIONS", "pool_size=5")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        create_app()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_command_says_why_the_key_is_unreadable_in_one_line(
    tmp_path: Path, monkeypatch, log_format: str
) -> None:
    """`init-db` at a container's start: the log shows the file and the fix, not a traceback,
    as a JSON line when the logs are JSON."""
    monkeypatch.setenv("FLASKR_SECRET_KEY_FILE", str(tmp_path / "missing"))
    monkeypatch.setenv("FLASKR_LOG_FORMAT", log_format)
    result = CliRunner().invoke(FlaskGroup(create_app=create_app), ["init-db"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    why = f"flaskr: cannot read the secret key file {tmp_path / 'missing'}"
    if log_format == "json":
        [line] = result.output.splitlines()
        assert json.loads(line)["message"].startswith(why)
    else:
        assert f"Error: {why}" in result.output


KEY = "x-9f86d081884c7d65a2f0e3b1c4d7e6f8"
LIST = 'a JSON list of strings, for example ["a", "b"]'


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("FLASKR_POSTS_PER_PAGE", "abc", "a whole number of at least 1, not 'abc'"),
        ("FLASKR_POSTS_PER_PAGE", "0", "a whole number of at least 1, not 0"),
        ("FLASKR_COMMENTS_PER_PAGE", "true", "a whole number of at least 1, not True"),
        ("FLASKR_PAGE_CACHE_BYTES", "-1", "a whole number of at least 0, not -1"),
        ("FLASKR_PROXY_FIX", "1.5", "a whole number of at least 0, not 1.5"),
        ("FLASKR_LOGIN_FAILURES_GLOBAL", '"1000"', "a whole number of at least 1, not '1000'"),
        ("FLASKR_REGISTRATIONS_PER_ADDRESS", "0", "a whole number of at least 1, not 0"),
        ("FLASKR_PERMANENT_SESSION_LIFETIME", "1w", "a number of seconds, not '1w'"),
        ("FLASKR_METRICS", "False", "true or false, not 'False'"),
        ("FLASKR_LOG_FORMAT", "jsn", "json or text, not 'jsn'"),
        ("FLASKR_LOG_LEVEL", "info", "a level such as DEBUG, INFO or WARNING, not 'info'"),
        ("FLASKR_METRICS_ALLOW", "127.0.0.1", LIST + ", not '127.0.0.1'"),
        ("FLASKR_TRUSTED_HOSTS", "[1]", LIST + ", not [1]"),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_at_start(monkeypatch, variable, value, why) -> None:
    """A typo in a setting stops the server with the variable's name, rather than starting
    one whose every page fails."""
    monkeypatch.setenv("FLASKR_SECRET_KEY", KEY)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        create_app()
    assert str(raised.value) == f"flaskr: {variable} must be {why}."


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("FLASKR_POSTS_PER_PAGE", "7", 7),
        ("FLASKR_METRICS", "true", True),
        ("FLASKR_METRICS", "1", 1),  # as flaskr/serving/hooks.py reads it too
        ("FLASKR_PAGE_CACHE_SIZE", "0", 0),
        ("FLASKR_LOG_LEVEL", "WARNING", "WARNING"),
        ("FLASKR_LOG_LEVEL", "10", 10),
        ("FLASKR_TRUSTED_HOSTS", '["blog.example.com"]', ["blog.example.com"]),
        ("FLASKR_METRICS_ALLOW", '["10.0.0.1"]', ["10.0.0.1"]),
    ],
)
def test_good_values_are_taken(monkeypatch, variable, value, setting) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", KEY)
    monkeypatch.setenv(variable, value)
    assert create_app().config[variable.removeprefix("FLASKR_")] == setting


def test_every_setting_starts_at_its_declared_default() -> None:
    """Code reads every setting by name: each has its default, none is read with .get()."""
    config = create_app({"SECRET_KEY": KEY}).config
    for setting in SETTINGS:
        if setting.name not in ("SECRET_KEY", "SQLALCHEMY_ENGINE_OPTIONS"):  # given; merged
            assert config[setting.name] == setting.default, setting.name
    assert config["ISOLATION_PAGE"] is False and config["TRUSTED_HOSTS"] is None


def test_an_app_that_changes_a_default_list_changes_no_other_app() -> None:
    create_app({"SECRET_KEY": KEY}).config["METRICS_ALLOW"].append("10.0.0.1")
    assert create_app({"SECRET_KEY": KEY}).config["METRICS_ALLOW"] == ["127.0.0.1", "::1"]


def test_a_guide_without_the_table_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="docs/x.md has no <!-- settings:start -->"):
        with_settings_table("# no table here\n", "docs/x.md")


def test_a_wrong_value_stops_flask_run_with_one_line(tmp_path: Path) -> None:
    """`flask run` says which variable is wrong, in one line and without a traceback."""
    env = {
        **os.environ,
        "FLASKR_SECRET_KEY": KEY,
        "FLASKR_POSTS_PER_PAGE": "abc",
        "FLASKR_INSTANCE_PATH": str(tmp_path / "instance"),
        "FLASKR_LOG_FORMAT": "text",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "flaskr", "run", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: flaskr: FLASKR_POSTS_PER_PAGE must be a whole number of at least 1, not 'abc'."
    )


MAIL = {
    "FLASKR_MAIL_URL": "smtp://sender@mail.example.com:587",
    "FLASKR_MAIL_FROM": "blog@example.com",
    "FLASKR_SITE_URL": "https://blog.example.com",
}


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("FLASKR_MAIL_URL", "http://mail.example.com", "must be smtp://host:port (STARTTLS)"),
        ("FLASKR_MAIL_URL", "smtp://", "must be smtp://host:port (STARTTLS)"),
        ("FLASKR_MAIL_URL", "smtp://mail.example.com:port", "must be smtp://host:port"),
        ("FLASKR_MAIL_URL", "smtp://u:pw@mail.example.com", "holds a password: put it in a file"),
        ("FLASKR_MAIL_FROM", "", "FLASKR_MAIL_FROM is not: set it to the address"),
        ("FLASKR_SITE_URL", "", "FLASKR_SITE_URL is not: set it to the site's address"),
        ("FLASKR_SITE_URL", "blog.example.com", "FLASKR_SITE_URL must be https://NAME"),
    ],
)
def test_mail_settings_the_sender_could_not_use_are_refused_at_start(
    monkeypatch, variable, value, why
) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", KEY)
    for name, setting in {**MAIL, variable: value}.items():
        monkeypatch.setenv(name, setting)
    with pytest.raises(ConfigError, match=re.escape(why)):
        create_app()


@pytest.mark.parametrize(
    "value", ["blog.example.com", "ftp://blog.example.com", "https://b.example?x=1"]
)
def test_a_site_url_that_is_no_site_address_is_refused_without_mail_too(monkeypatch, value) -> None:
    """The canonical links use SITE_URL whether or not mail is on."""
    monkeypatch.setenv("FLASKR_SECRET_KEY", KEY)
    monkeypatch.setenv("FLASKR_SITE_URL", value)
    with pytest.raises(ConfigError, match=re.escape("FLASKR_SITE_URL must be https://NAME")):
        create_app()


def test_good_mail_settings_are_taken(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", KEY)
    for name, setting in MAIL.items():
        monkeypatch.setenv(name, setting)
    assert create_app().config["MAIL_URL"] == MAIL["FLASKR_MAIL_URL"]
