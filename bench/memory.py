"""Worker memory under gunicorn as the README runs it, with ordinary and with hostile content.

    .venv/bin/python -m bench.memory                     # --workers 3, 1,000 posts
    .venv/bin/python -m bench.memory --urls 1000 --hostile-posts 12
    .venv/bin/python -m bench.memory --app-dir /tmp/old/flaskr    # another version of flaskr/

Seeds a scratch database with `flask seed`, starts flaskr with bench/run's Server (gunicorn
from flaskr/, so gunicorn.conf.py applies), warms the ordinary pages and prints each worker's
RSS and PSS. Then adds hostile content, as a user with an account could: posts whose bodies
are at the form's limit (20,000 characters: long text, a long table, and reference links
that each expand to a long URL) with comments at their limit (2,000 characters), and visits
every page that shows them, and many distinct URLs of every page the cache keeps (a query
string that changes nothing but the URL). It prints the workers' memory again: the figures
docs/performance.md quotes for the per-worker ceiling.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.data import flask_cmd
from bench.load import warm
from bench.servers import APP_DIR, Server, run_env

BODY_MAX, COMMENT_MAX = 20_000, 2_000  # flaskr/forms.py


def hostile_bodies() -> list[str]:
    """Bodies at the form's limit that render to as much HTML as Markdown makes of them."""
    url = "https://example.com/" + "x" * 400
    links = "[a] " * ((BODY_MAX - len(url) - 10) // 4)
    row = "| " + " | ".join(["`x`"] * 8) + " |\n"
    table = "| " + " | ".join("abcdefgh") + " |\n|" + "---|" * 8 + "\n"
    table += row * ((BODY_MAX - len(table)) // len(row))
    return [
        (links + "\n\n[a]: " + url)[:BODY_MAX],
        table,
        ("*word* " * BODY_MAX)[:BODY_MAX],
    ]


def add_hostile_content(database: Path, posts: int, comments: int) -> list[int]:
    """Posts and comments at their limits, written straight to the database (what the forms
    would accept); returns the new posts' ids."""
    bodies = hostile_bodies()
    comment = ("**bold** [l](https://example.com/" + "y" * 200 + ") ") * 20
    connection = sqlite3.connect(database)
    ids = []
    with connection:
        for n in range(posts):
            cursor = connection.execute(
                "INSERT INTO post (author_id, title, body) VALUES (1, ?, ?)",
                (f"Hostile {n}", bodies[n % len(bodies)]),
            )
            ids.append(cursor.lastrowid)
            connection.executemany(
                "INSERT INTO comment (post_id, author_id, body) VALUES (?, 1, ?)",
                [(cursor.lastrowid, comment[:COMMENT_MAX])] * comments,
            )
    connection.close()
    return ids


def fetch_all(urls: list[str], threads: int = 4) -> tuple[int, int]:
    """GET every URL, ``threads`` at a time; returns (answered 200, other)."""

    def one(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=120) as r:
                r.read()
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    with ThreadPoolExecutor(threads) as pool:
        answers = list(pool.map(one, urls))
    return sum(answers), len(answers) - sum(answers)


def report(label: str, server: Server) -> dict[str, float]:
    memory = server.rss()
    rss, pss = list(memory["workers"].values()), list(memory["workers_pss"].values())
    figures = {"rss_max": max(rss), "pss_max": max(pss), "pss_mean": sum(pss) / len(pss)}
    print(
        f"{label:34} workers RSS {' '.join(f'{m:5.1f}' for m in rss)} MB, "
        f"PSS {' '.join(f'{m:5.1f}' for m in pss)} MB (mean {figures['pss_mean']:.1f}); "
        f"master RSS {memory['master']:.1f} MB",
        flush=True,
    )
    return figures


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    p.add_argument("--posts", type=int, default=1_000)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument(
        "--hostile-posts", type=int, default=6, help="fewer than 3: stop after the warm figures"
    )
    p.add_argument("--comments", type=int, default=50, help="per hostile post")
    p.add_argument("--urls", type=int, default=300, help="distinct URLs per cached page")
    p.add_argument("--again", type=int, default=4, help="rounds of hostile pages at the end")
    p.add_argument("--app-dir", type=Path, help="serve this copy of flaskr/ (A/B), as bench/run")
    args = p.parse_args()
    if args.app_dir:
        APP_DIR[0] = args.app_dir.resolve()
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))  # stop gunicorn
    with tempfile.TemporaryDirectory(prefix="flaskr-memory-") as scratch:
        run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> None:
    env = run_env(scratch)
    env["FLASKR_LOG_LEVEL"] = "WARNING"
    flask_cmd(env, "init-db")
    flask_cmd(env, "seed", "--force", "--password", "demo", "--posts", str(args.posts))
    server = Server("memory", "hello:app", env, scratch, ["--workers", str(args.workers)])
    print(f"gunicorn {' '.join(server.args)}, {args.posts:,} posts", flush=True)
    try:
        server.start()
        ordinary = ["/", "/?q=post", "/tag/flask", "/1", "/feed.atom", "/hello"]
        for path in ordinary:
            warm(server.base + path, 300)
        report("warm, ordinary pages", server)
        if args.hostile_posts < 3:  # the distinct URLs below show the 2nd and 3rd
            return

        started = time.monotonic()
        ids = add_hostile_content(scratch / "flaskr.sqlite", args.hostile_posts, args.comments)
        pages = ["/", "/feed.atom", *(f"/{i}" for i in ids), "/?q=Hostile"]
        ok, bad = fetch_all([server.base + path for path in pages for _ in range(3)])
        seen = [report(f"hostile pages seen ({ok} ok, {bad} not)", server)]
        # Pages small enough to be kept (the ordinary ones, the hostile table and text posts
        # with their comments), each under many URLs.
        distinct = [
            f"{server.base}{path}{'&' if '?' in path else '?'}n={n}"
            for n in range(args.urls)
            for path in ("/?page=3", "/?q=post", "/tag/flask", f"/{ids[1]}", f"/{ids[2]}")
        ]
        ok, bad = fetch_all(distinct)
        seen.append(report(f"{len(distinct):,} distinct URLs ({ok} ok, {bad} not)", server))
        for n in range(args.again):
            ok, bad = fetch_all([server.base + path for path in pages for _ in range(3)])
            seen.append(report(f"hostile pages again, {n + 1} ({ok} ok, {bad} not)", server))
        print(
            f"ceiling seen: {max(f['rss_max'] for f in seen):.1f} MB RSS, "
            f"{max(f['pss_max'] for f in seen):.1f} MB PSS "
            f"per worker ({time.monotonic() - started:.0f} s of hostile load)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
