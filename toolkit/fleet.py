"""Helpers for the scale-out suite: several gunicorn instances sharing one database and one
key, and a real nginx in front of them whose upstreams can be swapped with a graceful reload
(the harness holds PostgreSQL and the request loops).

Everything listens on 127.0.0.1 only, and every process started here is stopped however the
test ends.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from toolkit.packages import need
from toolkit.ports import free_port
from toolkit.servers import Gunicorn, app_env, children, gunicorn, stop
from toolkit.wait import until, wait_for_http

#: What docs/scale-out.md documents; parsed as JSON by Flask's from_prefixed_env.
ENGINE_OPTIONS = '{"pool_size": 5, "pool_recycle": 1800, "pool_pre_ping": true}'


# --- gunicorn instances ------------------------------------------------------------------


@dataclass
class Instance(Gunicorn):
    """One gunicorn master (the seed's command line) with its own port and instance folder."""

    name: str
    instance_path: Path

    def stop(self) -> int:
        """gunicorn's graceful stop: TERM, in-flight requests finish, exit code 0."""
        return stop(self.process, timeout=30)


class Fleet:
    """gunicorn instances of flaskr sharing one database and one secret key file."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path, env: dict[str, str]):
        self.stack = stack
        self.workdir = workdir
        self.env = env
        self.names = (f"i{n}" for n in itertools.count(1))

    def start(self, workers: int = 2, wait: bool = True) -> Instance:
        name = next(self.names)
        port = free_port()
        instance_path = self.workdir / name
        instance_path.mkdir()
        env = {**self.env, "FLASKR_INSTANCE_PATH": str(instance_path)}
        args = ["--workers", str(workers), "--timeout", "120", "--bind", f"127.0.0.1:{port}"]
        log = self.workdir / f"{name}.log"
        process = self.stack.enter_context(gunicorn(args, env, log))
        instance = Instance(process, port, log, name, instance_path)
        if wait:
            self.wait_ready(instance)
        return instance

    def wait_ready(self, instance: Instance, timeout: float = 90) -> None:
        wait_for_http(instance.base + "/readyz", timeout=timeout)
        if instance.process.poll() is not None:
            pytest.fail(f"{instance.name} exited: {instance.log.read_text()[-2000:]}")


def fleet_env(workdir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """What every instance shares: the database, the key (a file, as a compose or Kubernetes
    secret hands it over) and the engine options; each gets its own instance folder."""
    key_file = workdir / "secret_key"
    if not key_file.exists():
        key_file.write_text(os.urandom(32).hex() + "\n")
        key_file.chmod(0o600)
    env = app_env(workdir, FLASKR_DATABASE_URL=database_url, **extra)
    del env["FLASKR_SECRET_KEY"]
    env.update(
        FLASKR_SECRET_KEY_FILE=str(key_file),
        FLASKR_SQLALCHEMY_ENGINE_OPTIONS=ENGINE_OPTIONS,
        FLASKR_PROXY_FIX="1",
    )
    env.update(extra)
    return env


# --- nginx -------------------------------------------------------------------------------

NGINX_CONF = """\
# Written by tests/e2e/scale_helpers.py: a load balancer in front of flaskr's instances.
{user}
worker_processes {worker_processes};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {access_log};
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream flaskr {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 5376k;
        location / {{
            proxy_pass http://flaskr;
            # A refused connection (an instance stopping or not up yet), a 502 or a 503 is
            # retried on the next instance; a POST already sent is never sent twice.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_timeout 15s;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Prefix "";
        }}
    }}
}}
"""


class Nginx:
    """A real nginx (Debian's) run in the foreground with its own config, pid file, logs and
    temp paths in a private folder; /etc/nginx is never read or touched."""

    def __init__(self, ports: list[int], access_log: bool = True) -> None:
        need("nginx")
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir = Path(tempfile.mkdtemp(prefix="flaskr-nginx-"))
        # Workers run as www-data when nginx starts as root: they must reach the temp paths.
        self.dir.chmod(0o755)
        self.conf = self.dir / "nginx.conf"
        self.port = free_port()
        self.access_log = access_log
        self.process: subprocess.Popen | None = None
        self.ports = list(ports)
        self._write(self.ports)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write(self, ports: list[int]) -> None:
        # max_fails=0: a 503 while the database is down is the app's answer, not a sign that
        # the instance is broken; counting it would mark every instance down and answer 502
        # "no live upstreams" for fail_timeout after the database is back. A stopped
        # instance costs one refused connection per request, retried at once.
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
        self.conf.write_text(
            NGINX_CONF.format(
                user="user www-data;" if os.geteuid() == 0 else "",
                worker_processes=2,
                dir=self.dir,
                access_log=f"{self.dir}/access.log" if self.access_log else "off",
                servers=servers,
                port=self.port,
            )
        )
        check = subprocess.run(self._cmd("-t"), capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr

    def _cmd(self, *extra: str) -> list[str]:
        return [self.binary, "-c", str(self.conf), "-p", str(self.dir), "-e",
                str(self.dir / "error.log"), *extra]  # fmt: skip

    def start(self) -> None:
        with open(self.dir / "stderr.log", "wb") as log:
            self.process = subprocess.Popen(
                self._cmd("-g", "daemon off;"),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_http(self.base + "/healthz", timeout=30)
        until(lambda: len(self.workers()) == 2, 10, "nginx's workers")

    def workers(self) -> set[int]:
        assert self.process is not None
        return children(self.process.pid)

    def set_upstreams(self, ports: list[int]) -> None:
        """Swap the upstream list with a graceful reload: new workers take new connections,
        the old ones finish their requests and exit. Returns once only new workers remain,
        so no request can reach an instance that is no longer listed."""
        assert self.process is not None
        self._write(ports)
        old = self.workers()
        os.kill(self.process.pid, signal.SIGHUP)
        until(
            lambda: (w := self.workers()) and not (w & old) and len(w) == 2,
            30,
            "nginx to reload",
        )
        self.ports = list(ports)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, 15, signal.SIGQUIT)  # graceful

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def nginx(ports: list[int], access_log: bool = True) -> Iterator[Nginx]:
    server = Nginx(ports, access_log=access_log)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
