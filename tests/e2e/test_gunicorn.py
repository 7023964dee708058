"""The README's two gunicorn command lines, run for real from the flaskr/ folder."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from toolkit import ROOT
from toolkit.images import png
from toolkit.ports import free_port
from toolkit.servers import (
    GUNICORN_FLAGS,
    app_env,
    children,
    gunicorn,
    init_db,
    running,
    serve,
)
from toolkit.visitors import Visitor
from toolkit.wait import until, wait_for_http


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = app_env(tmp_path / "instance")
    init_db(env)
    return env


def test_readme_tcp_command_serves_a_whole_visit(env, tmp_path: Path) -> None:
    """`gunicorn --workers 3 --timeout 120 --bind ADDR:PORT hello:app` (on loopback here)."""
    with serve(env, tmp_path / "log", ready="/hello") as server:
        visitor = Visitor(server.base)
        visitor.register_and_login("alice", "correct horse")
        visitor.create_post("From gunicorn", "Some **markdown**", "seed, gunicorn", png())
        post_id = visitor.post_id("From gunicorn")
        page = visitor.get(f"/{post_id}").text
        assert "<strong>markdown</strong>" in page
        assert "by alice on" in page
        image = visitor.get(f"/{post_id}/image")
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
        assert "From gunicorn" in visitor.get("/tag/seed").text
    log = (tmp_path / "log").read_text()
    assert log.count("Booting worker with pid") == 3
    events = [json.loads(line) for line in log.splitlines()]  # every line is JSON
    access = [e for e in events if e["logger"] == "gunicorn.access"]
    assert {"method": "GET", "path": "/hello", "status": 200}.items() <= access[0].items()
    assert all(len(e["request_id"]) == 32 for e in access)


def test_metrics_cover_every_worker(env, tmp_path: Path) -> None:
    env = {**env, "FLASKR_METRICS": "true"}
    with serve(env, tmp_path / "log", ready="/hello") as server:
        base = server.base
        before = hello_count(requests.get(base + "/metrics", timeout=10).text)
        for _ in range(60):  # new connections each time: gunicorn's sync workers take turns
            response = requests.get(base + "/hello", headers={"X-Request-ID": "e2e-1"}, timeout=10)
            assert response.headers["X-Request-ID"] == "e2e-1"
        after = hello_count(requests.get(base + "/metrics", timeout=10).text)
    assert after - before == 60  # all 60 counted, whichever of the 3 workers served them
    log = (tmp_path / "log").read_text()
    served_by = {json.loads(x).get("request_id") for x in log.splitlines()}
    assert "e2e-1" in served_by


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=10)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def test_readme_socket_command(env, tmp_path: Path) -> None:
    """`gunicorn --workers 3 --bind unix:flaskr.sock -m 007 --timeout 120 hello:app`."""
    sock = ROOT / "flaskr" / "flaskr.sock"
    args = ["--workers", "3", "--bind", "unix:flaskr.sock", "-m", "007", "--timeout", "120"]
    with gunicorn(args, env, tmp_path / "log"):
        until(sock.exists, 20, str(sock))
        mode = sock.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.filemode(mode) == "srwxrwx---"  # umask 007: owner and group only
        connection = UnixHTTPConnection(sock)
        connection.request("GET", "/hello")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"Hello, World!")
        connection.close()
    assert not sock.exists()  # gunicorn removes its socket on a clean stop


def test_refuses_to_start_without_secret(tmp_path: Path) -> None:
    env = app_env(tmp_path / "instance")
    del env["FLASKR_SECRET_KEY"]
    port = free_port()
    with gunicorn([*GUNICORN_FLAGS, "--bind", f"127.0.0.1:{port}"], env, tmp_path / "log") as p:
        assert p.wait(30) != 0
    assert "refusing to start without a real secret key" in (tmp_path / "log").read_text()


def hello_count(metrics: str) -> float:
    prefix = 'flaskr_requests_total{endpoint="hello",method="GET",status="200"}'
    line = next(x for x in metrics.splitlines() if x.startswith(prefix))
    return float(line.split()[-1])


def test_term_during_start_up_migrations_stops_cleanly(tmp_path: Path) -> None:
    """FLASKR_MIGRATE_ON_START=1 (the image's setting): a TERM that arrives while the
    migrations run, before gunicorn has its own signal handlers, still stops it, with 0."""
    env = app_env(tmp_path / "instance", FLASKR_MIGRATE_ON_START="1")
    port = free_port()
    with gunicorn([*GUNICORN_FLAGS, "--bind", f"127.0.0.1:{port}"], env, tmp_path / "log") as p:

        def migrating() -> bool:
            assert p.poll() is None, "gunicorn exited before init-db started"
            return any(b"init-db" in cmdline(child) for child in children(p.pid))

        until(migrating, 60, "init-db to start", step=0.02)
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 0
    assert (tmp_path / "instance" / "flaskr.sqlite").exists()  # the migration finished
    assert "Booting worker" not in (tmp_path / "log").read_text()


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_serve_keeps_its_files_private_and_refuses_beyond_loopback(tmp_path: Path) -> None:
    """scripts/serve: instance/ 0700, the database and key 0600, even in a folder made
    world-readable before; a bind beyond loopback (192.0.2.1, a documentation address no
    machine has, so nothing listens) is refused, saying gunicorn belongs behind nginx, unless
    the operator says it is (--behind-proxy)."""
    instance = tmp_path / "instance"
    instance.mkdir(mode=0o755)
    env = app_env(instance)
    del env["FLASKR_SECRET_KEY"]  # serve makes one
    port = free_port()
    serve = [str(ROOT / "scripts" / "serve")]
    with running(serve, tmp_path / "out", env={**env, "FLASKR_BIND": f"127.0.0.1:{port}"}):
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=120)
    assert "refusing" not in (tmp_path / "out").read_text()
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700
    for name in ("flaskr.sqlite", "secret_key"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600, name

    beyond = subprocess.run(
        serve, env={**env, "FLASKR_BIND": f"192.0.2.1:{port}"}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert beyond.returncode == 2, beyond
    assert f"refusing to listen on 192.0.2.1:{port}, beyond this machine" in beyond.stderr
    assert "put nginx in front" in beyond.stderr and "--behind-proxy" in beyond.stderr
    told = subprocess.run(
        [*serve, "--behind-proxy"], env={**env, "FLASKR_BIND": f"192.0.2.1:{port}"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert told.returncode != 0  # gunicorn cannot bind an address this machine lacks
    assert "refusing" not in told.stderr
    assert f"serve: flaskr on http://192.0.2.1:{port}/" in told.stdout, told


def new_master(old: int) -> int | None:
    """The master that ``old`` started on USR2, once it runs (gunicorn tells it GUNICORN_PID)."""
    for pid in children(old):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"GUNICORN_PID={old}".encode() in environ:
            return pid
    return None


def test_a_reload_is_a_new_master_on_the_new_code(env, tmp_path: Path) -> None:
    """The master loads the app (gunicorn.conf.py's preload_app), so a HUP forks new workers
    on the code already loaded; gunicorn's upgrade, as deploy/systemd/flaskr-reload drives it
    (USR2: a new master; then TERM to the old one), serves the new code, and no request fails
    meanwhile."""
    app_dir = tmp_path / "copy" / "flaskr"
    shutil.copytree(
        ROOT / "flaskr",
        app_dir,
        ignore=shutil.ignore_patterns("__pycache__", "*.sock"),
    )
    answers: list[str] = []
    failures: list[str] = []
    asking = threading.Event()
    new = None
    with serve(env, tmp_path / "log", ready="/hello", app_dir=app_dir) as server:
        base, old = server.base, server.pid
        loaded = Path(f"/proc/{old}/maps").read_text()
        assert "sqlalchemy" in loaded and "nh3" in loaded  # their native parts, in the master
        factory = app_dir / "__init__.py"
        factory.write_text(factory.read_text().replace('"Hello, World!"', '"Hello, reload!"'))

        before = server.workers()
        os.kill(old, signal.SIGHUP)
        until(lambda: len(w := server.workers()) == 3 and not w & before, 60, "HUP's workers")
        assert requests.get(base + "/hello", timeout=10).text == "Hello, World!"

        def keep_asking() -> None:
            while not asking.is_set():
                try:
                    answers.append(requests.get(base + "/hello", timeout=30).text)
                except requests.RequestException as e:
                    failures.append(repr(e))

        threads = [threading.Thread(target=keep_asking) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            until(lambda: len(answers) > 50, 30, "answers before the upgrade")
            os.kill(old, signal.SIGUSR2)
            new = until(lambda: new_master(old), 30, "a new master after USR2")
            until(lambda: len(children(new)) == 3, 60, "the new master's three workers")
            os.kill(old, signal.SIGTERM)
            server.process.wait(30)  # its workers finish their requests, then it exits
            seen = len(answers)
            until(lambda: len(answers) > seen + 50, 30, "answers after the upgrade")
        finally:
            asking.set()
            for thread in threads:
                thread.join(60)
            if new is not None:  # no longer the toolkit's child: stopped here
                os.kill(new, signal.SIGTERM)
                until(lambda: children(new) == set(), 30, "the new master's workers to stop")
    assert failures == []
    assert answers[0] == "Hello, World!" and set(answers[seen:]) == {"Hello, reload!"}
