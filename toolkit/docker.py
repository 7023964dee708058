"""Docker Engine for the container suite: Debian's docker.io, with a dockerd of the suite's own
(its own data root, exec root, pidfile and socket) so a user's Docker is never touched, and
Debian's docker-registry on 127.0.0.1 to push to and pull from."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from toolkit import ToolkitError
from toolkit.debian import CACHE
from toolkit.packages import need

#: The client from Debian's docker.io: another docker (a newer client) may come first on PATH.
DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
REGISTRY = "/usr/bin/docker-registry"

#: The suite's Docker: images (the stand-in base among them) stay here between runs, as
#: podman's storage does; the daemon runs only while the suite does.
ROOT = Path(os.environ.get("FLASKR_E2E_DOCKER_ROOT", str(CACHE / "docker")))


def forward_policy() -> str:
    """The iptables FORWARD chain's policy (ACCEPT or DROP): dockerd sets DROP when it turns
    on IP forwarding, which would cut podman's containers off the network."""
    rules = subprocess.run(
        ["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    return next(line.split()[2] for line in rules.splitlines() if line.startswith("-P FORWARD"))


class DockerDaemon:
    """The suite's dockerd: started when nothing answers on its socket, stopped after by
    whoever started it, with the FORWARD policy put back as it was."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.policy: str | None = None

    def env(self) -> dict[str, str]:
        """What the docker client needs to reach this daemon, and no user's settings: an empty
        config folder (no credentials, no contexts) and Debian's client first on PATH."""
        (self.root / "client").mkdir(parents=True, exist_ok=True)
        return {
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.root / "client"),
            "PATH": f"{os.path.dirname(DOCKER)}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def cli(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        done = subprocess.run(  # noqa: S603
            [DOCKER, *args],
            env={**env, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise ToolkitError(
                f"docker {' '.join(args)} exited {done.returncode}: {done.stderr[-3000:]}"
            )
        return done

    def answers(self) -> bool:
        version = self.cli("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
        return version.returncode == 0 and version.stdout.strip() != ""

    def start(self) -> None:
        # Installing docker.io starts no daemon: with no systemd as PID 1 the package starts
        # none, and Debian images deny service starts in policy-rc.d anyway.
        need("docker")
        if self.answers():
            return  # another run of the suite started it; that run stops it
        self.root.mkdir(parents=True, exist_ok=True)
        self.policy = forward_policy()
        log = (self.root / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603
            [
                DOCKERD,
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "docker.pid"),
                "--host",
                f"unix://{self.socket}",
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        end = time.monotonic() + 60
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > end:
                tail = (self.root / "dockerd.log").read_text(errors="replace")[-3000:]
                self.stop()
                raise ToolkitError(f"dockerd did not answer on {self.socket}:\n{tail}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None
        if self.policy and forward_policy() != self.policy:
            subprocess.run(["iptables", "-P", "FORWARD", self.policy], check=True, timeout=30)


class Registry:
    """Debian's docker-registry (the Distribution registry) on 127.0.0.1, storing in ``root``,
    plain HTTP: Docker trusts 127.0.0.0/8 registries without TLS; podman is told so with
    --tls-verify=false. It exits by itself after an hour at the latest."""

    def __init__(self, root: Path, port: int) -> None:
        need("docker")
        self.address = f"127.0.0.1:{port}"
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
            f"http: {{addr: {self.address}}}\n",
            encoding="utf-8",
        )
        self.log = root / "registry.log"
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603
                ["timeout", "3600", REGISTRY, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
