"""Where a page's time goes, in-process: no gunicorn, no wrk, no network.

    .venv/bin/python bench/in_process.py / /?q=post /hello          # µs per request
    .venv/bin/python bench/in_process.py --posts 100000 --no-cache /?q=post
    .venv/bin/python bench/in_process.py --profile /                # and cProfile's top entries

Seeds a scratch database with `flask seed`, builds the app as production does (a real secret
key, no debug, no testing), calls it as a WSGI server would, and prints the median over
rounds of the mean time per request, beside the same for a bare Flask "Hello, World!"
(bench/hello_flask.py). The figures are what docs/performance.md quotes for the profiles.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


def caller(app: Any, path: str) -> Callable[[], None]:
    """One GET of ``path`` through ``app``, as gunicorn's sync worker makes it."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path=path, base_url="http://127.0.0.1:8000").get_environ()

    def call() -> None:
        status = []
        body = app(dict(environ), lambda s, _h, _e=None: status.append(s))
        b"".join(body)
        getattr(body, "close", lambda: None)()
        if not status[0].startswith("200"):
            raise SystemExit(f"{path}: {status[0]}")

    return call


def per_request_us(call: Callable[[], None], requests: int, rounds: int) -> float:
    for _ in range(min(requests, 500)):
        call()
    means = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(requests):
            call()
        means.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(means)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paths", nargs="*", default=["/", "/?q=post", "/tag/flask", "/1", "/hello"])
    p.add_argument("--posts", type=int, default=1_000)
    p.add_argument("--requests", type=int, default=2_000, help="per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-cache", action="store_true", help="FLASKR_PAGE_CACHE_SIZE=0")
    p.add_argument("--profile", action="store_true", help="print cProfile's top 30 per path")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="flaskr-profile-") as scratch:
        run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> None:
    os.environ.update(
        FLASKR_INSTANCE_PATH=str(scratch),
        FLASKR_SECRET_KEY=secrets.token_hex(32),
        FLASKR_LOG_LEVEL="WARNING",
        FLASKR_PAGE_CACHE_SIZE="0" if args.no_cache else "256",
    )
    os.environ.pop("FLASKR_DATABASE_URL", None)
    os.environ.pop("DATABASE_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "flaskr"]
    subprocess.run([*flask, "init-db"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(
        [*flask, "seed", "--posts", str(args.posts)], cwd=ROOT, check=True, capture_output=True
    )

    from hello_flask import app as hello

    from flaskr import create_app

    app = create_app()
    cache = "off" if args.no_cache else "on"
    print(f"{args.posts:,} posts, page cache {cache}, {args.rounds} rounds of {args.requests:,}")
    bare = per_request_us(caller(hello, "/"), args.requests, args.rounds)
    print(f"{'bare Flask hello':24} {bare:7.0f} µs/request")
    for path in args.paths:
        call = caller(app, path)
        us = per_request_us(call, args.requests, args.rounds)
        print(f"{path:24} {us:7.0f} µs/request  ({us / bare:.1f} × bare Flask)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(per_request_us, call, args.requests, 1)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
            print(out.getvalue())


if __name__ == "__main__":
    main()
