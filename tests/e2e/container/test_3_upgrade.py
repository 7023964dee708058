"""Stage 3 of the container suite (see __init__.py): the guide's commands in order, upgrades
and rollbacks under load."""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit import ROOT
from toolkit.containers import Engine
from toolkit.ports import free_port
from toolkit.recipes import recipe
from toolkit.visitors import Visitor
from toolkit.wait import wait_for_http


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
