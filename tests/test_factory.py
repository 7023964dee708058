import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask.cli import FlaskGroup

from flaskr import create_app
from flaskr.config import ConfigError
from tests.conftest import config_for, make_app

ROOT = Path(__file__).resolve().parent.parent


def test_config_testing(tmp_path: Path) -> None:
    assert not create_app({"SECRET_KEY": "x" * 16 + "0123456789abcdef"}).testing
    assert create_app(config_for(tmp_path)).testing


def test_hello(client) -> None:
    response = client.get("/hello")
    assert response.data == b"Hello, World!"


@pytest.mark.parametrize(
    "key", [None, "", "dev", "changeme", "short", " " * 16, "a" * 64, b"ab" * 20, "Change-Me"]
)
def test_refuses_to_start_without_a_real_secret_key(key) -> None:
    with pytest.raises(ConfigError, match="FLASKR_SECRET_KEY"):
        create_app({"SECRET_KEY": key})


@pytest.mark.parametrize("setting", ["FLASKR_DEBUG", "FLASKR_TESTING"])
def test_debug_or_testing_from_the_environment_does_not_skip_the_key_check(
    monkeypatch, setting
) -> None:
    monkeypatch.setenv(setting, "true")
    monkeypatch.setenv("FLASKR_SECRET_KEY", "a" * 32)
    with pytest.raises(ConfigError, match="10 of them different"):
        create_app()
    monkeypatch.setenv("FLASKR_SECRET_KEY", "a" * 16 + "0123456789abcdef")
    assert create_app().config[setting.removeprefix("FLASKR_")] is True


def test_secret_key_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", "1234567890123456789")  # digits stay a string
    app = create_app()
    assert app.config["SECRET_KEY"] == "1234567890123456789"


def test_secret_key_file(tmp_path: Path, monkeypatch) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("k" * 16 + "0123456789abcdef" + "\n")
    monkeypatch.setenv("FLASKR_SECRET_KEY_FILE", str(key_file))
    assert create_app().config["SECRET_KEY"] == "k" * 16 + "0123456789abcdef"


def test_unreadable_secret_key_file_says_which(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="missing") as raised:
        create_app()
    message = str(raised.value)
    assert f"as uid {os.getuid()}" in message and f"chmod 0444 {tmp_path / 'missing'}" in message


def test_secret_key_from_systemd_credential(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "secret_key").write_text("c" * 16 + "0123456789abcdef")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert create_app().config["SECRET_KEY"] == "c" * 16 + "0123456789abcdef"


def test_instance_config_file(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "config.py").write_text(
        "SECRET_KEY = 'i' * 16 + '0123456789abcdef'\nPOSTS_PER_PAGE = 3\n"
    )
    app = create_app()
    assert app.config["POSTS_PER_PAGE"] == 3


def test_default_database_is_sqlite_in_instance(tmp_path: Path) -> None:
    app = create_app({"SECRET_KEY": "x" * 16 + "0123456789abcdef"})
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
    app = create_app({"SECRET_KEY": "x" * 16 + "0123456789abcdef"})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == expected
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True


def test_flaskr_database_url_wins(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://a/b")
    monkeypatch.setenv("FLASKR_DATABASE_URL", "sqlite:////tmp/x.sqlite")
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x" * 16 + "0123456789abcdef")
    assert create_app().config["SQLALCHEMY_DATABASE_URI"] == "sqlite:////tmp/x.sqlite"


def test_proxy_fix_trusts_one_proxy(tmp_path: Path) -> None:
    app = create_app(config_for(tmp_path, PROXY_FIX=1))

    @app.get("/whoami")
    def whoami() -> str:
        from flask import request

        return f"{request.remote_addr} {request.scheme}"

    response = app.test_client().get(
        "/whoami",
        headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Forwarded-Proto": "https"},
    )
    assert response.text == "203.0.113.9 https"


def test_forwarded_headers_ignored_without_proxy_fix(client, app) -> None:
    @app.get("/whoami")
    def whoami() -> str:
        from flask import request

        return f"{request.remote_addr} {request.scheme}"

    response = client.get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.text == "127.0.0.1 http"


def test_engine_options_add_to_the_defaults(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x" * 16 + "0123456789abcdef")
    monkeypatch.setenv("FLASKR_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("FLASKR_SQLALCHEMY_ENGINE_OPTIONS", '{"pool_size": 5, "pool_recycle": 60}')
    options = create_app().config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options == {"pool_pre_ping": True, "pool_size": 5, "pool_recycle": 60}


def test_engine_options_must_be_an_object(monkeypatch) -> None:
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x" * 16 + "0123456789abcdef")
    monkeypatch.setenv("FLASKR_SQLALCHEMY_ENGINE_OPTIONS", "pool_size=5")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        create_app()


def test_serving_workers_load_neither_alembic_nor_pillow(tmp_path: Path) -> None:
    """Migrations and uploads load them where they run: a worker serving pages, /readyz
    included, stays without (bench/in_process.py --imports: 7.8 and 2.1 MB)."""
    make_app(tmp_path)  # the database, migrated here rather than in the worker below
    code = f"""
import sys
from flaskr import create_app
app = create_app({{"SECRET_KEY": "s" * 16 + "0123456789abcdef", "DATABASE_URL": "sqlite:///{tmp_path}/test.sqlite"}})
for path in ("/", "/1", "/?q=test", "/feed.atom", "/readyz", "/1/image"):
    app.test_client().get(path)
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"alembic", "flask_migrate", "PIL"}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


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


def test_async_views_still_get_flasks_answer(app, client) -> None:
    """Plain views and hooks skip Flask's async check; an async one still reaches Flask,
    which says what it needs (asgiref, not installed here) instead of running it wrongly."""

    async def later() -> str:
        return "later"

    def now() -> str:
        return "now"

    assert app.ensure_sync(now) is now
    assert app.ensure_sync(app.make_response) == app.make_response  # a bound method
    with pytest.raises(RuntimeError, match="async"):
        app.ensure_sync(later)
    app.add_url_rule("/now", view_func=now)
    assert client.get("/now").text == "now"
