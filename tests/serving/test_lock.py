"""The serving lock: held by every worker, seen by `flask restore`. (Restore's refusals
while it is held, and a link planted in its place: tests/test_backup.py.)"""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from flaskr import create_app
from flaskr.serving.lock import hold_serving_lock, serving_lock_path, serving_reason
from toolkit.apps import config_for


def test_a_held_lock_tells_restore_the_database_is_served(app: Flask) -> None:
    assert serving_reason(app) is None
    hold_serving_lock(app)
    try:
        reason = serving_reason(app)
        assert reason == (
            f"gunicorn workers are serving this database (they lock {serving_lock_path(app)})"
        )
    finally:
        app.extensions.pop("flaskr_serving_lock").close()
    assert serving_reason(app) is None


def test_a_worker_serves_even_where_it_cannot_lock(tmp_path: Path, caplog) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'flaskr.sqlite'}"
    app = create_app(config_for(tmp_path, DATABASE_URL=url))
    hold_serving_lock(app)
    assert "flaskr_serving_lock" not in app.extensions
    assert "restore cannot see this worker" in caplog.text
