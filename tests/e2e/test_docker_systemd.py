"""Docker under systemd, as the README describes it: a booted Debian machine (systemd-nspawn)
with Debian's docker.io and no Python, where `systemctl list-units --type=service` lists
docker.service, and flaskr's image runs under it with `scripts/container run` (so
`--restart unless-stopped`): the container comes back after `systemctl restart docker` and
after the machine reboots, keeping its data.

Two things nspawn does stop containers from starting in the machine; both are undone for it:
- it mounts the cgroup v1 controllers read-only (`mkdir /sys/fs/cgroup/cpuset/docker/…:
  read-only file system` from runc): a drop-in for docker.service remounts them writable
  before dockerd starts (the machine's root may: no user namespace here);
- its seccomp filter refuses keyctl (`unable to join session keyring: unable to create session
  key: operation not permitted`): nspawn runs with SYSTEMD_SECCOMP=0.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator

import pytest

from toolkit import ROOT, debian
from toolkit.containers import build_docker_image
from toolkit.docker import DOCKER, DockerDaemon
from toolkit.machines import PATH, Machine, MachineError

#: Where the checkout is bound (read-only) in the machine, for scripts/container.
SOURCE = "/opt/flaskr-src"
#: docker.service's drop-in: nspawn mounts the cgroup v1 controllers read-only.
CGROUPS_WRITABLE = """\
[Service]
# nspawn mounts the cgroup v1 controllers read-only: runc could not make a container's cgroup.
ExecStartPre=/bin/sh -c 'for c in /sys/fs/cgroup/*/; do mount -o remount,rw,bind "$c"; done'
"""


@contextlib.contextmanager
def no_nspawn_seccomp() -> Iterator[None]:
    """SYSTEMD_SECCOMP=0 for the nspawn that Machine.boot starts (it inherits the
    environment): runc needs keyctl for the container's session keyring."""
    before = os.environ.get("SYSTEMD_SECCOMP")
    os.environ["SYSTEMD_SECCOMP"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["SYSTEMD_SECCOMP"]
        else:
            os.environ["SYSTEMD_SECCOMP"] = before


def boot(machine: Machine) -> None:
    with no_nspawn_seccomp():
        machine.boot(timeout=120)


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    work = tmp_path_factory.mktemp("docker-systemd")
    rootfs = work / "rootfs"
    rootfs.mkdir()
    # On a RAM disk: the machine and Docker's layers in it (tens of thousands of files) go with
    # one umount, far quicker than deleting them file by file. It outlives the reboot.
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4g,mode=0755", "flaskr-e2e-machine", str(rootfs)],
        check=True,
        timeout=30,
    )
    booted = Machine(
        f"flaskr-e2e-{uuid.uuid4().hex[:8]}", rootfs, {ROOT: SOURCE}, work / "boot.log"
    )
    try:
        with tarfile.open(debian.rootfs("docker-machine")) as tar:
            tar.extractall(rootfs, filter="fully_trusted")  # our own mmdebstrap output
        dropin = rootfs / "etc/systemd/system/docker.service.d/flaskr-e2e-cgroups.conf"
        dropin.parent.mkdir(parents=True, exist_ok=True)
        dropin.write_text(CGROUPS_WRITABLE)
        boot(booted)
        yield booted
    finally:
        # A clean shutdown first: Docker in the machine made its containers' cgroups in this
        # host's hierarchy (no cgroup namespace), and removes them only when it stops them.
        with contextlib.suppress(MachineError, subprocess.TimeoutExpired):
            if booted.init_pid:
                booted.poweroff(timeout=60)
        booted.kill()
        subprocess.run(["umount", "--lazy", str(rootfs)], check=False, timeout=60)


@pytest.fixture(scope="module")
def image(machine: Machine, docker_daemon: DockerDaemon) -> str:
    """flaskr's image, built on the suite's dockerd and loaded into the machine's Docker as a
    server gets it from a registry (the machine has no network)."""
    tag = f"localhost/flaskr-e2e-{uuid.uuid4().hex[:8]}:systemd"
    build_docker_image(docker_daemon, tag)
    try:
        save = subprocess.Popen(  # noqa: S603
            [DOCKER, "save", tag],
            env={**os.environ, **docker_daemon.env()},
            stdout=subprocess.PIPE,
        )
        assert save.stdout is not None
        inside = ["nsenter", "-t", str(machine.init_pid), "-a", "env", "-i", f"PATH={PATH}"]
        loaded = subprocess.run(  # noqa: S603
            [*inside, "docker", "load"],
            stdin=save.stdout, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        save.stdout.close()
        assert save.wait(60) == 0 and loaded.returncode == 0, loaded.stderr
    finally:
        docker_daemon.cli("rmi", "--force", tag, check=False)
    return tag


def test_docker_service_runs_under_systemd_on_a_machine_without_python(machine: Machine) -> None:
    units = machine.run(["systemctl", "list-units", "--type=service", "--no-pager"]).stdout
    docker_line = next(line for line in units.splitlines() if "docker.service" in line)
    print(f"$ systemctl list-units --type=service | grep docker\n{docker_line.strip()}")
    assert docker_line.split()[1:4] == ["loaded", "active", "running"], docker_line
    assert machine.show("docker.service", "MainPID")["MainPID"] != "0"
    info = machine.run(["docker", "info", "--format", "{{.Driver}} {{.ServerVersion}}"]).stdout
    assert info.split()[0] == "overlay2", info
    # The host in the README: python and pip are not on its PATH (only an image brings them).
    assert machine.sh(PROBE, check=False).split() == ["no-python", "no-python3", "no-pip"]


PROBE = "for c in python python3 pip; do command -v $c || echo no-$c; done"
#: The container's secret key, handed to scripts/container by name.
KEY = uuid.uuid4().hex + uuid.uuid4().hex


def container(machine: Machine, image: str, *args: str) -> str:
    """scripts/container from the bound checkout, with the machine's Docker."""
    settings = {
        "FLASKR_ENGINE": "docker",
        "FLASKR_IMAGE": image,
        "FLASKR_CONTAINER": "flaskr",
        "FLASKR_PUBLISH": "127.0.0.1:80",  # where the suite's HTTP client looks
        "FLASKR_SECRET_KEY": KEY,
    }
    env = [f"{k}={v}" for k, v in settings.items()]
    return machine.run(["env", *env, f"{SOURCE}/scripts/container", *args], timeout=180).stdout


def state(machine: Machine) -> str:
    return machine.sh("docker inspect --format '{{.State.Status}} {{.State.StartedAt}}' flaskr")


def commands(ps_aux: str) -> list[str]:
    return [line.split(None, 10)[10] for line in ps_aux.splitlines()[1:]]


def test_the_image_under_docker_service_survives_a_docker_restart_and_a_reboot(
    machine: Machine, image: str
) -> None:
    """`scripts/container run` in the machine (`--restart unless-stopped`); the machine's
    `ps aux` lists gunicorn among its own processes while `docker exec flaskr ps aux` lists
    only the app; python and pip are in the container, not on the machine; after `systemctl
    restart docker` and after a reboot the container is back, serving the same post."""
    container(machine, image, "run")
    machine.wait_http("/healthz", timeout=60)
    post = machine.client("flow", "Under docker.service")

    server = machine.run(["ps", "aux"]).stdout
    inside = machine.run(["docker", "exec", "flaskr", "ps", "aux"]).stdout
    print(f"$ ps aux   # on the machine: {len(server.splitlines()) - 1} processes\n{server}")
    print(f"$ docker exec flaskr ps aux\n{inside}")
    on_server = commands(server)
    assert sum("gunicorn" in c for c in on_server) == 4, on_server  # master and 3 workers
    assert any(c.startswith("/usr/sbin/dockerd") for c in on_server), on_server
    assert len(on_server) > 10, on_server  # systemd, journald, dbus, containerd, shims...
    in_container = commands(inside)
    assert sum("gunicorn" in c for c in in_container) == 4, in_container
    assert [c for c in in_container if "gunicorn" not in c] == ["ps aux"], in_container
    assert machine.sh(PROBE, check=False).split() == ["no-python", "no-python3", "no-pip"]
    found = machine.run(["docker", "exec", "flaskr", "sh", "-c", PROBE]).stdout.split()
    assert found == ["/opt/venv/bin/python", "/opt/venv/bin/python3", "/opt/venv/bin/pip"]

    before = state(machine)
    machine.run(["systemctl", "restart", "docker"])
    machine.wait_http("/healthz", timeout=60)
    assert state(machine) != before

    before = state(machine)
    assert machine.poweroff() == 0
    boot(machine)
    machine.wait_http("/healthz", timeout=60)
    after = state(machine)
    print(f"docker inspect flaskr: before the reboot {before}, after {after}")
    assert after.startswith("running ") and after != before
    machine.client("check-post", str(post["post_id"]), str(post["title"]), "37", "23")
