"""gunicorn as the seed runs it, for every configuration bench/ compares, with what a
benchmark reads from it: launch to first 200, the CPU seconds its processes spent, and the
resident (RSS) and proportional (PSS) memory of the master and each worker from /proc.

Every server started here is stopped however the run ends (``stop_all``, registered at exit).
"""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.settings import BENCH, ROOT, VENV_BIN

FLASKR_DIR = ROOT / "flaskr"
#: Where gunicorn runs flaskr from: this checkout's flaskr/ unless --app-dir names a scratch
#: copy (a changed app to compare; the data is still seeded by this checkout's flask seed).
APP_DIR = [FLASKR_DIR]
SEED_FLAGS = ["--workers", "3", "--timeout", "120"]

RUNNING: set[Server] = set()


def run_env(instance: Path | None = None) -> dict[str, str]:
    """The environment a deployment gives flaskr: no FLASKR_*/DATABASE_URL from the caller
    (a developer's PostgreSQL must not be benchmarked by accident), a real key, its instance."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("FLASKR_") and k != "DATABASE_URL"
    }
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env["FLASKR_SECRET_KEY"] = secrets.token_hex(32)
    if instance is not None:
        env["FLASKR_INSTANCE_PATH"] = str(instance)
    return env


class Server:
    """``gunicorn FLAGS APP`` run from flaskr/ as the seed runs it (so flaskr/gunicorn.conf.py
    applies to every configuration alike); the tiny apps come from bench/ via --pythonpath."""

    def __init__(self, name: str, app: str, env: dict[str, str], out: Path, extra=()) -> None:
        self.name = name
        self.port = free_port()
        flags = list(SEED_FLAGS)
        extra = list(extra)
        if "--workers" in extra:  # another count replaces the seed's, not repeats it
            at = extra.index("--workers")
            flags[1] = extra[at + 1]
            del extra[at : at + 2]
        self.args = [*flags, "--bind", f"127.0.0.1:{self.port}", *extra]
        if app != "hello:app":
            self.args += ["--pythonpath", str(BENCH)]
        self.app = app
        self.env = env
        self.log_path = out / f"gunicorn-{name}.log"
        self.process: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    @property
    def command(self) -> str:
        return shlex.join(["gunicorn", *self.args, self.app]).replace(str(ROOT) + "/", "../")

    def start(self, timeout: float = 60.0) -> float:
        """Launch gunicorn; return the seconds from launch to the first 200 on ``/``."""
        with open(self.log_path, "ab") as err:
            started = time.monotonic()
            self.process = subprocess.Popen(
                [str(VENV_BIN / "gunicorn"), *self.args, self.app],
                cwd=APP_DIR[0],
                env=self.env,
                stdout=subprocess.DEVNULL,  # the access log (gunicorn.conf.py: accesslog = "-")
                stderr=err,
                start_new_session=True,
            )
        RUNNING.add(self)
        url = self.base + "/"
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: gunicorn exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{self.name}: no 200 from {url} within {timeout}s")
            time.sleep(0.005)

    def stop(self) -> None:
        p = self.process
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
            except ProcessLookupError:
                pass
        RUNNING.discard(self)

    def pids(self) -> tuple[int, list[int]]:
        assert self.process is not None
        master = self.process.pid
        workers = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                    workers.append(int(entry))
        return master, sorted(workers)

    def rss(self) -> dict[str, Any]:
        """RSS in MB of the master and of each worker (VmRSS; PSS too, which shares pages)."""
        master, workers = self.pids()
        return {
            "master": rss_mb(master),
            "workers": {pid: rss_mb(pid) for pid in workers},
            "workers_pss": {pid: pss_mb(pid) for pid in workers},
        }

    def cpu_seconds(self) -> float:
        """user+system CPU of the master and its workers so far."""
        master, workers = self.pids()
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in [master, *workers]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_all() -> None:
    for server in list(RUNNING):
        server.stop()
