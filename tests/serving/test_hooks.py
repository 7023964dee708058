"""The gunicorn hooks, called as gunicorn calls them, on a real app and real files."""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import prometheus_client  # noqa: F401 - see below
import pytest
from flask import Flask

from flaskr.serving import hooks
from flaskr.serving.lock import serving_lock_path, serving_reason

# prometheus_client is imported above, before any test here sets PROMETHEUS_MULTIPROC_DIR: it
# picks where it counts once, at import, and the rest of the suite counts in memory.


def bare_wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"bench"]


@pytest.fixture
def keep_sigterm() -> Iterator[None]:
    """post_worker_init installs a TERM handler, meant for a worker: not for the test run."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)


def a_worker(app: object) -> SimpleNamespace:
    """A gunicorn worker that has loaded ``app``, as post_worker_init gets it."""
    return SimpleNamespace(wsgi=app, handle_exit=lambda sig, frame: None)


def test_a_worker_holds_the_serving_lock_before_it_says_it_started(
    app: Flask, monkeypatch: pytest.MonkeyPatch, keep_sigterm: None
) -> None:
    """flaskr-reload takes a worker that has its name for one that serves: by then `flask
    restore` must see it. (This process keeps its own name: the test notes the moment.)"""
    said: list[str | None] = []
    monkeypatch.setattr(hooks, "call_itself_started", lambda: said.append(serving_reason(app)))
    hooks.post_worker_init(a_worker(app))
    try:
        assert said == [
            f"gunicorn workers are serving this database (they lock {serving_lock_path(app)})"
        ]
    finally:
        app.extensions.pop("flaskr_serving_lock").close()
    assert serving_reason(app) is None  # the worker gone, restore goes ahead


@pytest.mark.parametrize("other", [bare_wsgi, Flask("bench")], ids=["wsgi", "flask"])
def test_another_app_served_with_these_settings_starts_without_a_lock(
    other: object, monkeypatch: pytest.MonkeyPatch, keep_sigterm: None
) -> None:
    """bench/ serves bare WSGI and a bare Flask app under flaskr's settings: no database."""
    said: list[str] = []
    monkeypatch.setattr(hooks, "call_itself_started", lambda: said.append("started"))
    hooks.post_worker_init(a_worker(other))
    assert said == ["started"]


def test_the_master_compiles_every_template_for_the_workers(app: Flask) -> None:
    """Compiled once before the fork, the templates are shared instead of built per worker."""
    names = app.jinja_env.list_templates()
    assert len(names) > 10 and len(app.jinja_env.cache) == 0
    master = SimpleNamespace(app=SimpleNamespace(wsgi=lambda: app), stop=None)
    hooks.when_ready(master)
    assert len(app.jinja_env.cache) == len(names)


def test_workers_are_forked_with_the_masters_objects_frozen() -> None:
    """Out of the collector's reach, the shared objects' pages are never copied by it."""
    gc.unfreeze()
    try:
        hooks.pre_fork(SimpleNamespace(), SimpleNamespace())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("metrics", ["1", "true", "TRUE"])
def test_metrics_get_a_folder_every_worker_writes_to(
    metrics: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLASKR_METRICS", metrics)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")  # unset, and unset again afterwards
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    hooks.before_the_app_loads()
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    assert folder.parent == tmp_path and folder.name.startswith("flaskr-metrics-")
    assert folder.is_dir()


def test_a_reloaded_master_keeps_the_metrics_folder(monkeypatch, tmp_path: Path) -> None:
    """A new master (USR2) inherits the folder, and with it the figures counted so far."""
    monkeypatch.setenv("FLASKR_METRICS", "1")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    hooks.before_the_app_loads()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)


def test_no_metrics_folder_without_metrics(monkeypatch) -> None:
    monkeypatch.delenv("FLASKR_METRICS", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "")
    hooks.before_the_app_loads()
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == ""


def test_a_dead_workers_live_gauges_are_dropped(monkeypatch, tmp_path: Path) -> None:
    """Its live gauges go (they would be summed forever); its counts stay in the totals."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("gauge_livesum_4242.db", "gauge_livesum_4243.db", "counter_4242.db"):
        (tmp_path / name).touch()
    hooks.child_exit(SimpleNamespace(), SimpleNamespace(pid=4242))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_4242.db",
        "gauge_livesum_4243.db",
    ]


def test_start_up_migrations_only_when_asked(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FLASKR_MIGRATE_ON_START", raising=False)
    hooks.on_starting(SimpleNamespace())
    assert not (tmp_path / "instance" / "flaskr.sqlite").exists()


def test_start_up_migrations_make_the_database(monkeypatch, tmp_path: Path) -> None:
    """FLASKR_MIGRATE_ON_START=1 (the image's setting): the tables exist before any worker."""
    monkeypatch.setenv("FLASKR_MIGRATE_ON_START", "1")
    hooks.on_starting(SimpleNamespace())
    with sqlite3.connect(tmp_path / "instance" / "flaskr.sqlite") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"user", "post", "alembic_version"} <= tables


def test_failed_start_up_migrations_stop_the_start(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLASKR_MIGRATE_ON_START", "1")
    monkeypatch.setenv("FLASKR_DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'x.sqlite'}")
    said: list[str] = []
    server = SimpleNamespace(
        log=SimpleNamespace(error=lambda *args: said.append(args[0] % args[1:]))
    )
    with pytest.raises(SystemExit) as stopped:
        hooks.on_starting(server)
    assert stopped.value.code == 1
    assert said == ["flaskr: migrations failed (exit 1; the reason is above); not starting"]
