"""The micro-cache for visitors (deploy/nginx/flaskr-micro-cache.conf) against nginx's own
ceiling, in one run: requests/s of

  - nginx serving a static file (13 bytes, as many as the hello below), keep-alive;
  - the visitors' index through the host's nginx site, without the micro-cache;
  - the same with it, as shipped, and in two variants: with nginx's cache lock (one request
    refreshes an expired page, the others wait), and with the lock and the expired page
    served while one request refreshes it;
  - a bare Flask "Hello, World!" under gunicorn (the README's flags), for the ratios.

    .venv/bin/python -m bench.micro_cache                  # 3 rounds of 5 s per row, wrk -t1 -c16
    .venv/bin/python -m bench.micro_cache --seconds 2 --rounds 1

The site is deploy/nginx/flaskr.conf rendered as scripts/install-host writes it, run by a
private nginx (toolkit/nginx.py's SiteNginx) in front of flaskr's gunicorn (the README's
command line, flaskr's own page cache on). Rows are interleaved round by round; the table
shows medians. Everything listens on 127.0.0.1 and is stopped at the end; root installs wrk
and nginx.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

from bench.data import flask_cmd, seed
from bench.load import WRK_FLAGS, run_wrk
from bench.pages import Page
from bench.servers import Server, run_env
from bench.stats import table
from toolkit.nginx import NGINX_DIR, SiteNginx
from toolkit.packages import need

SHIPPED = (NGINX_DIR / "flaskr-micro-cache.conf").read_text()
LOCKED = SHIPPED.replace("proxy_cache_lock off;", "proxy_cache_lock on;")
VARIANTS = {
    "with the micro-cache (as shipped: lock off)": SHIPPED,
    "with it, lock on": LOCKED,
    "with it, lock on + stale while updating": LOCKED
    + "proxy_cache_use_stale updating;\nproxy_cache_background_update on;\n",
}


Row = tuple[str, str, Page]  # what is measured, the server's address, the page asked for


def measure(seconds: int, rounds: int, posts: int) -> None:
    """Start everything, load each row ``rounds`` times in turn, print the table."""
    index, static = Page("index", "/"), Page("static", "/static/hello.txt")
    with contextlib.ExitStack() as stack:
        out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flaskr-bench-")))
        env = {**run_env(out / "instance"), "FLASKR_PROXY_FIX": "1"}
        flask_cmd(env, "init-db")
        seed(env, posts)
        flaskr = Server("flaskr", "hello:app", env, out)
        hello = Server("flask-hello", "hello_flask:app", run_env(), out)
        for server in (flaskr, hello):
            stack.callback(server.stop)
            server.start()
        plain = SiteNginx(flaskr.port, micro_cache=False, access_log=False)
        stack.callback(plain.cleanup)
        rows: list[Row] = [
            ("nginx, static 13-byte file", plain.base, static),
            ("Flask hello, gunicorn alone", hello.base, index),
            ("visitors' index through nginx, no micro-cache", plain.base, index),
        ]
        plain.start()
        for name, rules in VARIANTS.items():
            site = SiteNginx(flaskr.port, micro_cache=True, access_log=False, rules=rules)
            stack.callback(site.cleanup)
            site.start()
            rows.append((f"visitors' index through nginx, {name}", site.base, index))
        for _, base, page in rows:
            run_wrk(base, page, 1)  # warm-up: every worker, every cache
        rps: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        p99: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        for _ in range(rounds):
            for name, base, page in rows:
                r = run_wrk(base, page, seconds)
                if r["errors"]:
                    raise RuntimeError(f"{name}: {r['errors']} errors")
                rps[name].append(r["rps"])
                p99[name].append(r["p99"])
        report(rows, rps, p99, seconds, rounds, posts)


def report(
    rows: list[Row],
    rps: dict[str, list[float]],
    p99: dict[str, list[float]],
    seconds: int,
    rounds: int,
    posts: int,
) -> None:
    """The Markdown table: medians, spreads, and each row against the hello and the static file."""
    median = {name: statistics.median(v) for name, v in rps.items()}
    static, hello = median[rows[0][0]], median[rows[1][0]]
    print(
        f"wrk {' '.join(WRK_FLAGS[:2])} -d{seconds}s, {rounds} interleaved rounds (median, "
        f"lowest–highest), gunicorn --workers 3, {posts} posts"
    )
    head = ["what", "requests/s", "p99 latency", "× Flask hello", "× nginx static"]
    lines = [
        [
            name,
            f"{median[name]:,.0f} ({min(rps[name]):,.0f}–{max(rps[name]):,.0f})",
            f"{statistics.median(p99[name]):.1f} ms",
            f"{median[name] / hello:.2f}×",
            f"{median[name] / static:.3f}×",
        ]
        for name, _, _ in rows
    ]
    print(table(head, lines), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="wrk's time per row and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--posts", type=int, default=100)
    args = parser.parse_args()
    need("wrk")
    measure(args.seconds, args.rounds, args.posts)


if __name__ == "__main__":
    main()
