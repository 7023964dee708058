"""What several test modules share and pytest does not inject: the tutorial's users, data and
database, an app built on a fresh database, the ``auth`` actions, small real images (and
hostile ones), hostile Markdown. Fixtures live in conftest.py; these are imported, as pytest
advises, from a module of their own."""

from __future__ import annotations

import io
import os
import sqlite3
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage
from sqlalchemy import select, text
from werkzeug.test import TestResponse

from flaskr import create_app
from flaskr.db import db, upgrade_schema
from flaskr.models import OutboxMessage, Post, User
from tests.e2e.harness.http import csrf_token

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


#: The Flask tutorial's flaskr/schema.sql, verbatim.
TUTORIAL_SCHEMA = """
DROP TABLE IF EXISTS user;
DROP TABLE IF EXISTS post;

CREATE TABLE user (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT UNIQUE NOT NULL,
  password TEXT NOT NULL
);

CREATE TABLE post (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  author_id INTEGER NOT NULL,
  created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  FOREIGN KEY (author_id) REFERENCES user (id)
);
"""


def tutorial_database(path: Path) -> None:
    """What `flask --app flaskr init-db` of the tutorial leaves, plus some posts."""
    connection = sqlite3.connect(path)
    connection.executescript(TUTORIAL_SCHEMA + TUTORIAL_DATA)
    connection.executemany(
        "INSERT INTO post (title, body, author_id) VALUES (?, ?, 2)",
        [(f"old post {i}", f"body {i}") for i in range(7)],
    )
    connection.commit()
    connection.close()


def config_for(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    config = {
        "TESTING": True,
        "SECRET_KEY": "t-9f86d081884c7d65a2f0e3b1c4d7e6f8",
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


def insert_post(app: Flask, title: str) -> None:
    """A post by user 1 written straight into ``app``'s database, as another worker or
    instance (or a script) would: no request of this app sees it happen."""
    with app.app_context():
        db.session.execute(
            text("INSERT INTO post (title, body, author_id) VALUES (:title, '', 1)"),
            {"title": title},
        )
        db.session.commit()


def form_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form on ``path``, for the tests that turn CSRF on."""
    token = csrf_token(client.get(path).text)
    assert token, f"no CSRF token on {path}"
    return token


T = TypeVar("T")


def at_once(count: int, send: Callable[[int], T]) -> list[T]:
    """``send(0)`` ... ``send(count - 1)``, each on a thread of its own, released together
    (requests racing each other); what they returned, in the order they finished."""
    barrier = threading.Barrier(count)
    results: list[T] = []

    def run(i: int) -> None:
        barrier.wait()
        results.append(send(i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


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


def jpeg_after_fill_bytes() -> bytes:
    """Five million 0xFF fill bytes after the start marker, then a valid 8x8 JPEG: Pillow
    steps over the fill a byte at a time, in Python."""
    return b"\xff\xd8" + b"\xff" * 5_000_000 + image_bytes("JPEG", (8, 8))[2:]


def png_after_empty_chunks() -> bytes:
    """430,000 empty chunks of an unknown kind between the header and the pixels."""
    png = image_bytes("PNG", (8, 8))
    empty = struct.pack(">I", 0) + b"abCd" + struct.pack(">I", zlib.crc32(b"abCd"))
    return png[:33] + empty * 430_000 + png[33:]  # 33: signature and IHDR chunk


def gif_with_a_long_comment() -> bytes:
    """A comment extension of 2.6 million one-byte sub-blocks before the image."""
    gif = image_bytes("GIF", (8, 8))
    head = 13 + (3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)  # and colour table
    comment = b"\x21\xfe" + b"\x01x" * 2_600_000 + b"\x00"
    return b"GIF89a" + gif[6:head] + comment + gif[head:]


def reference_links(size: int, url_length: int) -> str:
    """``[a]`` repeated, all pointing at one long reference: each copy repeats the URL."""
    url = "https://example.com/" + "a" * url_length
    return "[a]" * ((size - url_length - 40) // 3) + "\n\n[a]: " + url


@contextmanager
def umask(mask: int) -> Iterator[None]:
    """Run the block with the process's umask set to ``mask`` (a careless operator's shell)."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def outbox(app: Flask) -> list[OutboxMessage]:
    """Every message in ``app``'s outbox, oldest first, detached from the session."""
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        db.session.expunge_all()
        return rows
