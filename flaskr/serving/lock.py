"""The serving lock: `flask restore` refuses to pull the database from under a running app.

Every serving worker holds a shared lock on a file beside the SQLite database; restore asks
for it exclusively, and is refused while any worker lives.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import click
from flask import Flask

from flaskr.db import db, open_lock_file


def serving_lock_path(app: Flask) -> Path | None:
    """The file every serving gunicorn worker holds a shared lock on (SQLite only)."""
    with app.app_context():
        url = db.engine.url
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    return Path(url.database + ".serving")


def hold_serving_lock(app: Flask) -> None:
    """Called in each gunicorn worker (post_worker_init): held until the worker exits."""
    path = serving_lock_path(app)
    if path is None:
        return
    # Kept open for the worker's life. Serving matters more than the guard: if the lock
    # cannot be had (a link planted there among others), say so and go on.
    try:
        handle = open_lock_file(path)
    except (OSError, click.ClickException) as e:
        app.logger.warning("no serving lock at %s (%s): restore cannot see this worker", path, e)
        return
    fcntl.flock(handle, fcntl.LOCK_SH)
    app.extensions["flaskr_serving_lock"] = handle


def serving_reason(app: Flask) -> str | None:
    """Why the database looks in use by a running app, or None when it does not."""
    path = serving_lock_path(app)
    if path is not None:
        if not os.path.lexists(path):  # a link planted there is refused when opened
            return None
        with open_lock_file(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return f"gunicorn workers are serving this database (they lock {path})"
            return None
    with db.engine.connect() as connection:
        others = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar()
    return f"{others} other sessions are connected to this database" if others else None
