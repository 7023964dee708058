"""A fleet of flaskr's gunicorn instances sharing one database and one key, as scaled out
behind a load balancer (toolkit/nginx.py's Nginx) for the scale-out suite and
bench/scale_out.py; PostgreSQL is toolkit/postgres.py's, the request loops toolkit/load.py's.

Everything listens on 127.0.0.1 only, and every process started here is stopped however the
caller ends.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from toolkit import ToolkitError
from toolkit.ports import free_port
from toolkit.servers import Gunicorn, app_env, gunicorn, stop
from toolkit.wait import wait_for_http

#: What docs/scale-out.md documents; parsed as JSON by Flask's from_prefixed_env.
ENGINE_OPTIONS = '{"pool_size": 5, "pool_recycle": 1800, "pool_pre_ping": true}'


@dataclass
class Instance(Gunicorn):
    """One gunicorn master (the README's command line) with its own port and instance folder."""

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
            raise ToolkitError(f"{instance.name} exited: {instance.log.read_text()[-2000:]}")


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
