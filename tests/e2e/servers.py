"""Real servers for the end-to-end suites: gunicorn run as the seed runs it, and a throwaway
PostgreSQL cluster. Each starts on 127.0.0.1 or a private socket, and always stops."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def app_env(instance: Path, **extra: str) -> dict[str, str]:
    """The environment a deployment gives flaskr: its own instance folder and a real key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKR_")}
    env.update(
        FLASKR_INSTANCE_PATH=str(instance),
        FLASKR_SECRET_KEY=secrets.token_hex(32),
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
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


@contextmanager
def gunicorn(
    args: list[str], env: dict[str, str], log: Path, app_dir: Path = ROOT / "flaskr"
) -> Iterator[subprocess.Popen]:
    """Run ``gunicorn ARGS hello:app`` from the flaskr/ folder (or a copy), as the seed does;
    stop it with TERM (then KILL after a deadline) however the test ends."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), *args, "hello:app"],
            cwd=app_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process)


def stop(process: subprocess.Popen, timeout: float = 15) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    return process.returncode


def wait_for_file(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not appear within {timeout}s")
        time.sleep(0.05)


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgresql(port: int) -> Iterator[str]:
    """A new PostgreSQL cluster owned by the ``postgres`` user, listening on 127.0.0.1:PORT
    only; yields its SQLAlchemy URL and removes the cluster afterwards."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        from tests.e2e.conftest import apt_install

        apt_install("postgresql")
        bin_dir = postgres_bin()
    assert bin_dir is not None, "PostgreSQL's initdb is missing after installing postgresql"
    user = pwd.getpwnam("postgres")
    base = Path(tempfile.mkdtemp(prefix="flaskr-pg-"))
    data, sockets = base / "data", base / "sock"
    as_postgres = ["runuser", "-u", "postgres", "--"]

    def run(*cmd: str) -> None:
        subprocess.run([*as_postgres, *cmd], check=True, capture_output=True, cwd=base, timeout=120)

    try:  # from here on, a failure still stops the cluster and removes its folder
        sockets.mkdir()
        os.chown(base, user.pw_uid, user.pw_gid)
        os.chown(sockets, user.pw_uid, user.pw_gid)
        run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
            "-w", "start")  # fmt: skip
        run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "flaskr")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/flaskr"
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            cwd=base,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
