"""The private or undocumented parts of pinned libraries that flaskr relies on, one test each.

docs/architecture.md ("Library internals we rely on") lists them: what each is, where flaskr
uses it and what breaks if it changes. Each test asserts what flaskr's code depends on, so an
upgrade that changes it fails here, by name, rather than somewhere downstream or in production.
The last test keeps that list and these tests the same set.
"""

from __future__ import annotations

import inspect
import os
import re
import signal
import socket
import sqlite3
import sys
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, current_app
from flask.globals import _cv_request
from gunicorn import sock
from gunicorn.arbiter import Arbiter
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.base import Worker
from gunicorn.workers.sync import SyncWorker
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.compiler import SQLCompiler
from werkzeug.routing import MapAdapter

from flaskr import Flaskr

ARCHITECTURE = Path(__file__).parents[1] / "docs" / "architecture.md"
SECTION = "## Library internals we rely on"

posts = Table("post", MetaData(), Column("id", Integer, primary_key=True), Column("title", String))


# Flask and Werkzeug: flaskr/urls.py, flaskr/db.py


def test_flask_cv_request_holds_the_request_context() -> None:
    app = Flask(__name__)
    assert _cv_request.get(None) is None
    with app.test_request_context("/") as ctx:
        current = _cv_request.get(None)
        assert current is ctx
        assert current.app is app
        assert isinstance(current.url_adapter, MapAdapter)
    assert _cv_request.get(None) is None


def test_werkzeug_map_adapter_script_name_is_where_the_app_is_mounted() -> None:
    app = Flask(__name__)
    with app.test_request_context("/", base_url="http://localhost/"):
        root = _cv_request.get(None).url_adapter.script_name
    with app.test_request_context("/", base_url="http://localhost/blog/"):
        mounted = _cv_request.get(None).url_adapter.script_name
    assert isinstance(root, str) and isinstance(mounted, str)
    assert root != mounted
    assert mounted.rstrip("/") == "/blog"


def test_werkzeug_local_proxy_get_current_object_is_the_app_itself() -> None:
    app = Flask(__name__)
    with app.app_context():
        assert current_app._get_current_object() is app


# SQLAlchemy: flaskr/reads.py


def test_sqlalchemy_positiontup_orders_positional_parameters() -> None:
    statement = select(posts.c.title).where(posts.c.id == 7, posts.c.title != "x")
    compiled = statement.compile(dialect=sqlite.dialect())
    assert isinstance(compiled, SQLCompiler)
    values = compiled.construct_params({})
    assert compiled.positiontup is not None
    arguments = tuple(values[name] for name in compiled.positiontup)
    assert arguments == (7, "x")
    # What flaskr/reads.py does with them: the driver's own cursor, the compiled string.
    with closing(sqlite3.connect(":memory:")) as connection:
        connection.execute("CREATE TABLE post (id INTEGER PRIMARY KEY, title TEXT)")
        connection.execute("INSERT INTO post VALUES (7, 'seven'), (8, 'eight')")
        assert connection.execute(compiled.string, arguments).fetchall() == [("seven",)]


def test_sqlalchemy_positiontup_is_none_for_named_parameters() -> None:
    statement = select(posts.c.title).where(posts.c.id == 7)
    compiled = statement.compile(dialect=postgresql.psycopg.dialect())
    assert compiled.positiontup is None
    assert "%(id_1)s" in compiled.string
    assert compiled.construct_params({}) == {"id_1": 7}


# gunicorn: flaskr/serving/draining.py, flaskr/serving/logging.py


class App:
    """The smallest gunicorn application an Arbiter is made with."""

    def __init__(self) -> None:
        self.cfg = Config()

    def wsgi(self) -> Any:  # pragma: no cover - never served
        return None


@pytest.fixture
def arbiter(monkeypatch: pytest.MonkeyPatch) -> Arbiter:
    """A gunicorn master, made but not started (it sets SERVER_SOFTWARE: put back after)."""
    monkeypatch.setenv("SERVER_SOFTWARE", "")
    return Arbiter(App())


def test_gunicorn_arbiter_stop_is_called_through_the_instance(arbiter: Arbiter) -> None:
    parameters = list(inspect.signature(Arbiter.stop).parameters.values())
    assert [p.name for p in parameters] == ["self", "graceful"]
    assert parameters[1].default is True
    calls: list[tuple[Any, ...]] = []
    arbiter.stop = lambda *args: calls.append(args)
    with pytest.raises(SystemExit):
        arbiter.halt()  # what a TERM ends in
    assert calls == [()]  # graceful, by its default


def test_gunicorn_arbiter_reexec_pid_and_master_pid_mark_an_upgrade(
    arbiter: Arbiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (arbiter.reexec_pid, arbiter.master_pid) == (0, 0)  # alone: no upgrade under way

    def no_fork() -> int:  # pragma: no cover - only if gunicorn forked a second generation
        raise AssertionError("reexec forked while another generation shares the socket")

    monkeypatch.setattr(os, "fork", no_fork)
    for reexec_pid, master_pid in ((4321, 0), (0, 4321)):  # the old master; the new one
        arbiter.reexec_pid, arbiter.master_pid = reexec_pid, master_pid
        arbiter.reexec()  # refused: the other generation exists


def test_gunicorn_arbiter_listeners_are_the_listening_sockets() -> None:
    assert Arbiter.LISTENERS == []
    cfg = Config()
    cfg.set("bind", ["127.0.0.1:0"])
    listeners = sock.create_sockets(cfg, Logger(cfg))
    try:
        (listener,) = listeners
        listener.listen(0)  # reaches the socket itself
        assert listener.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close_sockets(listeners)


def test_gunicorn_worker_handle_exit_is_the_term_handler(sync_worker) -> None:
    parameters = list(inspect.signature(Worker.handle_exit).parameters)
    assert parameters == ["self", "sig", "frame"]
    assert "signal.signal(signal.SIGTERM, self.handle_exit)" in inspect.getsource(
        Worker.init_signals
    )
    assert "signal.siginterrupt(signal.SIGTERM, False)" in inspect.getsource(Worker.init_signals)
    sync_worker.alive = True
    sync_worker.handle_exit(signal.SIGTERM, None)
    assert sync_worker.alive is False  # ends the loop; the request under way is finished


def test_gunicorn_sync_worker_accept_serves_one_connection(sync_worker) -> None:
    assert list(inspect.signature(SyncWorker.accept).parameters) == ["self", "listener"]
    (listener,) = sync_worker.sockets
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing queued: how flaskr's drain knows to stop
        sync_worker.accept(listener)
    with socket.create_connection(listener.getsockname(), timeout=5) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        client.shutdown(socket.SHUT_WR)
        sync_worker.accept(listener)  # accepted and answered before it returns
        answer = client.makefile("rb").read()  # all of it: the worker has closed
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"served")


def test_gunicorn_logger_atoms_has_the_fields_the_json_logger_reads() -> None:
    cfg = Config()
    logger = Logger(cfg)
    assert logger.error_log.name == "gunicorn.error"
    assert logger.access_log.name == "gunicorn.access"
    response = SimpleNamespace(status="201 CREATED", headers=[("X-Request-ID", "r-1")], sent=5)
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/create?x=1",
        "PATH_INFO": "/create",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        "HTTP_USER_AGENT": "curl/8",
    }
    atoms = logger.atoms(response, SimpleNamespace(headers=[]), environ, timedelta(seconds=1))
    assert {k: atoms[k] for k in ("h", "m", "U", "q", "s", "B", "a")} == {
        "h": "10.0.0.7",
        "m": "POST",
        "U": "/create",
        "q": "x=1",
        "s": "201",
        "B": 5,
        "a": "curl/8",
    }
    assert atoms.get("{x-request-id}o") == "r-1"


# CPython: flaskr/__init__.py


def test_python_marks_coroutine_functions_with_is_coroutine_marker() -> None:
    def marked() -> None:  # pragma: no cover - never called
        pass

    if sys.version_info < (3, 12):
        assert not hasattr(inspect, "markcoroutinefunction")  # nothing to mark with
        return
    inspect.markcoroutinefunction(marked)
    assert hasattr(marked, "_is_coroutine_marker")
    assert inspect.iscoroutinefunction(marked)
    # So Flaskr.ensure_sync hands it to Flask, which would run it as a coroutine function
    # (and says it needs asgiref, not installed here) instead of calling it as a plain one.
    with pytest.raises(RuntimeError, match="async"):
        Flaskr(__name__).ensure_sync(marked)


# The list in docs/architecture.md and the tests above


def documented_tests() -> list[str]:
    """The tests named in docs/architecture.md's section on library internals, in order."""
    text = ARCHITECTURE.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end != -1 else len(text)]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # no header
    names = [re.findall(r"test_library_internals\.py::(\w+)", row) for row in rows]
    assert all(len(found) == 1 for found in names), "each row names exactly one test"
    return [found[0] for found in names]


def test_the_documented_internals_are_the_tested_ones() -> None:
    documented = documented_tests()
    tests = [
        name
        for name, value in globals().items()
        if name.startswith("test_") and callable(value)
        if name != "test_the_documented_internals_are_the_tested_ones"
    ]
    assert len(documented) == len(set(documented)), "a test named by two rows"
    assert set(documented) == set(tests)
