"""Helpers for the container suite: podman or Docker driven through scripts/container inside a
mount namespace that hides the host's Python, the stand-in base image, and a terminal for
`docker exec -it`."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import pty
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import ROOT, ToolkitError
from toolkit.debian import CACHE, rootfs
from toolkit.docker import DockerDaemon
from toolkit.packages import need

SCRIPT = ROOT / "scripts" / "container"

#: The Dockerfile's FROM. CI cannot pull it: a Debian bookworm root filesystem with Python
#: (3.11) made by mmdebstrap is tagged with this name instead, so the Dockerfile stays unchanged.
BASE_IMAGE = "docker.io/library/python:3.12.4-alpine3.20"
STAND_IN_NAME = "localhost/flaskr-e2e-stand-in"
#: The stand-ins' Dockerfiles, kept beside the suites that build them.
STAND_INS = ROOT / "tests" / "e2e" / "standins"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
#: What the python images set; without PATH, RUN steps would find no mkdir.
PYTHON_IMAGE_CHANGES = (
    "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--change", "ENV LANG=C.UTF-8",
    "--change", 'CMD ["python3"]',
)  # fmt: skip

#: Where the suite's podman keeps images: not the default storage of scripts/container, so
#: the stand-in never shadows the real python image on a machine that can pull it.
STORAGE = os.environ.get("FLASKR_E2E_PODMAN_ROOT", str(CACHE / "podman"))


# --- the host's Python, hidden ------------------------------------------------------------


def host_python_paths() -> tuple[list[str], list[str]]:
    """The folders and the executables that make up Python on this host."""
    folders = {
        *glob.glob("/usr/lib/python3*"),
        *glob.glob("/usr/local/lib/python3*"),
        *glob.glob("/root/.pyenv"),
        *glob.glob("/root/.local/lib/python3*"),
        sys.prefix,
        sys.base_prefix,
        str(ROOT / ".venv"),
    }
    folders = {f for f in folders if os.path.isdir(f) and f not in ("/usr", "/usr/local", "/")}
    # A tmpfs over a folder hides what is below it too: keep only the outermost folders.
    folders = {f for f in folders if not any(f.startswith(o + "/") for o in folders)}
    files: set[str] = set()
    for pattern in ("python*", "pip*"):
        for folder in ("/usr/bin", "/usr/local/bin", "/bin"):
            for path in glob.glob(os.path.join(folder, pattern)):
                real = os.path.realpath(path)
                if os.path.isfile(real) and not any(real.startswith(f + "/") for f in folders):
                    files.add(real)
    return sorted(folders), sorted(files)


class HiddenPython:
    """A process holding a private mount namespace where tmpfs covers every Python folder and
    /dev/null every python and pip binary. Commands enter it with nsenter, so all of podman's
    mounts (container root filesystems, network namespaces) live in that one namespace."""

    def __init__(self) -> None:
        self.folders, self.files = host_python_paths()
        lines = ["set -e"]
        lines += [
            f"mount -t tmpfs -o size=1m,mode=0755 tmpfs {shlex.quote(d)}" for d in self.folders
        ]
        lines += [f"mount --bind /dev/null {shlex.quote(f)}" for f in self.files]
        lines += ["echo ready", "exec sleep infinity"]
        self.holder = subprocess.Popen(  # noqa: S603
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.holder.stdout is not None
        ready = self.holder.stdout.readline().strip()
        if ready != "ready":
            _, err = self.stop()
            raise ToolkitError(f"could not hide the host's Python: {ready!r} {err}")

    def argv(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--target={self.holder.pid}", "--mount", f"--wd={ROOT}", "--", *argv]

    def stop(self) -> tuple[str, str]:
        if self.holder.poll() is None:
            self.holder.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.holder.communicate(timeout=10)
        self.holder.kill()
        return self.holder.communicate()


# --- podman or Docker through scripts/container ------------------------------------------


@dataclass
class Engine:
    """Runs scripts/container (and the engine itself, via its `engine` command) in the hidden
    namespace with FLASKR_ENGINE set to ``kind``, and remembers every container, volume and
    image it names, to remove them all at the end. Docker's daemon is the suite's own."""

    kind: str
    ns: HiddenPython
    secret_file: Path
    docker: DockerDaemon | None = None
    prefix: str = field(default_factory=lambda: f"flaskr-e2e-{uuid.uuid4().hex[:8]}")
    image: str = ""
    images: set[str] = field(default_factory=set)
    containers: set[str] = field(default_factory=set)
    volumes: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.kind == "podman":
            need("podman")
        self.image = f"localhost/{self.prefix}:test"
        self.previous = f"localhost/{self.prefix}:previous"  # what `upgrade` keeps
        self.rolled_back = f"localhost/{self.prefix}:rolled-back"  # what `rollback` leaves
        self.images.add(self.image)
        self.images.add(self.rolled_back)
        assert (self.kind == "docker") == (self.docker is not None), self.kind
        self.images.add(self.previous)

    def env(self, **settings: str) -> dict[str, str]:
        drop = ("FLASKR_", "CONTAINERS_", "DOCKER_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            FLASKR_ENGINE=self.kind,
            FLASKR_IMAGE=self.image,
            FLASKR_CONTAINER_SECRET=str(self.secret_file),
        )
        if self.docker is not None:
            env.update(self.docker.env())
        else:
            env.update(FLASKR_PODMAN_ROOT=STORAGE)
        env.update(settings)
        return env

    def script(
        self,
        *args: str,
        timeout: float = 120,
        check: bool = True,
        checkout: Path = ROOT,
        **settings: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run scripts/container of ``checkout`` (this one, or a newer copy to upgrade to)."""
        argv = [str(checkout / "scripts" / "container"), *args]
        what = f"scripts/container {' '.join(args)}"
        return self.run(argv, what, timeout, check, "", settings)

    def sh(
        self,
        line: str,
        timeout: float = 120,
        check: bool = True,
        stdin: str = "",
        **settings: str,
    ) -> subprocess.CompletedProcess[str]:
        """One line of a guide's recipe, as a reader runs it: by bash in the checkout, in the
        namespace without Python, with the suite's settings and ``stdin`` typed in."""
        return self.run(["bash", "-c", line], line, timeout, check, stdin, settings)

    def run(
        self,
        argv: list[str],
        what: str,
        timeout: float,
        check: bool,
        stdin: str,
        settings: dict[str, str],
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(  # noqa: S603
            self.ns.argv(argv),
            env=self.env(**settings),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise ToolkitError(
                f"{what} exited {done.returncode}\n"
                f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
            )
        return done

    def popen(self, *args: str, **settings: str) -> subprocess.Popen[str]:
        return subprocess.Popen(  # noqa: S603
            self.ns.argv([str(SCRIPT), *args]),
            env=self.env(**settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        """The engine's own command line (podman or docker), with the suite's settings."""
        return self.script("engine", *args, timeout=timeout, check=check).stdout

    def exec(self, name: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.script("engine", "exec", name, *argv, check=check, timeout=60)

    def image_layers(self, image: str) -> list[str]:
        """The digests of the image's layers, the base's first."""
        return json.loads(
            self.cli("image", "inspect", "--format", "{{json .RootFS.Layers}}", image)
        )

    def exists(self, name: str) -> bool:
        return self.script("engine", "container", "inspect", name, check=False).returncode == 0

    def log_path(self, name: str) -> Path:
        """The file the engine writes the container's output to."""
        field_ = "{{.LogPath}}" if self.kind == "docker" else "{{.HostConfig.LogConfig.Path}}"
        return Path(self.cli("container", "inspect", "--format", field_, name).strip())

    def container_settings(self, name: str, volume: str, port: int) -> dict[str, str]:
        self.containers.add(name)
        self.volumes.add(volume)
        return {
            "FLASKR_CONTAINER": name,
            "FLASKR_VOLUME": volume,
            "FLASKR_PUBLISH": f"127.0.0.1:{port}",
        }

    def remove_container(self, name: str) -> None:
        grace = [] if self.kind == "docker" else ["--time", "2"]  # docker rm -f kills at once
        for each in (name, f"{name}-next"):  # -next: what upgrade and rollback create
            self.cli("rm", "--force", *grace, each, check=False, timeout=60)

    def cleanup(self) -> None:
        """Remove what this run made, by name, whatever state the tests left it in."""
        for name in sorted(self.containers):
            self.remove_container(name)
        for volume in sorted(self.volumes):
            self.cli("volume", "rm", "--force", volume, check=False)
        # Removing the image removes its build's untagged layers too with Docker; podman's
        # are pruned (the tagged stand-in stays cached). Never a prune on Docker's store: another
        # run's build in progress there has untagged layers too.
        for image in sorted(self.images):
            self.cli("rmi", "--force", image, check=False)
        if self.kind == "podman":
            self.cli("image", "prune", "--force", check=False)

    def ensure_base_image(self) -> None:
        """Make the stand-in for the Dockerfile's FROM once; later runs find it in storage.
        Docker's stand-in trusts the host's CA itself, like a company's base image behind a
        TLS-inspecting proxy: `docker build` cannot mount it for pip as podman's build does."""
        if self.script("engine", "image", "inspect", BASE_IMAGE, check=False).returncode == 0:
            return
        stand_in = f"{STAND_IN_NAME}-{self.kind}:bookworm"
        trusting = self.kind == "docker" and os.path.isfile(HOST_CA)
        raw = f"{STAND_IN_NAME}-raw:bookworm" if trusting else stand_in
        self.cli("import", *PYTHON_IMAGE_CHANGES, str(rootfs("python-bookworm")), raw, timeout=600)
        if trusting:
            with tempfile.TemporaryDirectory() as context:
                shutil.copy(HOST_CA, os.path.join(context, "ca.crt"))
                build = ["build", "--build-arg", f"RAW={raw}", "--tag", stand_in]
                dockerfile = ["--file", str(STAND_INS / "python-ca.Dockerfile"), context]
                self.cli(*build, *dockerfile, timeout=600)
            self.cli("rmi", raw)
        self.cli("tag", stand_in, BASE_IMAGE)


def build_docker_image(docker: DockerDaemon, image: str) -> None:
    """`scripts/container build` through its Docker branch on the suite's dockerd, tagged
    ``image``, making the stand-in base image first if this store has none (a suite that
    runs before tests/e2e/container/ on a new machine finds none)."""
    ns = HiddenPython()
    try:
        engine = Engine("docker", ns, Path(os.devnull), docker)
        engine.image = image
        engine.ensure_base_image()
        engine.script("build", timeout=900)
    finally:
        ns.stop()


# --- a terminal, as a person at a keyboard has -------------------------------------------


def terminal_session(argv: list[str], env: dict[str, str], lines: list[str], timeout: float) -> str:
    """Run ``argv`` on a pseudo-terminal 250 columns wide (so `ps aux` truncates nothing),
    type each of ``lines`` once a `$ ` prompt shows, and return all it printed, \r removed.
    The first line waits a second after the first prompt: `docker exec -it` passes the
    terminal's size on to the container's only after the shell has started."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
    proc = subprocess.Popen(  # noqa: S603
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    seen, typed = b"", 0
    first_prompt: float | None = None
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the other side closed
                    break
                if not chunk:
                    break
                seen += chunk
            prompts = seen.count(b"$ ")
            if prompts and first_prompt is None:
                first_prompt = time.monotonic()
            settled = first_prompt is not None and time.monotonic() - first_prompt >= 1
            if typed < len(lines) and prompts > typed and settled:
                os.write(master, lines[typed].encode() + b"\n")
                typed += 1
            if proc.poll() is not None and not ready:
                break
        else:
            raise ToolkitError(f"{argv} did not finish in {timeout}s; it printed:\n{seen.decode()}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        os.close(master)
    assert typed == len(lines), seen.decode(errors="replace")
    return seen.decode(errors="replace").replace("\r", "")


# --- sockets seen from inside the container ------------------------------------------------


def tcp_sockets(proc_net_tcp: str, port: int) -> list[tuple[str, int]]:
    """(state, rx_queue) of every socket whose local port is ``port``, from /proc/net/tcp*.
    For a listener rx_queue is its accept backlog: 0 means every connection was accepted."""
    found = []
    for line in proc_net_tcp.splitlines():
        cols = line.split()
        if len(cols) < 5 or ":" not in cols[1] or cols[0] == "sl":
            continue
        local_port = int(cols[1].rsplit(":", 1)[1], 16)
        if local_port == port:
            found.append((cols[3], int(cols[4].split(":")[1], 16)))
    return found
