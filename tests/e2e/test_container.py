"""The container path, end to end, on each engine (podman, and Docker Engine with a dockerd of
the suite's own): the unchanged Dockerfile built and run through scripts/container, with the
host's Python hidden, and checked from outside over HTTP and through a terminal.

CI cannot pull python:3.12.4-alpine3.20: a Debian bookworm stand-in made by mmdebstrap is
tagged with that name (once; later runs find it in the suite's storage of each engine)."""

from __future__ import annotations

import http.client
import io
import ipaddress
import itertools
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from flaskr.isolation import formatting
from toolkit import ROOT
from toolkit.cmdlines import watching_command_lines
from toolkit.containers import (
    BASE_IMAGE,
    SCRIPT,
    Engine,
    HiddenPython,
    tcp_sockets,
    terminal_session,
)
from toolkit.docker import DockerDaemon, Registry
from toolkit.drills import AFTER, BEFORE, PASSWORD, acknowledged_before, writers
from toolkit.images import png
from toolkit.isolation_reports import is_gunicorn, isolation_out, save_report
from toolkit.load import Load, Tally, Writer
from toolkit.ports import free_port
from toolkit.postgres import Postgres
from toolkit.recipes import recipe
from toolkit.visitors import Visitor
from toolkit.wait import until, wait_for_http

#: What a checkout has but the build context never takes (see .dockerignore).
UNTRACKED = shutil.ignore_patterns("__pycache__", "*.pyc", "instance", "*.sqlite*", "*.sock")

#: Seconds `docker stop` (`podman stop`) waits before SIGKILL (scripts/container passes
#: --stop-timeout 10).
STOP_TIMEOUT = 10


@pytest.fixture(scope="module", params=["podman", "docker"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    docker: DockerDaemon | None = None
    if request.param == "docker":
        docker = request.getfixturevalue("docker_daemon")
    ns = HiddenPython()
    secret_dir = tmp_path_factory.mktemp("container-secret")
    runner = Engine(request.param, ns, secret_dir / "keys" / "flaskr_secret_key", docker)
    try:
        runner.ensure_base_image()
        yield runner
    finally:
        try:
            runner.cleanup()
        finally:
            ns.stop()


@pytest.fixture(scope="module")
def image(engine: Engine) -> str:
    started = time.monotonic()
    engine.script("build", timeout=900)
    print(f"{engine.kind}: scripts/container build in {time.monotonic() - started:.1f}s")
    return engine.image


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry to ship images through, as a CI pipeline pushes and a server pulls."""
    served = Registry(tmp_path_factory.mktemp("registry"), free_port())
    try:
        wait_for_http(f"http://{served.address}/v2/", timeout=30)
        yield served
    finally:
        served.stop()


@dataclass
class Site:
    name: str
    volume: str
    port: int
    run_to_200: float

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_site(engine: Engine, name: str, volume: str, **extra: str) -> Site:
    port = free_port()
    settings = {**engine.container_settings(name, volume, port), **extra}
    started = time.monotonic()
    engine.script("run", **settings)
    wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=90)
    deployed = Site(name, volume, port, time.monotonic() - started)
    print(f"{name}: run to the first 200 in {deployed.run_to_200:.2f}s")
    return deployed


@pytest.fixture(scope="module")
def site(engine: Engine, image: str) -> Iterator[Site]:
    deployed = start_site(engine, f"{engine.prefix}-web", f"{engine.prefix}-data")
    yield deployed
    engine.remove_container(deployed.name)


@dataclass
class Post:
    username: str
    password: str
    title: str
    tag: str
    id: int
    image_size: tuple[int, int]
    browser: Visitor


@pytest.fixture(scope="module")
def post(site: Site) -> Post:
    """A person's whole flow: register, log in, create a post with an image and tags."""
    browser = Visitor(site.base)
    suffix = uuid.uuid4().hex[:8]
    username, password = f"ada{suffix}", f"correct horse {suffix}"
    registered = browser.post_form("/auth/register", {"username": username, "password": password})
    assert registered.status_code == 302, registered.text[:2000]
    assert registered.headers["Location"].endswith("/auth/login")
    logged_in = browser.post_form("/auth/login", {"username": username, "password": password})
    assert logged_in.status_code == 302, logged_in.text[:2000]
    title, tag = f"Shipped in a container {suffix}", f"e2e{suffix}"
    created = browser.post_multipart(
        "/create",
        {
            "title": title,
            "body": "Built from the *unchanged* Dockerfile.",
            "tags": f"{tag}, container",
        },
        {"image": ("dot.png", "image/png", png((200, 40, 90), (40, 30)))},
    )
    assert created.status_code == 302, created.text[:2000]
    tagged = browser.get(f"/tag/{tag}")
    assert tagged.status_code == 200
    ids = set(re.findall(r'href="/(\d+)"', tagged.text))
    assert len(ids) == 1, ids
    return Post(username, password, title, tag, int(ids.pop()), (40, 30), browser)


def check_post_readable(site: Site, post: Post) -> None:
    """The post's page, its tags and its image, as anyone sees them."""
    visitor = Visitor(site.base)
    page = visitor.get(f"/{post.id}")
    assert page.status_code == 200
    assert post.title in page.text
    assert f"/tag/{post.tag}" in page.text and "/tag/container" in page.text
    assert f"/{post.id}/image" in page.text
    image = visitor.get(f"/{post.id}/image")
    assert image.status_code == 200
    assert image.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == post.image_size
    assert str(post.id) in visitor.get(f"/tag/{post.tag}").text


def test_build_and_run_need_no_python_on_the_host(engine: Engine, site: Site) -> None:
    """The image was built and the container started inside the namespace below, where no
    python or pip runs: the container path needs none on the host."""
    assert engine.ns.folders and engine.ns.files, "found no Python on the host to hide"
    probe = engine.ns.argv(
        [
            "sh",
            "-c",
            "export PATH=$PATH:/usr/local/bin:/usr/bin:/bin:/root/.pyenv/shims; "
            "for p in python python3 pip pip3 "
            + " ".join(Path(f).name for f in engine.ns.files)
            + '; do if "$p" --version >/dev/null 2>&1; then echo "$p runs"; fi; done; '
            'for d in "$@"; do ls -A "$d"; done',
            "sh",
            *engine.ns.folders,
        ]
    )
    seen = subprocess.run(probe, capture_output=True, text=True, check=True, timeout=30)  # noqa: S603
    assert seen.stdout.strip() == "", seen.stdout
    assert site.run_to_200 < 60
    # Every build is labelled, so that pruning finds what it leaves untagged (only upgrade's was).
    labels = engine.cli("image", "inspect", "--format", "{{json .Config.Labels}}", engine.image)
    assert json.loads(labels).get("org.flaskr.built-by") == "scripts-container", labels


def test_a_person_posts_with_an_image_and_tags(site: Site, post: Post) -> None:
    check_post_readable(site, post)
    # The author is logged in and sees the post as theirs.
    page = post.browser.get(f"/{post.id}")
    assert post.username in page.text
    assert f"/{post.id}/update" in page.text


def test_ps_aux_inside_lists_gunicorn_and_its_three_workers(engine: Engine, site: Site) -> None:
    out = engine.exec(site.name, "ps", "aux").stdout
    rows = out.strip().splitlines()[1:]
    commands = [row.split(None, 10)[10] for row in rows]
    gunicorn = [c for c in commands if "gunicorn" in c and "hello:app" in c]
    assert len(gunicorn) == 4, out
    assert [c for c in commands if c not in gunicorn] == ["ps aux"], out
    # gunicorn is PID 1 and the parent of exactly three workers; ps came from the engine's exec.
    tree = engine.exec(site.name, "ps", "-eo", "pid=,ppid=,args=").stdout
    procs = [row.split(None, 2) for row in tree.strip().splitlines()]
    by_parent = sorted((int(ppid), args) for pid, ppid, args in procs if int(pid) != 1)
    assert [args for pid, ppid, args in procs if pid == "1"][0].endswith("hello:app"), tree
    assert [ppid for ppid, _ in by_parent] == [0, 1, 1, 1], tree
    assert all("gunicorn" in args for ppid, args in by_parent if ppid == 1), tree


def test_the_seeds_docker_exec_it_sh_then_ps_aux(engine: Engine, site: Site) -> None:
    """The seed's commands as a person types them, on a terminal: `docker exec -it NAME sh`
    (with podman, `scripts/container shell`, which runs `podman exec -it NAME sh`), then
    `ps aux`, which lists gunicorn's master and three workers, the shell and ps: nothing else."""
    if engine.kind == "docker":
        argv = ["docker", "exec", "-it", site.name, "sh"]
    else:
        argv = engine.ns.argv([str(SCRIPT), "shell"])
    lines = ["stty size", "ps aux", "exit"]
    out = terminal_session(argv, engine.env(FLASKR_CONTAINER=site.name), lines, 60)
    assert "stty size\n50 250\n" in out, out  # the terminal's size reached the container
    print(f"$ {' '.join(argv[-5:])}\n{out}")
    listing = out.split("ps aux\n", 1)[1].rsplit("$ ", 1)[0]
    header, *rows = listing.strip().splitlines()
    assert header.split()[-1] == "COMMAND" and header.split()[6] == "TTY", header
    commands = [row.split(None, 10)[10] for row in rows]
    gunicorn = [c for c in commands if "gunicorn" in c and c.endswith("hello:app")]
    assert len(gunicorn) == 4, listing
    assert sorted(c for c in commands if c not in gunicorn) == ["ps aux", "sh"], listing
    # The shell and ps have the terminal; gunicorn has none.
    ttys = {row.split(None, 10)[10]: row.split()[6] for row in rows}
    assert ttys["sh"].startswith("pts/") and ttys["ps aux"] == ttys["sh"], listing
    assert {ttys[c] for c in gunicorn} == {"?"}, listing


def test_python_and_pip_inside_are_the_venvs(engine: Engine, site: Site) -> None:
    # One name per `command -v`: dash (the stand-in's sh) answers only for the first of several.
    out = engine.exec(site.name, "sh", "-c", "for c in python pip; do command -v $c; done").stdout
    assert out.split() == ["/opt/venv/bin/python", "/opt/venv/bin/pip"]
    pip = engine.exec(site.name, "pip", "--version").stdout
    assert "/opt/venv/" in pip, pip


def test_runs_as_non_root_on_a_read_only_root(engine: Engine, site: Site) -> None:
    status = engine.exec(site.name, "cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
    assert uids and uids.group(1) != "0" and uids.group(2) != "0", status
    assert engine.exec(site.name, "id", "-u").stdout.strip() != "0"
    inspect = engine.cli(
        "container",
        "inspect",
        "--format",
        "{{.HostConfig.ReadonlyRootfs}}|{{range .Mounts}}{{.Destination}} {{end}}|{{.HostConfig.Tmpfs}}",
        site.name,
    ).strip()
    read_only, mounts, tmpfs = inspect.split("|")
    assert read_only == "true"
    assert sorted(mounts.split()) == ["/run/secrets/flaskr_secret_key", "/var/lib/flaskr"]
    assert "/tmp" in tmpfs and "/run" not in tmpfs and "/var/tmp" not in tmpfs, tmpfs
    denied = engine.exec(site.name, "touch", "/flaskr/x", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert engine.exec(site.name, "touch", "/var/lib/flaskr/.w", "/tmp/.w").returncode == 0
    assert "flaskr.sqlite" in engine.exec(site.name, "ls", "/var/lib/flaskr").stdout


def test_the_secret_key_comes_from_outside_the_image(engine: Engine, site: Site) -> None:
    image_env = engine.cli("image", "inspect", "--format", "{{.Config.Env}}", engine.image)
    assert "SECRET_KEY" not in image_env
    env = engine.exec(site.name, "env").stdout
    assert "FLASKR_SECRET_KEY_FILE=/run/secrets/flaskr_secret_key" in env
    assert "FLASKR_SECRET_KEY=" not in env
    assert engine.secret_file.stat().st_mode & 0o777 == 0o444
    assert engine.secret_file.parent.stat().st_mode & 0o777 == 0o700


def test_healthcheck_uses_what_the_image_has(engine: Engine, site: Site) -> None:
    """podman runs the HEALTHCHECK on demand; Docker runs it every 30 s and `docker inspect`
    shows `starting` until the first run passes, then `healthy`."""

    def healthy() -> bool:
        health = engine.script("health", FLASKR_CONTAINER=site.name).stdout.strip()
        assert health.splitlines()[-1:] in (["healthy"], ["starting"]), health
        return health.splitlines()[-1:] == ["healthy"]

    until(healthy, 75, "the HEALTHCHECK to pass", step=1)
    if engine.kind == "docker":
        probes = json.loads(engine.cli("inspect", "--format", "{{json .State.Health}}", site.name))
        print("docker inspect .State.Health:", json.dumps(probes, indent=1))
        assert probes["Status"] == "healthy" and probes["Log"][-1]["ExitCode"] == 0, probes


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


def newer_checkout(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the checkout with one new static file, as a `git pull` brings."""
    newer = tmp_path / "newer"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "instance")
    for name in ("flaskr", "scripts", "deploy"):
        shutil.copytree(ROOT / name, newer / name, ignore=ignore)
    for name in ("Dockerfile", ".dockerignore", "requirements.txt"):
        shutil.copy2(ROOT / name, newer / name)
    marker = f"newer-{uuid.uuid4().hex[:8]}.txt"
    (newer / "flaskr/static" / marker).write_text("the newer image\n")
    return newer, marker


class Probe:
    """Clients asking /healthz on 127.0.0.1 in a loop, each request a new connection, 20 ms
    apart: what an upgrade or a rollback leaves unanswered. Bounded: CLIENTS threads only."""

    CLIENTS = 4

    def __init__(self, base: str) -> None:
        self.url = f"{base}/healthz"
        self.answers: list[tuple[float, bool]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.ask, daemon=True) for _ in range(self.CLIENTS)]

    def ask(self) -> None:
        while not self.stopping.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:  # noqa: S310
                    ok = answer.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
            self.answers.append((time.monotonic(), ok))
            time.sleep(0.02)

    def __enter__(self) -> Probe:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=10)

    def window(self) -> tuple[int, int, float]:
        """(refused, asked, the longest time in seconds between two answers)."""
        answered = sorted(t for t, ok in self.answers if ok)
        gaps = [b - a for a, b in itertools.pairwise(answered)]
        refused = sum(1 for _, ok in self.answers if not ok)
        return refused, len(self.answers), max(gaps, default=0.0)


def documented_window() -> float:
    """The most seconds without an answer that deploy-container.md's "Upgrades" states."""
    text = (ROOT / "docs/deploy-container.md").read_text()
    found = re.search(r"at\s+most\s+(\d+(?:\.\d+)?)\s+s\s+without\s+an\s+answer", text)
    assert found, "deploy-container.md no longer states the upgrade's window"
    return float(found.group(1))


@pytest.fixture
def release_kept(engine: Engine, image: str) -> Iterator[None]:
    """Upgrades and rollbacks retag the suite's image: afterwards, whatever happened, the image
    names the release it named before, and no IMAGE:rolled-back marker is left (with one, every
    later `build` of the suite refuses, as a rolled-back site's should)."""
    built = engine.cli("image", "inspect", "--format", "{{.Id}}", image).strip()
    yield
    engine.cli("rmi", engine.rolled_back, check=False)
    engine.cli("tag", built, image)


@pytest.mark.usefixtures("release_kept")
def test_deploy_container_one_script_scripts_container(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The guide's list of commands, run as written, in order (the upgrade from a newer
    checkout, as `git pull` brings). Between them: the window upgrade and rollback leave the
    port unanswered, under a bounded load, within what the guide states; the refusal to roll
    back past a migration; a rollback that stays through `rm` + `run`, `build` and `upgrade`
    until `--forward`; the app's commands on a stopped container."""
    name, volume, port = f"{engine.prefix}-roll", f"{engine.prefix}-roll-data", free_port()
    settings = engine.container_settings(name, volume, port)
    base = f"http://127.0.0.1:{port}"
    newer, marker = newer_checkout(tmp_path)
    password = f"pw-{uuid.uuid4().hex}"
    limit = documented_window()

    def logs_in(user: str = "ops") -> bool:
        form = {"username": user, "password": password}
        return Visitor(base).post_form("/auth/login", form).status_code == 302

    def inspect(ref: str, key: str, kind: str = "image") -> str:
        return engine.cli(kind, "inspect", "--format", key, ref).strip()

    def newer_served() -> bool:
        return Visitor(base).get(f"/static/{marker}").status_code == 200

    def under_probe(line: str, what: str) -> subprocess.CompletedProcess[str]:
        with Probe(base) as probe:
            done = engine.sh(line, timeout=900, **settings)
            wait_for_http(f"{base}/healthz", timeout=90)
            time.sleep(0.5)
        refused, asked, window = probe.window()
        print(f"{engine.kind} {what}: {refused} of {asked} requests refused, {window:.2f}s "
              f"without an answer (the guide: at most {limit:g} s)")  # fmt: skip
        assert window <= limit, f"{what} left the port {window:.2f}s without an answer"
        return done

    lines = recipe(
        "docs/deploy-container.md",
        "One script: scripts/container",
        0,
        replace={
            "logs -f": "logs --tail 5",
            "scripts/container upgrade": f"{newer}/scripts/container upgrade",
            "flask …": "flask routes",
            "engine …": "engine ps --all",
        },
    )
    verbs = [line.split()[1] for line in lines]
    assert verbs == ["build", "run", "logs", "shell", "status", "health", "stop", "start", "rm",
                     "upgrade", "rollback", "flask", "engine"], lines  # fmt: skip
    run = dict(zip(verbs, lines, strict=True))
    engine.sh(run["build"], timeout=900, **settings)
    old = inspect(image, "{{.Id}}")
    engine.sh(run["run"], **settings)
    wait_for_http(f"{base}/healthz", timeout=90)
    made = engine.script("flask", "create-user", "ops", "--password", password, **settings)
    assert "Created user ops." in made.stdout and logs_in()
    shown = engine.sh(run["logs"], **settings)
    assert '"path": "/auth/login"' in shown.stdout + shown.stderr, shown
    assert engine.sh(run["shell"], stdin="id -u\n", **settings).stdout.split() == ["10001"]
    status = engine.sh(run["status"], **settings).stdout
    assert f"engine: {engine.kind}" in status and name in status, status
    engine.sh(run["health"], **settings)
    engine.sh(run["stop"], **settings)
    assert inspect(name, "{{.State.Running}}", "container") == "false"
    engine.sh(run["start"], **settings)
    wait_for_http(f"{base}/healthz", timeout=90)
    engine.sh(run["rm"], **settings)
    assert not engine.exists(name)
    engine.script("run", **settings)  # the site again, to upgrade while it serves
    wait_for_http(f"{base}/healthz", timeout=90)

    upgraded = under_probe(run["upgrade"], "upgrade")
    assert f"kept the image it replaces as {engine.previous}" in upgraded.stderr, upgraded.stderr
    assert newer_served() and logs_in()
    new = inspect(image, "{{.Id}}")
    assert inspect(engine.previous, "{{.Id}}") == old != new
    assert inspect(name, "{{.Image}}", "container") == new

    # A database migrated past what the previous image knows: refused, the container untouched.
    sql = "import sqlite3, sys; c = sqlite3.connect('/var/lib/flaskr/flaskr.sqlite'); "
    current = sql + "print(c.execute('select version_num from alembic_version').fetchone()[0])"
    revision = engine.exec(name, "python", "-c", current).stdout.strip()
    setting = sql + "c.execute('update alembic_version set version_num=?', sys.argv[1:])"
    engine.exec(name, "python", "-c", setting + "; c.commit()", "9999_from_the_future")
    try:
        refused = engine.script("rollback", timeout=300, check=False, **settings)
        assert refused.returncode == 1, refused.stderr
        assert "refusing to roll back: the database" in refused.stderr
        assert "migrated past what" in refused.stderr
        assert inspect(name, "{{.State.Running}}", "container") == "true"
    finally:
        engine.exec(name, "python", "-c", setting + "; c.commit()", revision)

    rolled = under_probe(run["rollback"], "rollback")
    assert f"which {engine.previous} knows" in rolled.stderr, rolled.stderr
    assert not newer_served() and logs_in()
    assert inspect(name, "{{.Image}}", "container") == old
    # It stays: the image name is the release that serves, the one left is marked.
    assert inspect(image, "{{.Id}}") == old and inspect(engine.rolled_back, "{{.Id}}") == new
    # ... and the container is one of that name: `status` shows it, not a bare image id.
    assert f"{name} now runs {engine.previous}" not in rolled.stderr, rolled.stderr
    shown = engine.script("status", **settings).stdout
    assert image.removeprefix("localhost/") in shown, shown
    assert "/auth/login" in engine.sh(run["flask"], **settings).stdout
    assert name in engine.sh(run["engine"], **settings).stdout

    # The metrics recipe's `rm` + `run` (any change of ARGS) starts the release that served.
    engine.script("rm", **settings)
    engine.script("run", **settings)
    wait_for_http(f"{base}/healthz", timeout=90)
    assert inspect(name, "{{.Image}}", "container") == old and not newer_served()
    # Moving forward again takes a word: build and upgrade say so and change nothing.
    for verb in ("build", "upgrade"):
        kept = engine.script(verb, check=False, checkout=newer, **settings)
        assert kept.returncode == 1, kept
        assert f"refusing to {verb}: {name} was rolled back" in kept.stderr, kept.stderr
        assert f"{verb} --forward" in kept.stderr
        assert inspect(image, "{{.Id}}") == old and not newer_served()
    forward = engine.script("upgrade", "--forward", timeout=900, checkout=newer, **settings)
    assert "moved forward" in forward.stderr, forward.stderr
    wait_for_http(f"{base}/healthz", timeout=90)
    assert newer_served() and logs_in()
    assert engine.script("engine", "image", "inspect", engine.rolled_back, check=False).returncode
    # Every build is labelled and pruned: build, upgrade, rollback, upgrade --forward leave no
    # untagged image of this script's behind (two of 339 MB, when only upgrade labelled).
    dangling = engine.cli("images", "--quiet", "--filter", "dangling=true",
                          "--filter", "label=org.flaskr.built-by=scripts-container")  # fmt: skip
    assert dangling.split() == [], dangling

    # Past a migration, the refusal's own way out, as it prints it: the backup taken before
    # the upgrade restored without migrating it (the container stays stopped), then rollback.
    # (A revision neither image knows stands for the newer image's migration.)
    taken = engine.script("backup", str(tmp_path / "backups"), **settings).stdout
    backup = re.search(r"^Backed up to (\S+): ", taken, re.M)
    assert backup, taken
    engine.exec(name, "python", "-c", setting + "; c.commit()", "9999_from_the_future")
    refused = engine.script("rollback", timeout=300, check=False, **settings)
    advice = re.search(r"roll back: (\S+ stop && \S+ restore FILE --no-migrate && \S+ rollback)",
                       refused.stderr.replace("\n", " "))  # fmt: skip
    assert refused.returncode == 1 and advice, refused.stderr
    back = engine.sh(advice[1].replace("FILE", backup[1]), timeout=600, **settings)
    print(f"{engine.kind} the refusal's way out: {advice[1]}\n{back.stdout}{back.stderr}")
    assert "not migrated (--no-migrate)" in back.stdout, back.stdout
    assert "is not started again" in back.stderr and "which " in back.stderr, back.stderr
    wait_for_http(f"{base}/healthz", timeout=90)
    assert inspect(name, "{{.Image}}", "container") == old and not newer_served() and logs_in()

    # Stopped (as for copy-db): the command runs in a one-off container on the same volume.
    engine.script("stop", **settings)
    made = engine.script("flask", "create-user", "ops2", "--password", password, **settings)
    assert "Created user ops2." in made.stdout, made.stderr
    engine.script("start", **settings)
    wait_for_http(f"{base}/healthz", timeout=90)
    assert logs_in("ops2")
    engine.remove_container(name)


def test_deploy_container_the_app_s_commands(engine: Engine, site: Site) -> None:
    """create-user (the password typed twice, as at its prompt) and make-admin, as written."""
    who = f"adm{uuid.uuid4().hex[:6]}"
    password = f"correct horse {who}"
    lines = recipe(
        "docs/deploy-container.md", "The app's commands", 0, replace={" admin": f" {who}"}
    )
    at = {"FLASKR_CONTAINER": site.name}
    made = engine.sh(lines[0], stdin=f"{password}\n{password}\n", **at)
    assert f"Created user {who}." in made.stdout, made
    assert password not in made.stdout + made.stderr
    assert engine.sh(lines[1], **at).stdout.strip() == f"{who} is an admin."
    assert len(lines) == 2, lines
    form = {"username": who, "password": password}
    assert Visitor(site.base).post_form("/auth/login", form).status_code == 302


def test_operating_users_and_admins_in_the_container(engine: Engine, site: Site) -> None:
    """operating.md's container block: create-user, make-admin, clear-login-failures."""
    who = f"own{uuid.uuid4().hex[:6]}"
    password = f"correct horse {who}"
    lines = recipe(
        "docs/operating.md",
        "Users and admins",
        1,
        replace={" admin": f" {who}", " alice": f" {who}"},
    )
    at = {"FLASKR_CONTAINER": site.name}
    assert len(lines) == 3, lines
    made = engine.sh(lines[0], stdin=f"{password}\n{password}\n", **at)
    assert f"Created user {who}." in made.stdout, made
    assert engine.sh(lines[1], **at).stdout.strip() == f"{who} is an admin."
    wrong = {"username": who, "password": "not the password"}
    assert Visitor(site.base).post_form("/auth/login", wrong).status_code != 302
    cleared = engine.sh(lines[2], **at).stdout.strip()
    assert cleared == f"Forgot 1 failed logins counted against {who}.", cleared


def test_operating_metrics_scraped_inside_the_container(engine: Engine, image: str) -> None:
    """The metrics recipe on both engines: `scripts/container metrics` asks from inside, on
    127.0.0.1. A host `curl` through Docker's published port comes from the bridge's gateway:
    a plain 404, and the log names the address and the setting."""
    name, volume, port = f"{engine.prefix}-metrics", f"{engine.prefix}-metrics-data", free_port()
    settings = engine.container_settings(name, volume, port)
    lines = recipe("docs/operating.md", "Metrics", 1, replace={" ARGS": ""})
    assert [line.split()[1] for line in lines] == ["rm", "run", "metrics"], lines
    try:
        for line in lines[:2]:
            engine.sh(line, **settings)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", timeout=90)
        scraped = engine.sh(lines[2], **settings).stdout
        assert 'flaskr_requests_total{endpoint="health.healthz"' in scraped, scraped[:2000]
        from_host = Visitor(base).get("/metrics")
        logs = engine.script("logs", **settings)
        refusals = [
            json.loads(line)["message"]
            for line in (logs.stdout + logs.stderr).splitlines()
            if "/metrics refused" in line
        ]
        print(f"{engine.kind}: curl from the host: {from_host.status_code}; log: {refusals}")
        # Both engines, as root, bring the host's request from the bridge's gateway.
        assert from_host.status_code == 404
        assert len(refusals) == 1 and "not in FLASKR_METRICS_ALLOW" in refusals[0], refusals
        assert re.match(r"/metrics refused to [0-9a-f.:]+: ", refusals[0]), refusals
        assert "127.0.0.1" not in refusals[0].split(":")[0]
    finally:
        engine.remove_container(name)


def test_build_without_the_base_image_says_the_base_is_missing(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """No Docker Hub: `build` names the missing base and what to do, not CA certificates.
    podman: an empty storage; Docker: the suite's stand-in untagged for the time of the build."""
    nobase = f"localhost/{engine.prefix}:nobase"
    engine.images.add(nobase)
    settings = {"FLASKR_IMAGE": nobase}
    base_id = ""
    if engine.kind == "podman":
        settings["FLASKR_PODMAN_ROOT"] = str(tmp_path / "empty-storage")
    else:
        base_id = engine.cli("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE).strip()
        engine.cli("rmi", BASE_IMAGE)  # untagged: the stand-in keeps its own name
    try:
        built = engine.script("build", check=False, timeout=300, **settings)
    finally:
        if base_id:
            engine.cli("tag", base_id, BASE_IMAGE)
    assert built.returncode == 1, built
    said = built.stderr
    print(f"{engine.kind}: {said.strip().splitlines()[-2:]}")
    assert "the base image python:3.12.4-alpine3.20 is not on this machine" in said, said
    assert "engine load -i base.tar" in said and "registry mirror" in said
    assert "CERTIFICATE" not in said and "CA bundle" not in said


class BridgedPostgres(Postgres):
    """Debian's PostgreSQL (tests/e2e/harness/postgres.py), listening on every address too, so
    that containers on the engine's bridge reach it through its gateway, as a database server
    elsewhere; from there only the role ``flaskr``, with its password."""

    def start(self) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=* -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.base / "log"), "-w", "-t", "60", "start")  # fmt: skip

    def admit(self, subnet: str, password: str) -> None:
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host flaskr flaskr {subnet} scram-sha-256\n")
        assert password.isalnum(), "a literal in SQL: letters and digits only"
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=10, autocommit=True) as connection:
            connection.execute(f"CREATE ROLE flaskr LOGIN PASSWORD '{password}'")
            connection.execute("ALTER DATABASE flaskr OWNER TO flaskr")
            connection.execute("ALTER SCHEMA public OWNER TO flaskr")
            connection.execute("SELECT pg_reload_conf()")


def bridge(engine: Engine) -> tuple[str, str]:
    """(subnet, gateway) of the engine's default network, where its containers are. A new
    dockerd's bridge may list no gateway: then it is the subnet's first address, docker0's."""
    if engine.kind == "docker":
        shown = "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}"
        found = engine.cli("network", "inspect", "--format", shown, "bridge").split()
    else:
        shown = "{{range .Subnets}}{{.Subnet}} {{.Gateway}}{{end}}"
        found = engine.cli("network", "inspect", "--format", shown, "podman").split()
    if len(found) == 1:
        found.append(str(next(ipaddress.ip_network(found[0]).hosts())))
    assert len(found) == 2, found
    return found[0], found[1]


def test_operating_moving_to_postgresql_from_the_container(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """operating.md's container move: init-db on PostgreSQL with database.env, stop, copy-db
    from the stopped container's volume (the password from a 0600 file, the form the guide
    gives after the block), then the container again on PostgreSQL, serving the same post."""
    subnet, gateway = bridge(engine)
    pg = BridgedPostgres(free_port())
    name, volume, port = f"{engine.prefix}-pg", f"{engine.prefix}-pg-data", free_port()
    settings = engine.container_settings(name, volume, port)
    base = f"http://127.0.0.1:{port}"
    password = uuid.uuid4().hex
    try:
        pg.create()
        pg.admit(subnet, password)
        engine.script("run", **settings)
        wait_for_http(f"{base}/healthz", timeout=90)
        author = Visitor(base)
        form = {"username": "mover", "password": "a long password here"}
        assert author.post_form("/auth/register", form).status_code == 302
        assert author.post_form("/auth/login", form).status_code == 302
        title = f"Moved to PostgreSQL {uuid.uuid4().hex[:6]}"
        created = author.post_form("/create", {"title": title, "body": "From SQLite."})
        assert created.status_code == 302, created.text[:1000]
        sqlite_backup = engine.script("backup", str(tmp_path / "backups"), **settings).stdout
        sqlite_backup = sqlite_backup.removeprefix("Backed up to ").split(": ")[0]
        env_file, password_file = tmp_path / "database.env", tmp_path / "pgpass"
        for secret, text in (
            (env_file, f"FLASKR_DATABASE_URL=postgresql://flaskr:{password}@{gateway}:{pg.port}/flaskr\n"),
            (password_file, password + "\n"),
        ):  # fmt: skip
            secret.write_text(text)
            secret.chmod(0o600)
        target = f"postgresql://flaskr@{gateway}:{pg.port}/flaskr"
        lines = recipe(
            "docs/operating.md",
            "Moving to PostgreSQL",
            1,
            replace={
                "database.env": str(env_file),
                "flaskr:latest": engine.image,
                "'TARGET'": f"'{target}' --password-file {shlex.quote(str(password_file))}",
            },
        )
        for line in lines:
            done = engine.sh(line, timeout=300, **settings)
            assert password not in done.stdout + done.stderr
        wait_for_http(f"{base}/healthz", timeout=90)
        assert pg.query("SELECT title FROM post") == [(title,)]
        assert title in Visitor(base).get("/").text
        assert Visitor(base).post_form("/auth/login", form).status_code == 302
        env = engine.exec(name, "env").stdout
        assert f"@{gateway}:{pg.port}/flaskr" in env
        # backup and restore work on the volume's SQLite file: on PostgreSQL they refuse (the
        # restore once "succeeded" into the unused file), stopping nothing.
        for command in (["backup"], ["restore", sqlite_backup]):
            refused = engine.script(*command, check=False, **settings)
            assert refused.returncode == 1, refused
            assert f"{name} keeps its data in PostgreSQL" in refused.stderr, refused.stderr
            assert "the image has no pg_dump or pg_restore" in refused.stderr
            assert f"stopped {name}" not in refused.stderr
        assert pg.query("SELECT title FROM post") == [(title,)]
        assert title in Visitor(base).get("/").text
    finally:
        engine.remove_container(name)
        pg.destroy()


def test_a_command_on_a_stopped_container_puts_no_secret_on_a_command_line(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """`scripts/container flask` on a stopped container runs a one-off container with the
    stopped one's environment, secret key included: it goes in a private file, never on the
    engine's command line (it did, as `--env FLASKR_SECRET_KEY=...`). So does the password of
    `copy-db --password-file FILE`, a host file (as PGPASSWORD); FILE must be private."""
    key = uuid.uuid4().hex + uuid.uuid4().hex
    password = uuid.uuid4().hex
    secret = tmp_path / "target-password"
    secret.write_text(password + "\n")
    secret.chmod(0o644)
    # Nothing listens on port 9: the copy gets as far as connecting, with the password.
    copy_db = ["flask", "copy-db", "--to", "postgresql://flaskr@127.0.0.1:9/flaskr"]
    name = f"{engine.prefix}-argv"
    settings = engine.container_settings(name, f"{name}-data", free_port())
    engine.script("run", FLASKR_SECRET_KEY=key, **settings)
    try:
        engine.script("stop", **settings)
        with watching_command_lines(key.encode()) as watch:
            command = engine.popen("flask", "routes", **settings)
            out, err = command.communicate(timeout=300)
        assert command.returncode == 0, err
        assert "/auth/login" in out, out
        assert watch.rounds > 1 and watch.found == []

        refused = engine.script(*copy_db, "--password-file", str(secret), check=False, **settings)
        assert refused.returncode == 1 and f"chmod 600 {secret}" in refused.stderr, refused
        secret.chmod(0o600)
        with watching_command_lines(password.encode()) as watch:
            command = engine.popen(*copy_db, "--password-file", str(secret), **settings)
            out, err = command.communicate(timeout=300)
        assert command.returncode == 1 and "failed, nothing was kept" in err, err
        assert password not in out + err
        assert watch.rounds > 1 and watch.found == []
    finally:
        engine.remove_container(name)


def test_run_refuses_a_secret_key_file_the_app_cannot_read(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    key = tmp_path / "secret_key"
    key.write_text(uuid.uuid4().hex * 2)
    key.chmod(0o600)
    name = f"{engine.prefix}-unreadable"
    settings = engine.container_settings(name, f"{name}-data", free_port())
    done = engine.script("run", check=False, FLASKR_SECRET_KEY_FILE=str(key), **settings)
    assert done.returncode == 1
    assert "unreadable for the app, which runs as uid 10001" in done.stderr, done.stderr
    assert f"chmod 0444 {key}" in done.stderr
    assert engine.script("engine", "container", "exists", name, check=False).returncode == 1
    # A key the app refuses: `run` said "started" over a restart loop; it waits and fails.
    try:
        started = time.monotonic()
        done = engine.script("run", check=False, FLASKR_SECRET_KEY="short", **settings)
        took = time.monotonic() - started
        print(f"{engine.kind}: run with a short key failed in {took:.1f}s")
        assert done.returncode == 1, done
        assert f"{name} did not start serving" in done.stderr, done.stderr
        assert "secret key" in done.stderr.split("did not start")[0], done.stderr
        assert "started;" not in done.stderr and took < 60
    finally:
        engine.remove_container(name)


# --- the seed's claims, measured: the isolation report from inside and from the host ---------


def test_isolation_report_from_the_serving_worker_and_the_host_beside_it(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The seed's claims, read by the app itself: the report collected by the gunicorn worker
    serving /admin/isolation.json sees its own PID namespace with gunicorn alone, the venv's
    python, a non-root user without capabilities; the host beside it, outside the namespace
    that hides its Python, sees its own PID namespace, many processes and python and pip."""
    name, volume = f"{engine.prefix}-iso", f"{engine.prefix}-iso-data"
    port = free_port()
    admin = f"op{uuid.uuid4().hex[:8]}"
    engine.script(
        "run", "-e", "FLASKR_ISOLATION_PAGE=true", **engine.container_settings(name, volume, port)
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/healthz", timeout=90)
        assert Visitor(base).get("/admin/isolation.json").status_code == 404  # not for visitors
        browser = Visitor(base)
        password = f"correct horse {admin}"
        fields = {"username": admin, "password": password}
        assert browser.post_form("/auth/register", fields).status_code == 302
        # An admin by decision, made with the operator's command inside the container.
        engine.script(
            "engine", "exec", "--workdir", "/", name, "flask", "--app", "flaskr", "make-admin",
            admin,
        )  # fmt: skip
        assert browser.post_form("/auth/login", fields).status_code == 302
        answer = browser.get("/admin/isolation.json")
        assert answer.status_code == 200, answer.text[:2000]
        assert answer.headers["Cache-Control"] == "no-store"
        inside = json.loads(answer.content)
        # The same collector run with `docker exec` (`podman exec`): one more process.
        exec_report = json.loads(
            engine.script(
                "engine", "exec", "--workdir", "/", name, "python", "-m", "flaskr.isolation",
                "--json", timeout=60,
            ).stdout
        )  # fmt: skip
    finally:
        engine.remove_container(name)
    # The host beside it: this machine's own interpreter, outside the hidden-Python namespace.
    beside = json.loads(
        subprocess.run(  # noqa: S603
            [sys.executable, "-m", "flaskr.isolation", "--json", "--no-commands"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
    )

    procs, deps, priv = inside["processes"], inside["dependencies"], inside["privileges"]
    commands = [p["command"] for p in procs["visible"]]
    # Its own PID namespace, where gunicorn is PID 1 and nothing but gunicorn runs.
    assert procs["pid_namespace"] == "own", procs
    assert procs["ns_pid"] != beside["processes"]["ns_pid"]
    assert procs["pid1"].startswith("/opt/venv/bin/") and procs["pid1"].endswith("hello:app")
    assert procs["count"] == 4 and all(is_gunicorn(p) for p in procs["visible"]), commands
    assert inside["pid"] in [p["pid"] for p in procs["visible"] if p["pid"] != 1]
    assert inside["supervisor"]["systemd"] is False
    assert inside["supervisor"]["parent"]["pid"] == 1
    # python and pip are the image's venv's.
    assert deps["prefix"] == "/opt/venv" and deps["executable"].startswith("/opt/venv/bin/")
    assert deps["on_path"]["python"]["path"] == "/opt/venv/bin/python"
    assert deps["on_path"]["pip"]["path"] == "/opt/venv/bin/pip"
    # (requirements.txt also pins tzdata for Windows only: "not installed" is right for it.)
    assert all(deps["packages"][n] for n in ("flask", "gunicorn", "werkzeug")), deps["packages"]
    # Not root, no capabilities, no privilege gain, a read-only root in this engine's container.
    assert priv["euid"] == 10001 and priv["uid"] == 10001, priv
    assert priv["capabilities"] == [] and priv["no_new_privs"] is True
    assert priv["read_only_root"] is True
    box = inside["container"]
    assert box["in_container"] is True and box["runtime"] == engine.kind, box

    exec_commands = [p["command"] for p in exec_report["processes"]["visible"]]
    assert exec_report["processes"]["ns_pid"] == procs["ns_pid"]
    assert exec_report["processes"]["count"] == 5, exec_commands
    assert sorted(c for c in exec_commands if not c.endswith("hello:app")) == [
        "python -m flaskr.isolation --json"
    ]
    # Its parent, the engine's exec, is outside the container's PID namespace.
    assert "outside its PID namespace" in exec_report["supervisor"]["reasons"]["parent"]

    # The host: another PID namespace (the initial one, unless CI itself runs in a
    # container), many more processes, and python and pip on PATH, as the seed says.
    hp, hd = beside["processes"], beside["dependencies"]
    assert hp["pid_namespace"] == "host" or hp["ns_pid"] != procs["ns_pid"], hp["evidence"]
    assert hp["count"] > 10, hp["count"]
    assert hd["on_path"]["python"] or hd["on_path"]["python3"]
    assert hd["on_path"]["pip"] or hd["on_path"]["pip3"]

    out = isolation_out(tmp_path)
    suffix = "" if engine.kind == "podman" else f"-{engine.kind}"
    kept = formatting.without_commands(inside, keep=is_gunicorn)
    save_report(out, f"container{suffix}.json", kept)
    save_report(out, f"host-beside-container{suffix}.json", beside)


# --- shipping the image: a code change, a registry, a server that pulls ---------------------


def test_a_template_change_rebuilds_only_the_layers_after_the_code(
    engine: Engine, image: str, tmp_path: Path
) -> None:
    """The Dockerfile installs the locked packages before it copies the app: a checkout with
    one template changed reuses every layer up to the venv and rebuilds only the last two
    (the code and its compiled bytecode)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for part in ("Dockerfile", ".dockerignore", "requirements.txt"):
        shutil.copy2(ROOT / part, checkout / part)
    for part in ("flaskr", "scripts", "deploy"):
        shutil.copytree(ROOT / part, checkout / part, ignore=UNTRACKED)
    template = checkout / "flaskr" / "templates" / "base.html"
    template.write_text(template.read_text() + "{# a change #}\n")
    touched = f"localhost/{engine.prefix}:touched"
    engine.images.add(touched)
    started = time.monotonic()
    rebuilt = subprocess.run(  # noqa: S603
        engine.ns.argv([str(checkout / "scripts" / "container"), "build"]),
        env=engine.env(FLASKR_IMAGE=touched),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    took = time.monotonic() - started
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    before, after = engine.image_layers(image), engine.image_layers(touched)
    assert len(before) == len(after), (before, after)
    assert before[:-2] == after[:-2] and before[-2] != after[-2], (before, after)
    size = int(engine.cli("image", "inspect", "--format", "{{.Size}}", image))
    history = engine.cli("history", image)
    print(
        f"{engine.kind}: {size:,} bytes in {len(before)} layers; rebuild after a template "
        f"change {took:.1f}s\n{history}"
    )


def test_shipped_through_a_registry_and_run_where_pulled(
    engine: Engine, site: Site, post: Post, registry: Registry
) -> None:
    """What a CI pipeline and a server do: tag and push to a registry; on a machine without
    the image, pull it and run it on the data volume, which still has every post."""
    tls = ["--tls-verify=false"] if engine.kind == "podman" else []
    ref = f"{registry.address}/{engine.prefix}:1.0"
    engine.images.add(ref)
    built_id = engine.cli("image", "inspect", "--format", "{{.Id}}", engine.image).strip()
    engine.cli("tag", engine.image, ref)
    started = time.monotonic()
    pushed = engine.cli("push", *tls, ref, timeout=600)
    print(f"{engine.kind} push {ref}: {time.monotonic() - started:.1f}s\n{pushed}")
    # The server has no copy: no container of this run, no image of it (only the base).
    for name in sorted(engine.containers):
        engine.remove_container(name)
    for image in sorted(engine.images):
        engine.cli("rmi", "--force", image, check=False)
    for image in (ref, engine.image):
        assert engine.script("engine", "image", "inspect", image, check=False).returncode != 0
    started = time.monotonic()
    pulled = engine.cli("pull", *tls, ref, timeout=600)
    print(f"{engine.kind} pull {ref}: {time.monotonic() - started:.1f}s\n{pulled}")
    assert engine.cli("image", "inspect", "--format", "{{.Id}}", ref).strip() == built_id
    served = start_site(engine, site.name, site.volume, FLASKR_IMAGE=ref)
    check_post_readable(served, post)
