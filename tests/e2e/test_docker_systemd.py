"""Docker under systemd, as the seed describes it: a booted Debian machine (systemd-nspawn)
with Debian's docker.io and no Python, where `systemctl list-units --type=service` lists
docker.service running and the docker client reaches it.

Containers cannot start in that nested machine on this kind of host: nspawn mounts the cgroup
v1 controllers read-only, so runc fails with `mkdir /sys/fs/cgroup/cpuset/docker/…: read-only
file system` (docs/deploy-container.md). The container checks run on the host's own dockerd
instead (tests/e2e/test_container.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.container_docker import ROOT as DOCKER_ROOT
from tests.e2e.container_engines import debian_tarball
from tests.e2e.harness.packages import apt_install
from tests.e2e.host_machine import Machine

PACKAGES = "systemd,systemd-sysv,dbus,procps,docker.io,iptables"


def machine_tarball() -> Path:
    """The machine's root filesystem, made once and kept beside the suite's Docker store."""
    key = hashlib.sha256(f"bookworm {PACKAGES}".encode()).hexdigest()[:12]
    tarball = DOCKER_ROOT / f"nspawn-rootfs-{key}.tar"
    if not tarball.exists():
        DOCKER_ROOT.mkdir(parents=True, exist_ok=True)
        with debian_tarball("bookworm", PACKAGES) as made:
            partial = tarball.with_suffix(f".{os.getpid()}.partial")
            shutil.move(made, partial)
            partial.rename(tarball)
    return tarball


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    apt_install("mmdebstrap", "systemd-container", commands=("mmdebstrap", "systemd-nspawn"))
    work = tmp_path_factory.mktemp("docker-systemd")
    rootfs = work / "rootfs"
    rootfs.mkdir()
    with tarfile.open(machine_tarball()) as tar:
        tar.extractall(rootfs, filter="fully_trusted")  # our own mmdebstrap output
    booted = Machine(f"flaskr-e2e-{uuid.uuid4().hex[:8]}", rootfs, {}, work / "boot.log")
    try:
        booted.boot(timeout=120)
        yield booted
    finally:
        booted.kill()
        shutil.rmtree(rootfs, ignore_errors=True)


def test_docker_service_runs_under_systemd_on_a_machine_without_python(machine: Machine) -> None:
    units = machine.run(["systemctl", "list-units", "--type=service", "--no-pager"]).stdout
    docker_line = next(line for line in units.splitlines() if "docker.service" in line)
    print(f"$ systemctl list-units --type=service | grep docker\n{docker_line.strip()}")
    assert docker_line.split()[1:4] == ["loaded", "active", "running"], docker_line
    assert machine.show("docker.service", "MainPID")["MainPID"] != "0"
    info = machine.run(["docker", "info", "--format", "{{.Driver}} {{.ServerVersion}}"]).stdout
    assert info.split()[0] == "overlay2", info
    # The seed's server: python and pip are not on its PATH (only an image brings them).
    probe = "for c in python python3 pip pip3; do command -v $c || echo no-$c; done"
    assert machine.sh(probe, check=False).split() == [
        "no-python",
        "no-python3",
        "no-pip",
        "no-pip3",
    ]
