"""Fixtures in the Flask tutorial's shape: an app on a fresh database, a client, a runner,
and an ``auth`` helper. The data is the tutorial's data.sql, old password hashes included."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from PIL import Image as PILImage
from sqlalchemy import event
from werkzeug.test import TestResponse

from flaskr import create_app
from flaskr.db import db, upgrade_schema
from flaskr.models import Post, User

TUTORIAL_USERS = [
    (
        "test",
        "pbkdf2:sha256:50000$TCI4GzcX$0de171a4f4dac32e3364c7ddc7c14f3e2fa61f2d17574483f7ffbb431b4acb2f",
    ),
    (
        "other",
        "pbkdf2:sha256:50000$kJPKsz6N$d2d4784f1b030a9761f5ccaeeaca413f27f2ecb76d6168407af962ddce849f79",
    ),
]

#: The tutorial's tests/data.sql: users 'test' and 'other' (passwords equal to their names,
#: hashed with werkzeug's old pbkdf2:sha256 default) and one post.
TUTORIAL_DATA = """
INSERT INTO user (username, password)
VALUES
  ('{}', '{}'),
  ('{}', '{}');

INSERT INTO post (title, body, author_id, created)
VALUES
  ('test title', 'test' || x'0a' || 'body', 1, '2018-01-01 00:00:00');
""".format(*TUTORIAL_USERS[0], *TUTORIAL_USERS[1])


def config_for(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'test.sqlite'}",
        "WTF_CSRF_ENABLED": False,
    }
    config.update(overrides)
    return config


def make_app(tmp_path: Path, **overrides: Any) -> Flask:
    """An app on a new database holding the tutorial's data."""
    app = create_app(config_for(tmp_path, **overrides))
    with app.app_context():
        upgrade_schema()
        # The same rows as TUTORIAL_DATA, written portably (PostgreSQL too), ids 1 and 2.
        for username, hashed in TUTORIAL_USERS:
            db.session.add(User(username=username, password=hashed))
            db.session.flush()
        db.session.add(
            Post(title="test title", body="test\nbody", author_id=1, created=datetime(2018, 1, 1))
        )
        db.session.commit()
    return app


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


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def login(self, username: str = "test", password: str = "test") -> TestResponse:
        return self._client.post("/auth/login", data={"username": username, "password": password})

    def logout(self) -> TestResponse:
        """The tutorial's GET only asks now; its form posts (CSRF is off in these tests)."""
        return self._client.post("/auth/logout")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (8, 6), **save: Any) -> bytes:
    """A small real image in ``fmt``."""
    out = io.BytesIO()
    mode = "RGB" if fmt in ("JPEG", "WEBP") else "RGBA" if fmt == "PNG" else "P"
    PILImage.new(mode, size, color=1 if mode == "P" else (200, 30, 60)).save(out, fmt, **save)
    return out.getvalue()


def repeated_scans_jpeg(size: tuple[int, int], repeats: int) -> bytes:
    """A progressive JPEG whose last (tiny) refinement scan is repeated ``repeats`` times: a
    few hundred bytes more, and the decoder goes over every pixel once more per copy."""
    out = io.BytesIO()
    PILImage.new("RGB", size, (120, 130, 140)).save(out, "JPEG", progressive=True)
    data = out.getvalue()[:-2]  # without the end-of-image marker
    scan = data[data.rfind(b"\xff\xda") :]
    return data + scan * repeats + b"\xff\xd9"
