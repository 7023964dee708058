"""Load with wrk: one fixed request (bench/lua/request.lua) or the memory section's mixed
reads (bench/lua/soak.lua), and the CPU gunicorn spent on it, read from /proc around the run.

wrk runs on the same cores as gunicorn; its Lua scripts print one ``BENCH_JSON`` line that is
parsed here. Each distinct wrk command is kept (secrets elided) for the report.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.pages import Page
from bench.servers import Server
from bench.settings import LUA

WRK_FLAGS = ["-t1", "-c16", "--latency", "--timeout", "10s"]
SECRET = re.compile(r"(csrf_token=|session=)[^&;]+")
#: The wrk command of each kind of request, as the report shows it (secrets elided).
WRK_COMMANDS: dict[str, str] = {}


def wrk(server: Server, page: Page, duration: float, **options: Any) -> dict[str, Any]:
    """run_wrk against ``server``, plus the CPU its processes spent per request (µs).

    The server first finishes what the previous run left it: when wrk stops, the requests
    its 16 connections had sent are still queued, and 16 login POSTs are 16 scrypt hashes
    (about 2 s of CPU). Measured straight after them, the create POST's first requests
    waited behind them (its p99 of 666 ms) and its CPU per request counted theirs.
    """
    settle(server)
    cpu0 = server.cpu_seconds()
    r = run_wrk(server.base, page, duration, **options)
    cpu = server.cpu_seconds() - cpu0
    r["cpu_us"] = cpu * 1e6 / r["requests"] if r["requests"] else 0.0
    return r


def settle(server: Server, timeout: float = 30.0) -> None:
    """Wait until ``server``'s processes are idle: under 5 ms of CPU in 100 ms."""
    deadline = time.monotonic() + timeout
    before = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.cpu_seconds()
        if now - before < 0.005:
            return
        before = now


def run_wrk(
    base: str,
    page: Page,
    duration: float,
    script: str = "request.lua",
    extra_env: dict[str, str] | None = None,
    flags: list[str] = WRK_FLAGS,
) -> dict[str, Any]:
    """One wrk run of ``page`` on the server at ``base``: requests/s, latencies, errors."""
    url = base + page.path
    cmd = ["wrk", *flags, f"-d{max(1, round(duration))}s", "-s", str(LUA / script), url]
    env = {
        **os.environ,
        "BENCH_LUA_DIR": str(LUA),
        "BENCH_METHOD": page.method,
        "BENCH_BODY": page.body,
        "BENCH_COOKIE": page.cookie,
        "BENCH_CONTENT_TYPE": page.content_type,
        **(extra_env or {}),
    }
    key = f"{script}:{page.name if page.method == 'POST' else 'GET'}"
    if key not in WRK_COMMANDS:
        WRK_COMMANDS[key] = shown_command(env, cmd, script, page.path)
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {url}: {done.stderr.strip() or done.stdout[-500:]}")
    r = json.loads(line.split(" ", 1)[1])
    seconds = r["duration_us"] / 1e6
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return {
        "rps": r["requests"] / seconds if seconds else 0.0,
        "p50": r["p50_us"] / 1000,
        "p99": r["p99_us"] / 1000,
        "errors": errors,
        "requests": r["requests"],
        "raw": r,
    }


def shown_command(env: dict[str, str], cmd: list[str], script: str, path: str) -> str:
    """The wrk command as a reader would type it from the checkout, cookies and tokens elided."""
    shown = [
        k + "=" + shlex.quote(SECRET.sub(r"\1…", v))
        for k, v in env.items()
        if k.startswith("BENCH_") and v and k != "BENCH_LUA_DIR"
    ]
    return " ".join(
        [
            "BENCH_LUA_DIR=bench/lua",
            *shown,
            *cmd[:-3],
            "-s",
            f"bench/lua/{script}",
            "http://127.0.0.1:PORT" + path,
        ]
    )


def warm(url: str, count: int) -> None:
    """``count`` GETs of ``url``, 4 at a time, so every worker has served it before timing."""

    def one(_: int) -> None:
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
        except (urllib.error.URLError, OSError):
            pass

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
