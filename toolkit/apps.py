"""flaskr in this process, on a new SQLite database in a given folder holding the tutorial's
data: its two users (``test`` and ``other``, each with their name as password) and its post.
The unit tests' app (tests/conftest.py's fixtures build on it) and bench/'s."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Flask

from flaskr import create_app
from flaskr.db import db, upgrade_schema
from flaskr.models import Post, User

#: The tutorial's users, with the hashes its tests/data.sql gave them (werkzeug's old
#: pbkdf2:sha256 default).
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
        # The tutorial's rows (tests/helpers.py's TUTORIAL_DATA), written portably (PostgreSQL
        # too), ids 1 and 2.
        for username, hashed in TUTORIAL_USERS:
            db.session.add(User(username=username, password=hashed))
            db.session.flush()
        db.session.add(
            Post(title="test title", body="test\nbody", author_id=1, created=datetime(2018, 1, 1))
        )
        db.session.commit()
    return app
