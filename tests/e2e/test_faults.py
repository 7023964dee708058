"""Load and faults: gunicorn with 3 workers on SQLite under concurrent writers, its
signals under a steady load (HUP, TERM, kill -9 of a worker), and a power cut of the whole
app in the middle of a write burst. Each test prints its numbers and writes them to
numbers.json in its pytest tmp dir."""

from __future__ import annotations

import functools
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from toolkit import servers
from toolkit.gunicorn_log import access_log, log_problems
from toolkit.load import Client, Load, Reader, Tally, Writer, as_dicts, record
from toolkit.servers import Gunicorn, app_env, init_db
from toolkit.visitors import Visitor
from toolkit.wait import until

PASSWORD = "load and faults"
#: Concurrent writers, and how long they write.
CLIENTS, WRITE_SECONDS = 50, 20
#: Readers under a signal; requests served before the signal is sent, and after recovery.
READERS, STEADY = 6, 30
#: Writers in the burst, and the writes acknowledged before the power cut.
BURST_WRITERS, BEFORE_CUT = 12, 150


@dataclass
class Server(Gunicorn):
    """The README's gunicorn, and the SQLite database it serves."""

    db: Path


def sockets(pid: int) -> int:
    """How many sockets ``pid`` holds: a sync worker holds the listener, and while it serves
    a request, that request's connection too."""
    count = 0
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                count += os.readlink(fd).startswith("socket:")
            except OSError:  # closed meanwhile
                continue
    except FileNotFoundError:  # the process is gone
        return 0
    return count


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = app_env(tmp_path / "instance")
    init_db(env)
    return env


def db_path(env: dict[str, str]) -> Path:
    return Path(env["FLASKR_INSTANCE_PATH"]) / "flaskr.sqlite"


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[Server]:
    """The README's gunicorn (3 workers) on a free loopback port, once it answers /readyz."""
    with servers.serve(env, log, ready="/readyz", timeout=60) as started:
        server = Server(started.process, started.port, log, db_path(env))
        until(lambda: len(server.workers()) == 3, 60, "three workers")
        yield server


def totals(tally: Tally, results: list) -> dict[str, Any]:
    """Requests sent, ok and failed (with the errors) among ``results``."""
    return tally.summary(results).get("all", {"sent": 0, "ok": 0, "failed": 0})


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db, timeout=30)) as connection:
        return connection.execute(sql).fetchall()


def stored_writes(db: Path) -> dict[str, set[str]]:
    """What the database holds, keyed as the Writer keys its writes."""
    return {
        "post": {t for (t,) in query(db, "SELECT title FROM post")},
        "comment": {b for (b,) in query(db, "SELECT body FROM comment")},
        "like": {
            f"{u}:{p}"
            for u, p in query(
                db,
                "SELECT user.username, post_like.post_id FROM post_like"
                " JOIN user ON user.id = post_like.user_id",
            )
        },
    }


def check_writes(tally: Tally, db: Path) -> tuple[dict[str, dict[str, int]], dict[str, list]]:
    """Per kind, the writes acknowledged and found; and the acknowledged ones missing."""
    stored = stored_writes(db)
    counts, missing = {}, {}
    for kind, found in stored.items():
        acknowledged = tally.acknowledged(kind)
        counts[kind] = {"acknowledged": len(acknowledged), "found": len(acknowledged & found)}
        missing[kind] = sorted(acknowledged - found)[:20]
    return counts, missing


@functools.cache
def password_hash() -> str:
    """One scrypt hash of PASSWORD, shared by every seeded user (hashing is slow on purpose)."""
    return generate_password_hash(PASSWORD)


def seed_users(db: Path, names: list[str]) -> dict[str, int]:
    """Users written straight into the database before gunicorn starts, each with a post of
    its own: registering 50 users over HTTP would spend the time budget on scrypt. Each one
    still logs in over HTTP, so every client holds a session the app made."""
    with closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        ids = {}
        for name in names:
            ids[name] = connection.execute(
                "INSERT INTO user (username, password) VALUES (?, ?)", (name, password_hash())
            ).lastrowid
            connection.execute(
                "INSERT INTO post (author_id, title, body) VALUES (?, ?, ?)",
                (ids[name], f"{name} seed", "A post to comment on and like."),
            )
    return ids


@contextmanager
def writers_served(
    env: dict[str, str], tmp_path: Path, tally: Tally, prefix: str, count: int
) -> Iterator[tuple[Server, list[Writer], float]]:
    """``count`` users (PREFIX00, PREFIX01, ...) seeded before gunicorn starts, then each
    logged in over HTTP as a Writer; with the seconds the logging in took."""
    names = [f"{prefix}{i:02d}" for i in range(count)]
    seed_users(db_path(env), names)
    with serve(env, tmp_path / "gunicorn.log") as server:
        started = time.monotonic()
        clients = logged_in_writers(server, tally, names)
        yield server, clients, time.monotonic() - started


# --- Concurrent writes -----------------------------------------------------------------------


def test_concurrent_writes_are_all_stored(env, tmp_path: Path) -> None:
    tally = Tally()
    with (
        writers_served(env, tmp_path, tally, "writer", CLIENTS) as (server, clients, setup_seconds),
        Load.each(clients, Writer.step, WRITE_SECONDS) as load,
    ):
        load.wait()
    counts, missing = check_writes(tally, server.db)
    summary = tally.summary()
    server_errors = [r for r in tally.results if r.status is not None and r.status >= 500]
    record(
        tmp_path,
        "concurrent writes",
        {
            "clients": CLIENTS,
            "seconds": WRITE_SECONDS,
            "setup_seconds": round(setup_seconds, 1),
            "requests": summary,
            "writes": counts,
            "writes_per_second": round(summary["all"]["ok"] / WRITE_SECONDS, 1),
            "failures": as_dicts(tally.failures()),
        },
    )
    assert not server_errors, as_dicts(server_errors)
    assert not tally.failures(), as_dicts(tally.failures())
    assert not any(missing.values()), missing
    assert all(c["acknowledged"] > 0 for c in counts.values()), counts
    assert not log_problems(server.log), log_problems(server.log)


def logged_in_writers(server: Server, tally: Tally, names: list[str]) -> list[Writer]:
    """One Writer per seeded user, logged in over HTTP before the timed phase, with a CSRF
    token for its session; they comment on and like the seeded posts."""

    def log_in(name: str) -> Client:
        client = Client(server.base, tally, name)
        r = client.submit("/auth/login", {"username": name, "password": PASSWORD})
        assert r.status_code == 302 and r.headers["Location"] == "/", r.text[:500]
        client.fetch_token()
        return client

    with ThreadPoolExecutor(max_workers=6) as pool:
        clients = list(pool.map(log_in, names))
    post_ids = [pid for (pid,) in query(server.db, "SELECT id FROM post ORDER BY id")]
    assert len(post_ids) == len(names)
    return [Writer(c, post_ids, seed=i) for i, c in enumerate(clients)]


# --- Signals under a steady load ------------------------------------------------------------


def seed_pages(db: Path) -> int:
    """Four small posts and a big one (long markdown, 30 comments) to read; the big one's id."""
    author = seed_users(db, ["author"])["author"]
    body = "\n\n".join(
        f"Paragraph {i}: *some* **markdown** with [a link](https://example.org/{i}) and text."
        for i in range(200)
    )[:19_000]
    with closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        big = connection.execute(
            "INSERT INTO post (author_id, title, body) VALUES (?, 'The big page', ?)",
            (author, body),
        ).lastrowid
        connection.executemany(
            "INSERT INTO comment (post_id, author_id, body) VALUES (?, ?, ?)",
            [(big, author, f"Comment {i} on the big page.") for i in range(30)],
        )
        for i in range(3):
            connection.execute(
                "INSERT INTO post (author_id, title, body) VALUES (?, ?, 'Short.')",
                (author, f"Small post {i}"),
            )
    return big


@contextmanager
def steady_reads(server: Server, tally: Tally, big: int) -> Iterator[Load]:
    """Anonymous clients looping over the index and a bigger page (a long post with
    comments), from the moment STEADY of their requests have been served."""
    paths = {"index": "/", "big page": f"/{big}"}
    clients = [Reader(Client(server.base, tally, f"c{i}"), paths) for i in range(READERS)]
    with Load.each(clients, Reader.step, 120) as load:
        load.wait_for(lambda: tally.count(ok=True) >= STEADY, 60, "steady load")
        yield load


def served(log: Path) -> dict[str, int]:
    """The GET requests the access log shows a worker answered: path with query -> status."""
    return {path: status for method, path, status in access_log(log) if method == "GET"}


def test_hup_reloads_without_failing_a_request(env, tmp_path: Path) -> None:
    tally = Tally()
    big = seed_pages(db_path(env))
    with serve(env, tmp_path / "gunicorn.log") as server, steady_reads(server, tally, big) as load:
        old = server.workers()
        hup = time.monotonic()
        os.kill(server.pid, signal.SIGHUP)

        def replaced() -> bool:
            now = server.workers()
            return len(now) == 3 and not now & old

        reloaded = load.wait_for(replaced, 60, "three new workers after HUP")
        new = server.workers()
        load.wait_for(
            lambda: tally.count(ok=True, since=reloaded) >= STEADY, 60, "load after reload"
        )
    numbers = {
        "requests": tally.summary(),
        "during_reload": tally.summary(r for r in tally.results if r.ended > hup),
        "reload_seconds": round(reloaded - hup, 2),
        "old_workers": sorted(old),
        "new_workers": sorted(new),
        "failures": as_dicts(tally.failures()),
    }
    record(tmp_path, "HUP", numbers)
    assert not tally.failures(), as_dicts(tally.failures())
    assert "Hang up" in server.log.read_text()
    assert not log_problems(server.log), log_problems(server.log)


def test_kill_9_of_a_worker_fails_at_most_its_request(env, tmp_path: Path) -> None:
    tally = Tally()
    big = seed_pages(db_path(env))
    with serve(env, tmp_path / "gunicorn.log") as server:
        idle = min(sockets(pid) for pid in server.workers())
        with steady_reads(server, tally, big) as load:
            old = server.workers()
            victim = 0

            def serving() -> bool:  # a worker with a client's connection open: kill that one
                nonlocal victim
                busy = [pid for pid in old if sockets(pid) > idle]
                victim = busy[0] if busy else 0
                return bool(victim)

            load.wait_for(serving, 30, "a worker serving a request")
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)

            def replaced() -> bool:
                now = server.workers()
                return len(now) == 3 and victim not in now

            respawned = load.wait_for(replaced, 60, "a new worker after kill -9")
            new = server.workers() - old
            load.wait_for(
                lambda: tally.count(ok=True, since=respawned) >= STEADY, 60, "load after respawn"
            )
    failures = tally.failures()
    numbers = {
        "requests": tally.summary(),
        "after_kill": tally.summary(r for r in tally.results if r.ended > killed),
        "killed_worker": victim,
        "failed_at_kill": len(failures),
        "new_workers": sorted(new),
        "respawn_seconds": round(respawned - killed, 2),
        "failures": as_dicts(failures),
    }
    record(tmp_path, "kill -9 of a worker", numbers)
    assert len(new) == 1, (old, new)
    assert len(failures) <= 1, as_dicts(failures)
    for failure in failures:
        # Only the request the killed worker was serving: cut, never an HTTP error.
        assert failure.connection_error and failure.started < killed, failure
    assert tally.count(ok=True, since=respawned) >= STEADY
    assert f"Worker (pid:{victim}) was sent SIGKILL" in server.log.read_text()


def test_term_finishes_requests_in_flight_and_exits_0(env, tmp_path: Path) -> None:
    tally = Tally()
    big = seed_pages(db_path(env))
    with serve(env, tmp_path / "gunicorn.log") as server, steady_reads(server, tally, big) as load:
        term = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(30)
        exited = time.monotonic()
        # A moment more of load: the clients now find nothing listening.
        load.wait_for(
            lambda: tally.count(ok=False, since=exited) >= READERS, 30, "refusals after exit"
        )
    results = tally.results
    answered = served(server.log)
    before = [r for r in results if r.started < term]
    accepted = [r for r in before if r.key in answered]  # a worker took it
    in_flight = [r for r in accepted if r.ended > term]  # ... and was still on it at TERM
    never_accepted = [r for r in before if r.key not in answered]
    after = [r for r in results if r.started >= term]
    numbers = {
        "exit_code": code,
        "stop_seconds": round(exited - term, 2),
        "started_before_term": totals(tally, before),
        "accepted_before_term": totals(tally, accepted),
        "in_flight_at_term": totals(tally, in_flight),
        "started_before_term_never_accepted": totals(tally, never_accepted),
        "started_after_term": totals(tally, after),
        "requests": tally.summary(),
        "failures_before_term": as_dicts(r for r in before if not r.ok),
    }
    record(tmp_path, "TERM", numbers)
    assert code == 0
    # The access log is read right: it holds every request that got its answer.
    assert all(r.key in answered for r in results if r.ok), "access log not parsed"
    # Every request a worker accepted completed with 200, those in flight at TERM included.
    assert all(r.ok for r in accepted), as_dicts(r for r in accepted if not r.ok)
    assert in_flight, "no request was in a worker at TERM"
    # No HTTP error at all: what was not served was refused or cut before a worker took it.
    assert all(r.ok or r.connection_error for r in results), as_dicts(results)
    assert all(answered[r.key] == 200 for r in results if r.key in answered)
    assert all(not r.ok for r in results if r.started > exited)
    assert "Shutting down: Master" in server.log.read_text()
    assert not log_problems(server.log), log_problems(server.log)


# --- Durability -----------------------------------------------------------------------------


def test_power_cut_in_a_write_burst_keeps_every_acknowledged_write(env, tmp_path: Path) -> None:
    tally = Tally()
    with (
        writers_served(env, tmp_path, tally, "burst", BURST_WRITERS) as (server, clients, _),
        Load.each(clients, Writer.step, 120) as load,
    ):
        load.wait_for(lambda: tally.count(ok=True) >= BEFORE_CUT, 60, "write burst")
        cut = time.monotonic()
        os.killpg(server.pid, signal.SIGKILL)  # master and workers, as a power cut would
        server.process.wait(10)
        until(lambda: not server.workers(), 10, "workers gone")
        load.wait_for(
            lambda: tally.count(ok=False, since=cut) >= BURST_WRITERS, 30, "writes refused"
        )
    integrity = query(server.db, "PRAGMA integrity_check")
    counts, missing = check_writes(tally, server.db)
    cut_short = [r for r in tally.results if not r.ok and r.started < cut]
    # The database serves again: a new gunicorn opens it and reads it.
    with serve(env, tmp_path / "restart.log") as again:
        title = sorted(tally.acknowledged("post"))[-1]
        assert title in Visitor(again.base).get("/", params={"q": title}).text
    numbers = {
        "writers": BURST_WRITERS,
        "requests": tally.summary(),
        "writes": counts,
        "in_flight_at_cut": len(cut_short),
        "integrity_check": integrity,
        "missing": missing,
    }
    record(tmp_path, "power cut", numbers)
    assert integrity == [("ok",)]
    assert not any(missing.values()), missing
    assert all(r.ok or r.connection_error for r in tally.results), as_dicts(tally.failures())
    assert not [r for r in tally.results if not r.ok and r.ended < cut]
