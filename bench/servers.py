"""gunicorn as the README runs it, for every configuration bench/ compares, with what a
benchmark reads from it: launch to first 200, the CPU seconds its processes spent, and the
resident (RSS) and proportional (PSS) memory of the master and each worker from /proc.

Every server started here is stopped however the run ends (``stop_all``, registered at exit).

It starts gunicorn with its own ``Popen`` rather than toolkit/servers.py's
``gunicorn(...)`` (whose stop, polling and ports it does use) for two reasons: a bench server
outlives any one with-block (started by one section, stopped by another or at exit), and its
access log (stdout) is thrown away while its error log (stderr) is kept, where the toolkit
writes both to one file: writing a line per request under wrk would cost the server disk I/O
that the figures would include.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.settings import BENCH, ROOT, VENV_BIN
from toolkit.ports import free_port
from toolkit.servers import GUNICORN_FLAGS, app_env, children, stop
from toolkit.wait import until

FLASKR_DIR = ROOT / "flaskr"
#: Where gunicorn runs flaskr from: this checkout's flaskr/ unless --app-dir names a scratch
#: copy (a changed app to compare; the data is still seeded by this checkout's flask seed).
APP_DIR = [FLASKR_DIR]

RUNNING: set[Server] = set()


def run_env(instance: Path | None = None) -> dict[str, str]:
    """The environment a deployment gives flaskr, without the caller's DATABASE_URL: a
    developer's PostgreSQL must not be benchmarked by accident."""
    return app_env(instance, keep_database_url=False)


class Server:
    """``gunicorn FLAGS APP`` run from flaskr/ as the README runs it (so flaskr/gunicorn.conf.py
    applies to every configuration alike); the tiny apps come from bench/ via --pythonpath."""

    def __init__(self, name: str, app: str, env: dict[str, str], out: Path, extra=()) -> None:
        self.name = name
        self.port = free_port()
        flags = list(GUNICORN_FLAGS)
        extra = list(extra)
        if "--workers" in extra:  # another count replaces the README's, not repeats it
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

        def first_200() -> bool:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name}: gunicorn exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False

        # Polled every 5 ms: the launch time is one of the figures.
        until(first_200, timeout, f"{self.name}'s first 200 on {url}", step=0.005)
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
        RUNNING.discard(self)

    def pids(self) -> tuple[int, list[int]]:
        assert self.process is not None
        return self.process.pid, sorted(children(self.process.pid))

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


def stop_all() -> None:
    for server in list(RUNNING):
        server.stop()
