"""Fixtures in the Flask tutorial's shape: an app on a fresh database, a client, a runner,
and an ``auth`` helper. The data is the tutorial's data.sql, old password hashes included;
what tests import is in tests/helpers.py (AuthActions, tutorial_database, ...) and, shared with
bench/, in toolkit/ (make_app and config_for in apps.py, image_bytes in images.py, ...)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.sync import SyncWorker
from sqlalchemy import event

from flaskr.db import db
from tests.helpers import AuthActions
from toolkit.apps import make_app


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashes() -> Iterator[None]:
    """scrypt at 1/32 of werkzeug's work factor (N=1024, not 32768): the same code and hash
    format, 3.9 ms a hash instead of 159 ms on a quiet machine. At the real cost, the unit
    suite's 1,100 hashes were a third of its CPU. The end-to-end suites and the benchmarks
    hash at the real cost."""
    from flaskr import accounts

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(accounts, "HASH_METHOD", "scrypt:1024:8:1")
        accounts._unknown_user_hash.cache_clear()
        yield
    accounts._unknown_user_hash.cache_clear()


@pytest.fixture(autouse=True)
def _instance_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every app's instance folder, and so its default database, inside tmp_path."""
    monkeypatch.setenv("FLASKR_INSTANCE_PATH", str(tmp_path / "instance"))
    for name in ("FLASKR_SECRET_KEY", "FLASKR_SECRET_KEY_FILE", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _restore_flaskr_logger() -> Iterator[None]:
    """An app built outside testing logs JSON through the global "flaskr" logger: undo it."""
    logger = logging.getLogger("flaskr")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    yield
    logger.handlers[:], logger.propagate = handlers, propagate
    logger.setLevel(level)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement ``app`` sends to its database while the test runs, as SQLite
    itself sees them (the page cache reads its version on the driver's connection, below
    SQLAlchemy's events). Transaction control, connection setup and what SQLite runs inside a
    statement (triggers: "-- " lines; the search index's reads of its own tables, named
    'main'.'...') are left out."""
    sent: list[str] = []

    def record(statement: str) -> None:
        inside = statement.startswith("--") or "'main'.'" in statement
        setup = statement.startswith(("PRAGMA", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT"))
        if not (inside or setup):
            sent.append(statement)

    def trace(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(record)

    with app.app_context():
        engine = db.engine
    engine.dispose()  # every connection from now on is a new one, traced
    event.listen(engine, "connect", trace)
    yield sent
    event.remove(engine, "connect", trace)
    engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def served(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The smallest WSGI app: every request gets ``served``."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"served"]


@pytest.fixture
def sync_worker() -> Iterator[SyncWorker]:
    """A booted gunicorn sync worker of this process, on 127.0.0.1, not yet accepting."""
    cfg = Config()
    listener = socket.create_server(("127.0.0.1", 0))
    booted = SyncWorker(0, os.getppid(), [listener], None, 30, cfg, Logger(cfg))
    booted.wsgi = served
    booted.pid = os.getpid()
    booted.booted = True
    yield booted
    booted.tmp.close()
    listener.close()
