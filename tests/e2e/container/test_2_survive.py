"""Stage 2 of the container suite (see __init__.py): containers starting together migrate
once; a backup while people write, restored onto a fresh volume; the site stopped with a
request in flight, run again on its volume and upgraded."""

from __future__ import annotations

import json
import re
import shlex
import socket
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from tests.e2e.container.helpers import Post, Site, check_post_readable, start_site
from toolkit import ROOT
from toolkit.containers import Engine, tcp_sockets
from toolkit.drills import AFTER, BEFORE, PASSWORD, acknowledged_before, writers
from toolkit.load import Load, Tally, Writer
from toolkit.ports import free_port
from toolkit.recipes import recipe
from toolkit.visitors import Visitor
from toolkit.wait import until, wait_for_http

#: Seconds `docker stop` (`podman stop`) waits before SIGKILL (scripts/container passes
#: --stop-timeout 10).
STOP_TIMEOUT = 10


def test_containers_starting_together_migrate_once(engine: Engine, image: str) -> None:
    volume = f"{engine.prefix}-race"
    names = [f"{engine.prefix}-race{i}" for i in range(3)]
    ports = [free_port() for _ in names]
    # The race under test is the migration's, not podman's: three `run`s creating one named
    # volume at once can fail with "volume already exists" (podman 4.3), so it exists first.
    engine.volumes.add(volume)
    engine.cli("volume", "create", volume)
    starts = [
        engine.popen("run", **engine.container_settings(n, volume, p))
        for n, p in zip(names, ports, strict=True)
    ]
    try:
        for started in starts:
            out, err = started.communicate(timeout=120)
            assert started.returncode == 0, err
        for port in ports:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=90)
        logs = [engine.script("logs", FLASKR_CONTAINER=n) for n in names]
        lines = [line for log in logs for line in (log.stdout + log.stderr).splitlines()]
        # One format in the logs: gunicorn's, Alembic's and init-db's lines are all JSON.
        messages = [json.loads(line)["message"] for line in lines if line.strip()]
        outcomes = sorted(
            m for m in messages if m in ("Initialized the database.", "The database is up to date.")
        )
        assert outcomes == ["Initialized the database."] + ["The database is up to date."] * 2
        # All three serve the one database: a user registered on one logs in on another.
        first = Visitor(f"http://127.0.0.1:{ports[0]}")
        assert (
            first.post_form("/auth/register", {"username": "racer", "password": "a long password"})
        ).status_code == 302
        second = Visitor(f"http://127.0.0.1:{ports[2]}")
        assert (
            second.post_form("/auth/login", {"username": "racer", "password": "a long password"})
        ).status_code == 302
    finally:
        for started in starts:
            if started.poll() is None:
                started.kill()
                started.communicate()
        for name in names:
            engine.remove_container(name)


def stored_titles(engine: Engine, name: str) -> set[str]:
    """The post titles in a container's database, read inside it."""
    read = "import sqlite3; [print(t) for (t,) in sqlite3.connect('/var/lib/flaskr/flaskr.sqlite').execute('SELECT title FROM post')]"
    return set(engine.exec(name, "python", "-c", read).stdout.splitlines())


def test_backup_container_scripts_container_while_writing_onto_a_fresh_volume(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """backup.md's recipe: scripts/container backup in the middle of concurrent writes, then
    scripts/container restore (of the file renamed to shell code) onto a new container and
    volume, with and without --max-unpacked-mb: every post acknowledged before the backup is
    there, users log in, images are served, and restore says so in plain sentences naming the
    user's file."""
    live = start_site(engine, f"{engine.prefix}-bk", f"{engine.prefix}-bk-data")
    fresh = start_site(engine, f"{engine.prefix}-rs", f"{engine.prefix}-rs-data")
    try:
        tally = Tally()
        clients, image_post, image_bytes = writers(live.base, tally)
        with Load.each(clients, Writer.step, 120) as load:
            time.sleep(BEFORE)
            backup_started = time.monotonic()
            lines = recipe(
                "docs/backup.md",
                "Container (scripts/container)",
                0,
                replace={"DIR": shlex.quote(str(tmp_path))},
            )
            done = engine.sh(lines[0], FLASKR_CONTAINER=live.name, FLASKR_VOLUME=live.volume)
            time.sleep(AFTER)
            load.stop()
        # One sentence naming the host's copy, not the path inside the volume.
        backed_up = done.stdout.strip()
        assert backed_up.startswith(f"Backed up to {tmp_path}/flaskr-"), backed_up
        assert "/var/lib/flaskr" not in backed_up and not backed_up.startswith("{"), backed_up
        copy = Path(backed_up.removeprefix("Backed up to ").split(": ")[0])
        assert copy.stat().st_mode & 0o777 == 0o600
        # Not a backup: refused before the container is stopped, naming the file as given.
        bad = tmp_path / "bad.sqlite.gz"
        bad.write_bytes(uuid.uuid4().bytes * 64)
        refused = engine.script("restore", str(bad), check=False,
                                FLASKR_CONTAINER=fresh.name, FLASKR_VOLUME=fresh.volume)  # fmt: skip
        assert refused.returncode == 1, refused
        assert f"{bad} is not a backup of flaskr's SQLite database" in refused.stderr
        assert f"stopped {fresh.name}" not in refused.stderr and ".incoming" not in refused.stderr
        # A name that is shell code: restore never runs it (it once ran inside the container).
        hostile = copy.rename(tmp_path / "x;echo INJECTED-$(id -un)>&2;.sqlite.gz")
        restores = recipe(
            "docs/backup.md",
            "Container (scripts/container)",
            0,
            replace={"FILE": shlex.quote(str(hostile))},
        )[1:]
        assert len(restores) == 2 and "--max-unpacked-mb 20480" in restores[1], restores
        for line in restores:
            restored = engine.sh(line, FLASKR_CONTAINER=fresh.name, FLASKR_VOLUME=fresh.volume)
            assert f"started {fresh.name} again" in restored.stderr, restored.stderr
            # The name itself is printed; what it would print when run (INJECTED-root) is not.
            assert not re.search(r"INJECTED-\w", restored.stdout + restored.stderr)
            # Plain sentences naming the user's file: no JSON, no temporary copy's name.
            said = restored.stdout.splitlines()
            assert said[0].startswith("Kept the previous database as "), said
            # ... a copy on the host, restorable the same way, not a path inside the volume.
            aside = Path(said[0].removeprefix("Kept the previous database as ").rstrip("."))
            assert aside.parent == ROOT / "instance" / "container" / "backups", said
            assert aside.name.endswith("-pre-restore.sqlite.gz") and aside.stat().st_size, said
            aside.unlink()
            assert said[-1].startswith(f"Restored {hostile}: "), said
            assert " posts, " in said[-1] and " users, revision " in said[-1], said
            assert not [line for line in said if line.startswith("{")], said
            assert ".incoming" not in restored.stdout + restored.stderr
        print(f"container restore says:\n{restored.stdout}{restored.stderr}")
        wait_for_http(fresh.base + "/healthz", timeout=90)
        before = acknowledged_before(tally, backup_started)["post"]
        found = stored_titles(engine, fresh.name)
        print(
            f"\ncontainer restore drill: {len(before & found)} of {len(before)} posts acknowledged"
            f" before the backup found after the restore; {backed_up}"
        )
        assert before and before <= found
        visitor = Visitor(fresh.base)
        login = visitor.post_form("/auth/login", {"username": "drill2", "password": PASSWORD})
        assert login.status_code == 302 and login.headers["Location"] == "/", login.text[:500]
        served = visitor.get(f"/{image_post}/image")
        assert served.status_code == 200 and served.content == image_bytes
    finally:
        engine.remove_container(live.name)
        engine.remove_container(fresh.name)


def slow_login(site: Site, post: Post) -> tuple[socket.socket, bytes]:
    """A login POST whose body is only half sent: a worker sits reading it."""
    browser = Visitor(site.base)
    token = browser.csrf("/auth/login")
    body = urllib.parse.urlencode(
        {"csrf_token": token, "username": post.username, "password": post.password}
    ).encode()
    head = (
        f"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nCookie: {browser.cookie_header()}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    conn = socket.create_connection(("127.0.0.1", site.port), timeout=30)
    conn.sendall(head + body[: len(body) // 2])
    return conn, body[len(body) // 2 :]


def test_deploy_container_measured_here_stop_in_flight_then_run_again(
    engine: Engine, site: Site, post: Post
) -> None:
    """The figures of "Measured here": `stop` with a request in flight (it completes, the stop
    stays within the 10 s), then the guide's `run` to the first 200 recipe, on the same volume,
    which still has everything."""
    conn, rest = slow_login(site, post)
    with conn:
        # Wait until a worker has accepted the connection (the listener's backlog is empty)
        # and read what was sent, so the request is truly in flight when the stop begins.
        def taken() -> bool:
            proc = engine.exec(
                site.name, "sh", "-c", "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true"
            ).stdout
            sockets = tcp_sockets(proc, 8000)
            listening = [rx for state, rx in sockets if state == "0A"]
            established = [rx for state, rx in sockets if state == "01"]
            return listening == [0] and bool(established) and not any(established)

        until(taken, 30, "a worker to take the slow request", step=0.1)
        # Read the log file itself: `podman logs` would wait for the lock `podman stop` holds.
        log_file = engine.log_path(site.name)
        started = time.monotonic()
        stopping = engine.popen("stop", FLASKR_CONTAINER=site.name)
        try:
            until(
                lambda: "Handling signal: term" in log_file.read_text(errors="replace"),
                STOP_TIMEOUT,
                "gunicorn to receive SIGTERM",
                step=0.1,
            )
            assert stopping.poll() is None, "the container stopped before the request finished"
            conn.sendall(rest)
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        finally:
            out, err = stopping.communicate(timeout=STOP_TIMEOUT + 20)
        took = time.monotonic() - started
    status_line = response.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 302"), response[:500]
    assert stopping.returncode == 0, err
    assert took < STOP_TIMEOUT, f"stop took {took:.1f}s"
    print(f"stop with a request in flight: {took:.2f}s")
    state = engine.cli(
        "container", "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", site.name
    )
    assert state.split() == ["exited", "0"]

    # Remove it and start a fresh container on the same volume: everything is still there.
    engine.script("rm", FLASKR_CONTAINER=site.name)
    assert not engine.exists(site.name)
    lines = recipe(
        "docs/deploy-container.md",
        "Measured here",
        0,
        replace={"127.0.0.1:8000": f"127.0.0.1:{site.port}"},
    )
    timed = engine.sh(
        "\n".join(lines), **engine.container_settings(site.name, site.volume, site.port)
    )
    took = re.fullmatch(r"run to first 200: (\d+\.\d\d) s\n", timed.stdout)
    assert took, timed
    print(f"{engine.kind}: {timed.stdout.strip()}")
    fresh = Site(site.name, site.volume, site.port, float(took.group(1)))
    check_post_readable(fresh, post)
    again = Visitor(fresh.base)
    assert (
        again.post_form("/auth/login", {"username": post.username, "password": post.password})
    ).status_code == 302
    # The same key file is mounted again, so the author's session cookie is still valid.
    post.browser.base = fresh.base
    assert post.browser.get("/create").status_code == 200

    # `upgrade` rebuilds (from cache here) and replaces the container on the same volume.
    engine.script(
        "upgrade", timeout=900, **engine.container_settings(fresh.name, fresh.volume, fresh.port)
    )
    wait_for_http(f"{fresh.base}/healthz", timeout=90)
    check_post_readable(fresh, post)
