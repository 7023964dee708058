"""Real servers for the suites: flaskr's environment and CLI as an operator has them, gunicorn
run as the README runs it, and any long-running process tied to a with-block. Everything listens
on 127.0.0.1 or a private socket, and is stopped (TERM, then KILL after a deadline) however
the test ends."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from toolkit import ROOT, ToolkitError
from toolkit.ports import free_port
from toolkit.wait import wait_for_http

#: The checkout's venv, whose flask and gunicorn the suites run.
VENV_BIN = Path(sys.executable).parent
#: The README's gunicorn flags, before its --bind.
GUNICORN_FLAGS = ["--workers", "3", "--timeout", "120"]


def app_env(
    instance: Path | None = None, *, keep_database_url: bool = True, **extra: str
) -> dict[str, str]:
    """The environment a deployment gives flaskr: this venv first on PATH, a real key, its own
    instance folder, and none of the caller's FLASKR_* settings. The caller's DATABASE_URL
    is kept unless ``keep_database_url`` is false (a measurement must not run against a
    developer's PostgreSQL by accident)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASKR_") and (keep_database_url or k != "DATABASE_URL")
    }
    env.update(
        FLASKR_SECRET_KEY=secrets.token_hex(32),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    if instance is not None:
        env["FLASKR_INSTANCE_PATH"] = str(instance)
    env.update(extra)
    return env


def flask(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`flask --app flaskr ARGS` from the checkout, as an operator runs it."""
    argv = [str(VENV_BIN / "flask"), "--app", "flaskr", *args]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def init_db(env: dict[str, str]) -> None:
    flask(env, "init-db")


def stop(process: subprocess.Popen, timeout: float = 15, sig: int = signal.SIGTERM) -> int:
    """Stop ``process`` with ``sig``; after ``timeout`` seconds, KILL its process group."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    return process.returncode


@contextmanager
def running(
    argv: list[str | Path],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
    stop_timeout: float = 15,
) -> Iterator[subprocess.Popen]:
    """Run ``argv`` in a session of its own, its output in ``log``, for the with-block."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process, stop_timeout, stop_signal)


@contextmanager
def gunicorn(
    args: list[str],
    env: dict[str, str],
    log: Path,
    app_dir: Path = ROOT / "flaskr",
    app: str = "hello:app",
    bin_dir: Path = VENV_BIN,
) -> Iterator[subprocess.Popen]:
    """Run ``gunicorn ARGS APP`` from ``app_dir``: by default `hello:app` from the flaskr/
    folder with this venv's gunicorn, as the README does; another venv's, another app, another
    folder (an installed wheel's site) when given."""
    with running([bin_dir / "gunicorn", *args, app], log, env=env, cwd=app_dir) as process:
        yield process


def children(pid: int) -> set[int]:
    """The live (not zombie) child processes of ``pid``: gunicorn's or nginx's workers."""
    try:
        found = {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:  # the process is gone, or a kernel without CONFIG_PROC_CHILDREN
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(stat.parent.name))
    return {p for p in found if _state(p) not in ("Z", None)}


def _state(pid: int) -> str | None:
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@dataclass
class Gunicorn:
    """A gunicorn master serving on 127.0.0.1:``port``."""

    process: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def workers(self) -> set[int]:
        return children(self.process.pid)


@contextmanager
def serve(
    env: dict[str, str],
    log: Path,
    ready: str = "/healthz",
    timeout: float = 30,
    flags: list[str] = GUNICORN_FLAGS,
    **options: object,
) -> Iterator[Gunicorn]:
    """The README's gunicorn (``flags``) on a free loopback port, once ``ready`` answers 200
    (else raise, with its log); ``options`` go to gunicorn()."""
    port = free_port()
    with gunicorn([*flags, "--bind", f"127.0.0.1:{port}"], env, log, **options) as process:
        server = Gunicorn(process, port, log)
        try:
            wait_for_http(server.base + ready, timeout=timeout)
        except ToolkitError as e:
            tail = log.read_text(errors="replace")[-3000:]
            raise ToolkitError(
                f"gunicorn (exit {process.poll()}) did not serve: {e}\n{tail}"
            ) from e
        yield server
