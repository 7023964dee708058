"""What several test modules share and pytest does not inject: the tutorial's data and
database, the ``auth`` actions, posts written behind an app's back, requests racing each other.
Fixtures live in conftest.py; these are imported, as pytest advises, from a module of their
own. What bench/ uses too is in toolkit/: an app on a fresh database (toolkit/apps.py), small
real images (toolkit/images.py), hostile uploads and Markdown (toolkit/hostile.py)."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from werkzeug.test import TestResponse

from flaskr.db import db
from flaskr.models import OutboxMessage, User
from toolkit.apps import TUTORIAL_USERS
from toolkit.visitors import csrf_token

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


def give_second_factor(app: Flask, username: str) -> str:
    """Give ``username`` a TOTP secret behind the app's back, as enrolling would; return it.

    Its sessions go on (enrolling from the page ends the others): a client logged in first
    stays logged in, as an admin who has a second factor.
    """
    secret = pyotp.random_base32()
    with app.app_context():
        db.session.execute(update(User).where(User.username == username).values(totp_secret=secret))
        db.session.commit()
    return secret
