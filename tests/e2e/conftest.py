"""Shared by the end-to-end suites: every test here is marked ``e2e``, and gets helpers to
install system packages, find free ports on 127.0.0.1 and poll servers with deadlines."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.container_docker import DockerDaemon
from tests.e2e.container_docker import install_packages as install_docker

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


def apt_install(*packages: str, commands: tuple[str, ...] = ()) -> None:
    """Install Debian packages as root unless every command in ``commands`` is on PATH."""
    if commands and all(shutil.which(c) for c in commands):
        return
    if os.geteuid() != 0:
        pytest.fail(f"need root to install {' '.join(packages)} (or install them first)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        # Wait for another apt run (another suite, unattended-upgrades) instead of failing.
        [
            "apt-get",
            "install",
            "-y",
            "-q",
            "-o",
            "DPkg::Lock::Timeout=300",
            "--no-install-recommends",
            *packages,
        ],  # fmt: skip
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, status: int = 200) -> None:
    """Poll ``url`` until it answers ``status``, or fail when the deadline passes."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
                if r.status == status:
                    return
                last = r.status
        except urllib.error.HTTPError as e:
            if e.code == status:
                return
            last = e.code
        except OSError as e:
            last = e
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer {status} within {timeout}s (last: {last!r})")


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """The suite's own dockerd (see tests/e2e/container_docker.py), for the whole session."""
    install_docker(apt_install)
    daemon = DockerDaemon()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
