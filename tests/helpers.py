"""What several test modules share and pytest does not inject: the tutorial's users and data,
an app built on a fresh database, the ``auth`` actions, and small real images. Fixtures live
in conftest.py; these are imported, as pytest advises, from a module of their own."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage
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


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def login(self, username: str = "test", password: str = "test") -> TestResponse:
        return self._client.post("/auth/login", data={"username": username, "password": password})

    def logout(self) -> TestResponse:
        """The tutorial's GET only asks now; its form posts (CSRF is off in these tests)."""
        return self._client.post("/auth/logout")


def image_bytes(
    fmt: str = "PNG",
    size: tuple[int, int] = (8, 6),
    color: int | tuple[int, ...] | None = None,
    mode: str | None = None,
    **save: Any,
) -> bytes:
    """A small real image in ``fmt``, of one ``color`` (in ``mode``, else the format's own)."""
    out = io.BytesIO()
    mode = mode or ("RGB" if fmt in ("JPEG", "WEBP") else "RGBA" if fmt == "PNG" else "P")
    if color is None:
        color = 1 if mode == "P" else 0 if mode == "1" else (200, 30, 60)
    PILImage.new(mode, size, color=color).save(out, fmt, **save)
    return out.getvalue()


def repeated_scans_jpeg(size: tuple[int, int], repeats: int) -> bytes:
    """A progressive JPEG whose last (tiny) refinement scan is repeated ``repeats`` times: a
    few hundred bytes more, and the decoder goes over every pixel once more per copy."""
    out = io.BytesIO()
    PILImage.new("RGB", size, (120, 130, 140)).save(out, "JPEG", progressive=True)
    data = out.getvalue()[:-2]  # without the end-of-image marker
    scan = data[data.rfind(b"\xff\xda") :]
    return data + scan * repeats + b"\xff\xd9"


def reference_links(size: int, url_length: int) -> str:
    """``[a]`` repeated, all pointing at one long reference: each copy repeats the URL."""
    url = "https://example.com/" + "a" * url_length
    return "[a]" * ((size - url_length - 40) // 3) + "\n\n[a]: " + url
