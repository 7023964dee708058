"""gunicorn's sync workers read each request themselves: on an address beyond loopback with
nobody in front, a few clients sending one byte at a time hold all of them. scripts/serve and
scripts/container refuse such an address before they set anything up or start anything, unless
the operator says a proxy is in front (--behind-proxy, FLASKR_BEHIND_PROXY=1). No server is
started here: the container engine is a stand-in that records its arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BEYOND = ["0.0.0.0:8000", "192.0.2.1:8000", "[::]:8000", "blog.example.org:80", "0.0.0.0"]


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLASKR_")}
    return subprocess.run(  # noqa: S603 - this checkout's scripts
        argv, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def serve(tmp_path: Path) -> Path:
    """scripts/serve in a checkout of its own without a .venv, whose Python cannot make one:
    past the address check it stops at once, before gunicorn ("setup: creating .venv")."""
    (tmp_path / "scripts" / "lib").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "serve", tmp_path / "scripts" / "serve")
    shutil.copy2(ROOT / "scripts" / "lib" / "venv.sh", tmp_path / "scripts" / "lib" / "venv.sh")
    return tmp_path / "scripts" / "serve"


@pytest.mark.parametrize("bind", BEYOND)
def test_serve_refuses_an_address_beyond_loopback(serve: Path, bind: str) -> None:
    instance = serve.parent.parent / "instance"
    for setting in ({}, {"FLASKR_BEHIND_PROXY": "0"}):
        done = run([str(serve)], FLASKR_BIND=bind, FLASKR_INSTANCE_PATH=str(instance),
                   PYTHON="false", **setting)  # fmt: skip
        assert done.returncode == 2, done
        assert f"refusing to listen on {bind}, beyond this machine" in done.stderr
        assert "put nginx in front" in done.stderr and "--behind-proxy" in done.stderr
        assert done.stdout == "" and not instance.exists()  # nothing set up, nothing started


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "unix:x.sock"])
def test_serve_goes_on_for_loopback_or_behind_a_proxy(serve: Path, bind: str) -> None:
    said = [([], {}), (["--behind-proxy"], {}), ([], {"FLASKR_BEHIND_PROXY": "1"})]
    for args, setting in said:
        done = run([str(serve), *args], FLASKR_BIND=bind, PYTHON="false", **setting)
        assert done.returncode != 0 and "setup: creating .venv" in done.stdout, done
        assert "refusing" not in done.stderr
    for args, setting in said[1:]:
        done = run([str(serve), *args], FLASKR_BIND="0.0.0.0:8000", PYTHON="false", **setting)
        assert "setup: creating .venv" in done.stdout and "refusing" not in done.stderr, done
    unknown = run([str(serve), "--behind-nginx"], PYTHON="false")
    assert unknown.returncode == 2 and "unknown argument '--behind-nginx'" in unknown.stderr


@pytest.fixture
def container(tmp_path: Path):
    """scripts/container with a stand-in podman on PATH that records its arguments and fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "podman.log"
    (bin_dir / "podman").write_text(f'#!/bin/sh\necho "$*" >>{log}\nexit 1\n')
    (bin_dir / "podman").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FLASKR_ENGINE": "podman",
        "FLASKR_PODMAN_CONF": "system",
        "FLASKR_CONTAINER_SECRET": str(tmp_path / "secret" / "key"),
    }

    def script(*args: str, **settings: str) -> tuple[subprocess.CompletedProcess[str], str]:
        log.unlink(missing_ok=True)
        done = run([str(ROOT / "scripts" / "container"), *args], **env, **settings)
        return done, log.read_text() if log.exists() else ""

    return script


@pytest.mark.parametrize(
    ("args", "publish", "where"),
    [
        ((), "0.0.0.0:8000", "0.0.0.0:8000"),
        ((), "192.0.2.1:8080", "192.0.2.1:8080"),
        (("-p", "8080:8000"), "127.0.0.1:8000", "8080:8000"),
        (("--publish=0.0.0.0:80:8000",), "127.0.0.1:8000", "0.0.0.0:80:8000"),
        (("-P",), "127.0.0.1:8000", "every address (-P)"),
        (("--network", "host"), "127.0.0.1:8000", "the host's network"),
    ],
)
def test_container_run_refuses_to_publish_beyond_loopback(container, args, publish, where):
    for command in ("run", "upgrade", "rollback"):
        done, engine = container(command, *args, FLASKR_PUBLISH=publish)
        assert done.returncode == 1, done
        assert engine == ""  # the engine was never asked anything: nothing built or replaced
        assert f"refusing to publish port 8000 on {where}, beyond this machine" in done.stderr
        assert "Put nginx in front" in done.stderr and "--behind-proxy" in done.stderr


def test_container_run_publishes_beyond_loopback_when_told_a_proxy_is_in_front(container):
    for args, setting in ((["--behind-proxy"], {}), ([], {"FLASKR_BEHIND_PROXY": "1"})):
        done, engine = container("run", *args, "-e", "X=1", FLASKR_PUBLISH="0.0.0.0:8000",
                                 **setting)  # fmt: skip
        assert "refusing" not in done.stderr, done.stderr
        (run_line,) = [line for line in engine.splitlines() if line.startswith("run ")]
        assert "--publish 0.0.0.0:8000:8000" in run_line and "-e X=1" in run_line
        assert "--behind-proxy" not in engine
    done, engine = container("run", FLASKR_PUBLISH="127.0.0.1:8000")
    assert "refusing" not in done.stderr and "--publish 127.0.0.1:8000:8000" in engine


def test_container_restore_passes_the_unpacked_cap_on_as_a_number_only(container, tmp_path):
    """The cap reaches `flask restore` in the one-off container as an argument; anything but a
    number is refused before the engine is asked anything."""
    backup = tmp_path / "flaskr-x.sqlite.gz"
    backup.write_bytes(b"")
    # The engine's last call is the one-off container, its sh -c script over several lines.
    done, engine = container("restore", str(backup), "--max-unpacked-mb", "20480")
    assert 'restore "$f" ${2:+--max-unpacked-mb "$2"}' in engine
    assert engine.rstrip().endswith(" sh sqlite.gz 20480"), engine
    done, engine = container("restore", str(backup))
    assert engine.rstrip().endswith(" sh sqlite.gz"), engine
    for bad in (["--max-unpacked-mb", "1;id"], ["--max-unpacked-mb"], ["--force"], ["-1"]):
        done, engine = container("restore", str(backup), *bad)
        assert done.returncode == 1 and "usage: scripts/container restore FILE" in done.stderr
        assert engine == ""
