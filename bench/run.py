"""Benchmark flaskr as the seed serves it, beside a bare Flask app and a bare WSGI callable.

Called by ``bench/run`` (which checks for wrk and the project's .venv first). Everything runs
on 127.0.0.1, every load is bounded in time, and every server is stopped however the run ends.

Sections (all by default; ``--only`` picks some):
  main     flaskr's pages and forms, a bare Flask app and a bare WSGI callable, interleaved
           rounds, medians, spread, flaskr's ratio to each; time from launch to first 200
  growth   index, search (common and rare word) and a tag page at 100 / 10,000 / 100,000 posts
  memory   RSS of the master and each worker after warm-up and after a long mixed run
  workers  sync against gthread with the same 3 processes, and 1..6 sync workers

``--smoke`` runs all of it on tiny data in about half a minute and writes no RESULTS.md.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import http.cookiejar
import importlib.metadata
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
VENV_BIN = ROOT / ".venv" / "bin"
FLASKR_DIR = ROOT / "flaskr"
#: Where gunicorn runs flaskr from: this checkout's flaskr/ unless --app-dir names a scratch
#: copy (a changed app to compare; the data is still seeded by this checkout's flask seed).
APP_DIR = [FLASKR_DIR]
SEED_FLAGS = ["--workers", "3", "--timeout", "120"]
PACKAGES = ("flask", "werkzeug", "gunicorn", "sqlalchemy")
WRK_FLAGS = ["-t1", "-c16", "--latency", "--timeout", "10s"]
MATPLOTLIB = "matplotlib==3.11.2"
#: Flask hello under gunicorn's defaults rather than flaskr's gunicorn.conf.py (no access log).
NO_CONF = "Flask hello, no conf"
SECRET = re.compile(r"(csrf_token=|session=)[^&;]+")
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')

# ---------------------------------------------------------------------------------------------
# Settings


@dataclass
class Settings:
    rounds: int = 3
    duration: float = 8.0  # seconds of load per page and round, main section
    warmup: int = 100  # requests per page before measuring
    posts: int = 1_000  # posts in the main section's database
    growth_sizes: list[int] = field(default_factory=lambda: [100, 10_000, 100_000])
    growth_duration: float = 4.0  # seconds per page in the growth and workers sections
    soak_requests: int = 100_000
    soak_warmup: int = 5_000
    soak_max_seconds: float = 1800.0
    worker_counts: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    threads: int = 4
    sections: list[str] = field(default_factory=lambda: ["main", "growth", "memory", "workers"])
    write_results: bool = True
    plot: bool = True
    keep: bool = False
    smoke: bool = False


def parse_args(argv: list[str]) -> Settings:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark flaskr under gunicorn (the seed's flags) with wrk.",
    )
    p.add_argument("--smoke", action="store_true", help="tiny data, 1 round, ~1 s per config")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3; smoke 1)")
    p.add_argument("--duration", type=float, help="seconds per page and round (default 8)")
    p.add_argument("--posts", type=int, help="posts in the main database (default 1000)")
    p.add_argument("--growth", help="comma-separated post counts (default 100,10000,100000)")
    p.add_argument(
        "--growth-duration", type=float, help="seconds per growth and workers page (default 4)"
    )
    p.add_argument("--soak", type=int, help="requests in the memory run (default 100000)")
    p.add_argument("--soak-max-seconds", type=float, help="time cap of the memory run (1800)")
    p.add_argument("--warmup", type=int, help="warm-up requests per page (default 100)")
    p.add_argument("--workers", help="sync worker counts to try (default 1,2,3,4,5)")
    p.add_argument("--only", help="sections to run: main,growth,memory,workers")
    p.add_argument("--no-write", action="store_true", help="do not write bench/RESULTS.md")
    p.add_argument("--no-plot", action="store_true", help="do not draw bench/growth.png")
    p.add_argument(
        "--app-dir", type=Path, help="serve flaskr from another copy's flaskr/ folder (A/B)"
    )
    p.add_argument("--keep", action="store_true", help="keep the databases in bench/out/")
    args = p.parse_args(argv)
    s = Settings()
    if args.smoke:
        s = Settings(
            rounds=1,
            duration=1.0,
            warmup=20,
            posts=100,
            growth_sizes=[100],
            growth_duration=1.0,
            soak_requests=200,
            soak_warmup=50,
            worker_counts=[3],
            write_results=False,
            plot=False,
            smoke=True,
        )
    if args.rounds:
        s.rounds = args.rounds
    if args.duration:
        s.duration = args.duration
    if args.posts:
        s.posts = args.posts
    if args.growth:
        s.growth_sizes = sorted(int(x) for x in args.growth.split(","))
    if args.growth_duration:
        s.growth_duration = args.growth_duration
    if args.soak:
        s.soak_requests = args.soak
    if args.soak_max_seconds:
        s.soak_max_seconds = args.soak_max_seconds
    if args.warmup:
        s.warmup = args.warmup
    if args.workers:
        s.worker_counts = [int(x) for x in args.workers.split(",")]
    if args.only:
        s.sections = [x.strip() for x in args.only.split(",")]
        unknown = set(s.sections) - {"main", "growth", "memory", "workers"}
        if unknown:
            p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.no_write:
        s.write_results = False
    if args.no_plot or not s.write_results:
        s.plot = False
    s.keep = args.keep
    if args.app_dir:
        APP_DIR[0] = args.app_dir.resolve()
    return s


# ---------------------------------------------------------------------------------------------
# Servers


RUNNING: set[Server] = set()


def log(msg: str) -> None:
    print(msg, flush=True)


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


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# Load


@dataclass
class Page:
    name: str
    path: str
    method: str = "GET"
    body: str = ""
    cookie: str = ""
    content_type: str = ""
    expect: int = 200


WRK_COMMANDS: dict[str, str] = {}


def wrk(
    server: Server,
    page: Page,
    duration: float,
    script: str = "request.lua",
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One wrk run against ``server``; returns requests/s, latencies, errors and CPU/request."""
    url = server.base + page.path
    cmd = ["wrk", *WRK_FLAGS, f"-d{max(1, round(duration))}s", "-s", str(LUA / script), url]
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
        shown = [
            k + "=" + shlex.quote(SECRET.sub(r"\1…", v))
            for k, v in env.items()
            if k.startswith("BENCH_") and v and k != "BENCH_LUA_DIR"
        ]
        WRK_COMMANDS[key] = " ".join(
            [
                "BENCH_LUA_DIR=bench/lua",
                *shown,
                *cmd[:-3],
                "-s",
                f"bench/lua/{script}",
                "http://127.0.0.1:PORT" + page.path,
            ]
        )
    cpu0 = server.cpu_seconds()
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, check=False
    )
    cpu = server.cpu_seconds() - cpu0
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
        "cpu_us": cpu * 1e6 / r["requests"] if r["requests"] else 0.0,
        "raw": r,
    }


def warm(url: str, count: int) -> None:
    def one(_: int) -> None:
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
        except (urllib.error.URLError, OSError):
            pass

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))


# ---------------------------------------------------------------------------------------------
# Data


def flask_cmd(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(VENV_BIN / "flask"), "--app", "flaskr", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def seed(env: dict[str, str], posts: int) -> None:
    if posts > 0:
        flask_cmd(env, "seed", "--force", "--password", "demo", "--posts", str(posts))


def add_needle(env: dict[str, str]) -> dict[str, int]:
    done = subprocess.run(
        [str(VENV_BIN / "python"), str(BENCH / "extras.py")],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench/extras.py failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def backup(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def build_databases(out: Path, sizes: list[int]) -> dict[int, dict[str, Any]]:
    """Seed one database in steps with `flask seed` and keep a copy at each size asked for.
    Each copy also holds the needle post (added right after the first step)."""
    work = out / "seeding"
    env = run_env(work)
    flask_cmd(env, "init-db")
    made: dict[int, dict[str, Any]] = {}
    have = 0
    needle: dict[str, int] | None = None
    for size in sizes:
        started = time.monotonic()
        seed(env, size - have)
        have = size
        if needle is None:
            needle = add_needle(env)
        target = out / f"db-{size}" / "flaskr.sqlite"
        backup(work / "flaskr.sqlite", target)
        made[size] = {"pristine": target, "needle_id": needle["needle_id"], "posts": size + 1}
        log(f"  seeded {size:,} posts (+1 needle) in {time.monotonic() - started:.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    return made


def fresh_instance(db: dict[str, Any], out: Path, name: str) -> Path:
    """A new instance folder holding a copy of the pristine database (writes don't carry over
    from one round to the next)."""
    instance = out / "instances" / name
    shutil.rmtree(instance, ignore_errors=True)
    instance.mkdir(parents=True)
    backup(db["pristine"], instance / "flaskr.sqlite")
    return instance


class Browser:
    """A cookie jar and the CSRF token of the last form read, over plain urllib."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a: Any, **kw: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect
        )

    def token(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as r:
            found = TOKEN.search(r.read().decode())
        if not found:
            raise RuntimeError(f"no CSRF token on {path}")
        return found.group(1)

    def post(self, path: str, data: dict[str, str]) -> int:
        body = urllib.parse.urlencode(data).encode()
        try:
            with self.opener.open(self.base + path, data=body, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar if c.name == "session")


FORM = "application/x-www-form-urlencoded"


def form_pages(base: str, post_id: int) -> list[Page]:
    """The index and a post's page for a logged-in user (never from the page cache; the post
    page shows the comment form and the like button), the login POST (an
    anonymous session and its token, replayed) and the create POST (a logged-in session and
    its token). Each POST is tried once so a wrong setup fails loudly."""
    anon = Browser(base)
    token = anon.token("/auth/login")
    login = Page(
        "login POST",
        "/auth/login",
        "POST",
        urllib.parse.urlencode({"username": "demo", "password": "demo", "csrf_token": token}),
        anon.cookie(),
        FORM,
        302,
    )
    user = Browser(base)
    status = user.post(
        "/auth/login",
        {"username": "demo", "password": "demo", "csrf_token": user.token("/auth/login")},
    )
    if status != 302:
        raise RuntimeError(f"logging in as demo answered {status}, not 302")
    token = user.token("/create")
    create = Page(
        "create POST",
        "/create",
        "POST",
        urllib.parse.urlencode(
            {"title": "Bench post", "body": "Written by *bench/run*.", "tags": "bench, flask"}
        )
        + "&csrf_token="
        + urllib.parse.quote(token),
        user.cookie(),
        FORM,
        302,
    )
    signed_in = [
        Page("index, logged in (not cached)", "/", cookie=user.cookie()),
        Page("post page, logged in (not cached)", f"/{post_id}", cookie=user.cookie()),
    ]
    for page in (login, create):
        req = urllib.request.Request(
            base + page.path,
            data=page.body.encode(),
            headers={"Cookie": page.cookie, "Content-Type": page.content_type},
        )
        try:
            with Browser(base).opener.open(req, timeout=30) as r:
                status = r.status
        except urllib.error.HTTPError as e:
            status = e.code
        if status != page.expect:
            raise RuntimeError(f"{page.name}: answered {status}, not {page.expect}")
    return [*signed_in, login, create]


def read_pages(needle_id: int) -> list[Page]:
    return [
        Page("index", "/"),
        Page("post page", f"/{needle_id}"),
        Page("search, common word", "/?q=post"),
        Page("search, rare word", "/?q=needle"),
        Page("tag page", "/tag/python"),
        Page("feed", "/feed.atom"),
    ]


# ---------------------------------------------------------------------------------------------
# Statistics and tables


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float]) -> str:
    if len(xs) < 2:
        return "–"
    m = med(xs)
    return f"±{(max(xs) - min(xs)) / 2 / m * 100:.0f} % ({min(xs):,.0f}–{max(xs):,.0f})"


def ratio(a: list[float], b: list[float]) -> float:
    """The median of the per-round ratios: each round's pair ran minutes apart at most."""
    pairs = [x / y for x, y in zip(a, b, strict=False) if y]
    return med(pairs)


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "rps": [r["rps"] for r in runs],
        "p50": med([r["p50"] for r in runs]),
        "p99": med([r["p99"] for r in runs]),
        "errors": sum(r["errors"] for r in runs),
        "cpu_us": med([r["cpu_us"] for r in runs]),
    }


# ---------------------------------------------------------------------------------------------
# Sections


class Bench:
    def __init__(self, settings: Settings, out: Path) -> None:
        self.s = settings
        self.out = out
        self.results: dict[str, Any] = {}
        self.commands: dict[str, str] = {}
        self.dbs: dict[int, dict[str, Any]] = {}

    # -- helpers

    def flaskr(self, size: int, name: str, extra=(), page_cache: bool = True) -> Server:
        instance = fresh_instance(self.dbs[size], self.out, name)
        env = run_env(instance)
        if not page_cache:
            env["FLASKR_PAGE_CACHE_SIZE"] = "0"
        return Server(name, "hello:app", env, self.out, extra)

    def warm(self, server: Server, pages: list[Page]) -> None:
        """``warmup`` requests per GET page, 4 at a time, so every worker has served each."""
        for page in pages:
            if page.method == "GET":
                warm(server.base + page.path, self.s.warmup)

    # -- main

    def main(self) -> None:
        s = self.s
        log(f"\n== main: {s.rounds} interleaved round(s), {s.duration:g} s per page")
        needle = self.dbs[s.posts]["needle_id"]
        # Flask hello twice: under flaskr's gunicorn.conf.py (JSON access log and all), as
        # flaskr is served, and under gunicorn's defaults (no access log), the cheapest reading.
        configs = ["bare WSGI", "Flask hello", NO_CONF, "flaskr"]
        defaults = self.out / "gunicorn-defaults.conf.py"
        defaults.write_text("# gunicorn's defaults: no access log, nothing else\n")
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        startup: dict[str, list[float]] = {c: [] for c in configs}
        rss: list[dict[str, Any]] = []
        floor: dict[str, list[float]] = {}
        for rnd in range(s.rounds):
            turn = rnd % len(configs)
            order = configs[turn:] + configs[:turn]
            for config in order:
                if config == "flaskr":
                    server = self.flaskr(s.posts, f"flaskr-r{rnd}")
                else:
                    app = "bare_wsgi:app" if config == "bare WSGI" else "hello_flask:app"
                    extra = ["--config", str(defaults)] if config == NO_CONF else []
                    name = re.sub(r"\W+", "-", config)
                    server = Server(name, app, run_env(), self.out, extra)
                self.commands[config] = server.command
                try:
                    startup[config].append(server.start())
                    pages = (
                        read_pages(needle) if config == "flaskr" else [Page("Hello, World!", "/")]
                    )
                    self.warm(server, pages)
                    if config == "flaskr":
                        pages += form_pages(server.base, needle)
                        before = server.rss()
                    for page in pages:
                        r = wrk(server, page, s.duration)
                        runs.setdefault((config, page.name), []).append(r)
                        log(
                            f"  round {rnd + 1} {config:12} {page.name:20} {r['rps']:8,.0f} req/s"
                            f"  p50 {r['p50']:6.1f} ms  p99 {r['p99']:7.1f} ms"
                            f"  errors {r['errors']}"
                        )
                    if config == "flaskr":
                        rss.append({"warm": before, "after": server.rss()})
                    else:  # the floor: a worker of the same gunicorn and Python, nearly no app
                        floor.setdefault(config, []).extend(server.rss()["workers"].values())
                finally:
                    server.stop()
        self.results["main"] = {
            "rows": {f"{c}|{p}": summarise(v) for (c, p), v in runs.items()},
            "startup": startup,
            "rss": rss,
            "floor_rss": {c: med(v) for c, v in floor.items()},
        }

    def main_table(self) -> str:
        rows_in = self.results["main"]["rows"]
        hello = rows_in.get("Flask hello|Hello, World!")
        hello_no_conf = rows_in.get(f"{NO_CONF}|Hello, World!")
        bare = rows_in.get("bare WSGI|Hello, World!")
        rows = []
        for key, v in rows_in.items():
            config, page = key.split("|")
            vs_hello = ratio(v["rps"], hello["rps"]) if hello and config == "flaskr" else None
            vs_plain = (
                ratio(v["rps"], hello_no_conf["rps"])
                if hello_no_conf and config in ("flaskr", "Flask hello")
                else None
            )
            vs_bare = ratio(v["rps"], bare["rps"]) if bare and config != "bare WSGI" else None
            rows.append(
                [
                    config,
                    page,
                    f"{med(v['rps']):,.0f}",
                    f"{v['p50']:.1f}",
                    f"{v['p99']:.1f}",
                    str(v["errors"]),
                    spread(v["rps"]),
                    f"{v['cpu_us']:,.0f}",
                    f"{vs_hello:.2f}" if vs_hello is not None else "–",
                    f"{vs_plain:.2f}" if vs_plain is not None else "–",
                    f"{vs_bare:.2f}" if vs_bare is not None else "–",
                ]
            )
        head = [
            "config",
            "page",
            "req/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "spread of req/s",
            "CPU µs/req",
            "× Flask hello",
            "× Flask hello, no conf",
            "× bare WSGI",
        ]
        return table(head, rows)

    def startup_table(self) -> str:
        rows = []
        for config, xs in self.results["main"]["startup"].items():
            if xs:
                rows.append(
                    [config, f"{med(xs):.2f}", f"{min(xs):.2f}–{max(xs):.2f}", str(len(xs))]
                )
        return table(["config", "launch to first 200, s (median)", "range", "launches"], rows)

    # -- growth

    def growth(self) -> None:
        s = self.s
        log(f"\n== growth: {', '.join(f'{n:,}' for n in s.growth_sizes)} posts")
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for rnd in range(s.rounds):
            sizes = s.growth_sizes if rnd % 2 == 0 else list(reversed(s.growth_sizes))
            for size in sizes:
                pages = [
                    p
                    for p in read_pages(self.dbs[size]["needle_id"])
                    if p.name not in ("post page", "feed")
                ]
                # Page cache off: every request runs the page's queries, whose cost is what
                # may grow with the data (a cached page costs one read at any size).
                server = self.flaskr(size, f"growth-{size}-r{rnd}", page_cache=False)
                self.commands["flaskr (growth, FLASKR_PAGE_CACHE_SIZE=0)"] = server.command
                try:
                    server.start()
                    self.warm(server, pages)
                    for page in pages:
                        r = wrk(server, page, s.growth_duration)
                        runs.setdefault((page.name, size), []).append(r)
                        log(
                            f"  round {rnd + 1} {size:>7,} posts {page.name:20}"
                            f" {r['rps']:8,.0f} req/s  p99 {r['p99']:7.1f} ms"
                            f"  errors {r['errors']}"
                        )
                finally:
                    server.stop()
        self.results["growth"] = {
            "sizes": s.growth_sizes,
            "rows": {f"{p}|{n}": summarise(v) for (p, n), v in runs.items()},
        }

    def growth_table(self) -> str:
        g = self.results["growth"]
        sizes = g["sizes"]
        pages = list(dict.fromkeys(k.split("|")[0] for k in g["rows"]))
        rows = []
        for page in pages:
            cells = [page]
            for n in sizes:
                v = g["rows"][f"{page}|{n}"]
                cells.append(f"{med(v['rps']):,.0f} (p99 {v['p99']:.1f} ms, {v['cpu_us']:,.0f} µs)")
            first, last = g["rows"][f"{page}|{sizes[0]}"], g["rows"][f"{page}|{sizes[-1]}"]
            cells.append(f"{ratio(last['rps'], first['rps']):.2f}" if len(sizes) > 1 else "–")
            cells.append(str(sum(g["rows"][f"{page}|{n}"]["errors"] for n in sizes)))
            rows.append(cells)
        head = (
            ["page"]
            + [f"{n:,} posts: req/s (p99, CPU/req)" for n in sizes]
            + [f"× at {sizes[-1]:,} vs {sizes[0]:,}", "errors"]
        )
        return table(head, rows)

    # -- memory

    def memory(self) -> None:
        s = self.s
        size = s.posts
        log(f"\n== memory: RSS after {s.soak_warmup:,} and after {s.soak_requests:,} more requests")
        server = self.flaskr(size, "memory")
        self.commands["flaskr (memory)"] = server.command
        env = {"BENCH_POSTS": str(self.dbs[size]["posts"])}
        page = Page("mixed reads", "/")
        slice_s = 1 if s.smoke else 10
        samples: list[dict[str, Any]] = []
        total = {"requests": 0, "errors": 0, "seconds": 0.0}
        deadline = time.monotonic() + s.soak_max_seconds  # bounded however slow the host is
        try:
            server.start()
            seed_n = 0

            def load(requests: int) -> None:
                nonlocal seed_n
                done = 0
                while done < requests and time.monotonic() < deadline:
                    seed_n += 1
                    r = wrk(server, page, slice_s, "soak.lua", {**env, "BENCH_SEED": str(seed_n)})
                    done += r["requests"]
                    total["requests"] += r["requests"]
                    total["errors"] += r["errors"]
                    total["seconds"] += r["raw"]["duration_us"] / 1e6
                    samples.append({"requests": total["requests"], "rss": server.rss()})

            load(s.soak_warmup)
            before = server.rss()
            warm_requests = total["requests"]
            load(s.soak_requests)
            after = server.rss()
        finally:
            server.stop()
        soak = {
            "requests": total["requests"] - warm_requests,
            "warm_requests": warm_requests,
            "rps": total["requests"] / total["seconds"] if total["seconds"] else 0.0,
            "errors": total["errors"],
        }
        log(
            f"  soak: {soak['requests']:,} requests after {warm_requests:,} of warm-up, "
            f"{soak['rps']:,.0f} req/s, errors {soak['errors']}"
        )
        self.results["memory"] = {
            "before": before,
            "after": after,
            "soak": soak,
            "samples": samples,
        }

    def memory_table(self) -> str:
        m = self.results["memory"]
        b, a = m["before"], m["after"]
        rows = [
            [
                "master",
                f"{b['master']:.1f}",
                f"{a['master']:.1f}",
                f"{(a['master'] / b['master'] - 1) * 100:+.1f} %",
                "–",
            ]
        ]
        for n, pid in enumerate(sorted(b["workers"]), 1):
            before = b["workers"][pid]
            after = a["workers"].get(pid)
            if after is None:
                rows.append([f"worker {n} (pid {pid})", f"{before:.1f}", "replaced", "–", "–"])
                continue
            pss = a["workers_pss"].get(pid, 0.0)
            rows.append(
                [
                    f"worker {n}",
                    f"{before:.1f}",
                    f"{after:.1f}",
                    f"{(after / before - 1) * 100:+.1f} %",
                    f"{pss:.1f}",
                ]
            )
        head = [
            "process",
            f"RSS MB after {m['soak']['warm_requests']:,} req",
            f"after {m['soak']['requests']:,} more",
            "growth",
            "PSS MB after",
        ]
        return table(head, rows)

    # -- workers

    def workers(self) -> None:
        s = self.s
        configs: list[tuple[str, list[str]]] = [
            (f"sync × {n}", ["--workers", str(n)]) for n in s.worker_counts
        ]
        configs.insert(
            s.worker_counts.index(3) + 1 if 3 in s.worker_counts else len(configs),
            (
                f"gthread × 3 ({s.threads} threads)",
                ["--workers", "3", "--worker-class", "gthread", "--threads", str(s.threads)],
            ),
        )
        log(f"\n== workers: {', '.join(c for c, _ in configs)}")
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        needle = self.dbs[s.posts]["needle_id"]
        pages = [p for p in read_pages(needle) if p.name in ("index", "post page")]
        for rnd in range(s.rounds):
            order = configs if rnd % 2 == 0 else list(reversed(configs))
            for name, extra in order:
                server = self.flaskr(s.posts, f"workers-{rnd}-{name.split()[0]}{extra[1]}", extra)
                self.commands[f"flaskr ({name})"] = server.command
                try:
                    server.start()
                    self.warm(server, pages)
                    for page in pages:
                        r = wrk(server, page, s.growth_duration)
                        runs.setdefault((name, page.name), []).append(r)
                        log(
                            f"  round {rnd + 1} {name:22} {page.name:10} {r['rps']:8,.0f} req/s"
                            f"  p99 {r['p99']:7.1f} ms  errors {r['errors']}"
                        )
                    if (name, "rss") not in runs:
                        runs[(name, "rss")] = [{"rss": server.rss()}]
                finally:
                    server.stop()
        self.results["workers"] = {
            "configs": [c for c, _ in configs],
            "rows": {
                f"{c}|{p}": summarise(v) if p != "rss" else v[0]["rss"]
                for (c, p), v in runs.items()
            },
        }

    def workers_table(self) -> str:
        w = self.results["workers"]
        rows = []
        for c in w["configs"]:
            i, p = w["rows"][f"{c}|index"], w["rows"][f"{c}|post page"]
            mem = w["rows"][f"{c}|rss"]
            total = mem["master"] + sum(mem["workers"].values())
            rows.append(
                [
                    c,
                    f"{med(i['rps']):,.0f}",
                    f"{i['p99']:.1f}",
                    f"{med(p['rps']):,.0f}",
                    f"{p['p99']:.1f}",
                    f"{i['cpu_us']:,.0f}",
                    f"{total:.0f}",
                    str(i["errors"] + p["errors"]),
                ]
            )
        head = [
            "gunicorn",
            "index req/s",
            "index p99 ms",
            "post req/s",
            "post p99 ms",
            "index CPU µs/req",
            "RSS total MB",
            "errors",
        ]
        return table(head, rows)

    def best_workers(self) -> str:
        w = self.results["workers"]
        sync = [c for c in w["configs"] if c.startswith("sync")]
        if not sync:
            return ""
        best = max(sync, key=lambda c: med(w["rows"][f"{c}|index"]["rps"]))
        return best


# ---------------------------------------------------------------------------------------------
# Reports


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk_v.stdout or wrk_v.stderr).split("\n", 1)[0].split(" [")[0]
    debian = (
        Path("/etc/debian_version").read_text().strip()
        if Path("/etc/debian_version").exists()
        else ""
    )
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}"
        + (f", Debian {debian}" if debian else ""),
        # bench/run runs this file with the project's .venv: its packages are gunicorn's.
        "python": platform.python_version(),
        **{name: importlib.metadata.version(name) for name in PACKAGES},
        "wrk": wrk_version,
    }


def load_average() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f}, {b:.2f}, {c:.2f}"


def report(bench: Bench, info: dict[str, Any]) -> str:
    """The whole report, as Markdown: printed at the end, and written as bench/RESULTS.md."""
    s = bench.s
    r = bench.results
    m = info["machine"]
    out: list[str] = []
    add = out.append
    add("# flaskr benchmark results\n")
    add(
        f"Written by `{info['command']}` on {info['date']} in {info['elapsed']:.0f} s. "
        "Absolute figures hold only on this kind of machine; compare the ratios, measured in "
        "the same run. See docs/performance.md for what they mean.\n"
    )
    add("## Machine\n")
    add(
        f"- {m['cores']} cores ({m['cpu']}), {m['memory']}, {m['os']}\n"
        f"- Python {m['python']}, Flask {m['flask']}, Werkzeug {m['werkzeug']}, "
        f"gunicorn {m['gunicorn']}, SQLAlchemy {m['sqlalchemy']}, {m['wrk']}; SQLite\n"
        f"- load average (1, 5, 15 min) before: {info['load_before']}; "
        f"after: {info['load_after']}\n"
    )
    # Only the load before the run says whether other jobs ran: the run itself keeps both
    # cores busy, so the load after it is always high.
    before = float(info["load_before"].split(",")[0])
    if before > 0.5 * (os.cpu_count() or 1):
        add(
            f"**The machine was busy when this run started** (load average {before:.1f} on "
            f"{m['cores']} cores): absolute figures may be low and noisy; the ratios within a "
            "round and the CPU µs per request are the steadier figures.\n"
        )
    add("## Method\n")
    add(
        f"- {s.rounds} round(s); each round runs every configuration in turn (order rotated "
        "each round), each on a freshly started gunicorn with a fresh copy of the database; "
        "figures are medians over rounds; ratios are the median of the per-round ratios; "
        "spread is half the range over rounds, as a share of the median.\n"
        f"- wrk on the same cores: {s.duration:g} s per page (growth and workers: "
        f"{s.growth_duration:g} s), after a warm-up of {s.warmup} requests per page. CPU µs/req is "
        "the user+system time of gunicorn's master and workers divided by the requests.\n"
        f"- Data: `flask --app flaskr seed --posts N` (demo posts, 5 tags), plus one post "
        "made by bench/extras.py through the models, 'Needle in a haystack' with a tag, 3 "
        f"comments, a like and an image (the post page and the rare search word). The main "
        f"database has {s.posts:,} posts.\n"
        "- Search: 'post' is in every title, 'needle' in one only.\n"
        "- Pages for visitors come from flaskr's page cache (flaskr/page_cache.py: one "
        "single-row read a request) except the 'logged in' rows, which replay a logged-in "
        "session and are rendered every time; the growth section turns the cache off "
        "(FLASKR_PAGE_CACHE_SIZE=0) so that it measures the queries.\n"
        "- Two readings of '× Flask hello': 'Flask hello' is served with flaskr's "
        "gunicorn.conf.py, as flaskr is (its JSON access log line per request included); "
        "'Flask hello, no conf' with gunicorn's defaults (no access log), the cheapest "
        "reference. Both share flaskr's other flags.\n"
        "- The login POST replays one anonymous session cookie and its CSRF token; the create "
        "POST replays a logged-in session; both answer 302.\n"
    )
    if APP_DIR[0] != FLASKR_DIR:
        add(f"**flaskr served from {APP_DIR[0]}**, not this checkout's flaskr/.\n")
    add("Commands (from `flaskr/`, so flaskr/gunicorn.conf.py applies to every config):\n")
    add("```sh")
    for name, cmd in bench.commands.items():
        add(f"# {name}")
        add(cmd)
    add("# wrk (the Lua scripts read the request from BENCH_* variables)")
    for cmd in WRK_COMMANDS.values():
        add(cmd)
    add("```\n")
    if "main" in r:
        add("## Pages and forms against bare apps\n")
        add(bench.main_table() + "\n")
        add("## Launch to first 200\n")
        add(bench.startup_table() + "\n")
    if "growth" in r:
        add("## Growth with the number of posts\n")
        add(bench.growth_table() + "\n")
        if info.get("plot"):
            add("![throughput against the number of posts](growth.png)\n")
    if "memory" in r:
        add("## Memory\n")
        soak = r["memory"]["soak"]
        add(
            f"A mixed read load (index pages, random posts, searches, tag pages, the feed) of "
            f"{soak['requests']:,} requests at {soak['rps']:,.0f} req/s, errors "
            f"{soak['errors']}.\n"
        )
        add(bench.memory_table() + "\n")
        floor = r.get("main", {}).get("floor_rss", {})
        if floor:
            figures = ", ".join(f"{c} {mb:.1f} MB" for c, mb in floor.items())
            add(
                f"For scale, a worker's RSS after its load in the main section: {figures} "
                "(same gunicorn, same Python, nearly no app).\n"
            )
    if "workers" in r:
        add("## Worker classes and counts\n")
        add(bench.workers_table() + "\n")
        add(f"Best sync worker count by index req/s in this run: **{bench.best_workers()}**.\n")
    return "\n".join(out)


def draw(bench: Bench, out: Path) -> bool:
    g = bench.results.get("growth")
    if not g or len(g["sizes"]) < 2:
        return False
    data = {
        "sizes": g["sizes"],
        "pages": {},
        "references": {},
        "title": "flaskr under gunicorn (sync, 3 workers): req/s against posts",
    }
    for key, v in g["rows"].items():
        page, _n = key.split("|")
        data["pages"].setdefault(page, []).append(med(v["rps"]))
    main = bench.results.get("main", {}).get("rows", {})
    if "Flask hello|Hello, World!" in main:
        data["references"]["bare Flask hello"] = med(main["Flask hello|Hello, World!"]["rps"])
    path = out / "growth.json"
    path.write_text(json.dumps(data))
    py = BENCH / ".venv" / "bin" / "python"
    if (
        not py.exists()
        or subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True).returncode
    ):
        log(
            "\nThe plot needs matplotlib, which the app does not: creating bench/.venv with "
            f"{MATPLOTLIB} (once; --no-plot skips it)."
        )
        made = subprocess.run([sys.executable, "-m", "venv", str(BENCH / ".venv")], check=False)
        pip = subprocess.run([str(py), "-m", "pip", "install", "-q", MATPLOTLIB], check=False)
        if made.returncode or pip.returncode:
            log("  could not install matplotlib: no plot (the figures are in RESULTS.md)")
            return False
    done = subprocess.run(
        [str(py), str(BENCH / "plot.py"), str(path), str(BENCH / "growth.png")], check=False
    )
    return done.returncode == 0


def main(argv: list[str]) -> int:
    settings = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    atexit.register(stop_all)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = BENCH / "out" / stamp
    out.mkdir(parents=True)
    started = time.monotonic()
    info: dict[str, Any] = {
        "command": shlex.join(["bench/run", *argv]),
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load_before": load_average(),
        "machine": machine(),
    }
    log(f"bench/run: work files in {out.relative_to(ROOT)}; load average {info['load_before']}")
    bench = Bench(settings, out)
    try:
        log("== data: flask seed")
        sizes = {settings.posts} | (
            set(settings.growth_sizes) if "growth" in settings.sections else set()
        )
        bench.dbs = build_databases(out, sorted(sizes))
        for section in ("main", "growth", "memory", "workers"):
            if section in settings.sections:
                getattr(bench, section)()
    finally:
        stop_all()
        if not settings.keep:
            for sub in ("instances", *(f"db-{n}" for n in bench.dbs)):
                shutil.rmtree(out / sub, ignore_errors=True)
    info["elapsed"] = time.monotonic() - started
    info["load_after"] = load_average()
    (out / "results.json").write_text(json.dumps(bench.results, default=str, indent=1))
    info["plot"] = settings.plot and draw(bench, out)
    text = report(bench, info)
    log("\n" + text)
    if settings.write_results:
        (BENCH / "RESULTS.md").write_text(text)
        log("wrote bench/RESULTS.md" + (" and bench/growth.png" if info["plot"] else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        stop_all()
        print("\ninterrupted: servers stopped", file=sys.stderr)
        sys.exit(130)
