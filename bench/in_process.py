"""Where a page's time goes, in-process: no gunicorn, no wrk, no network.

    .venv/bin/python -m bench.in_process / /?q=post /hello          # µs per request
    .venv/bin/python -m bench.in_process --posts 100000 --no-cache /?q=post
    .venv/bin/python -m bench.in_process --logged-in / /1           # a logged-in user's pages
    .venv/bin/python -m bench.in_process --profile /                # and cProfile's top entries
    .venv/bin/python -m bench.in_process --profile --sort tottime /  # ... by their own time
    .venv/bin/python -m bench.in_process --imports                  # RSS each import adds
    .venv/bin/python -m bench.in_process --posts 100000 --search-index
    .venv/bin/python -m bench.in_process --prose 4 --no-cache '/?page={n}' '/{n}'  # n cycles

``--prose KB`` gives every post a different body of that many kilobytes of Markdown prose,
and a path holding ``{n}`` is asked for with n = 1, 2, ... 200 in turn: together they show
what pages cost when the bodies they show are many and large (every body rendered when
written and stored, or rendered by each page: docs/performance.md compares the two).

Seeds a scratch database with `flask seed`, builds the app as production does (a real secret
key, no debug, no testing), calls it as a WSGI server would, and prints the median over
rounds of the mean CPU time per request (this process's, so other processes on a busy
machine barely move it), beside the same for a bare Flask "Hello, World!"
(bench.hello_flask). The figures are what docs/performance.md quotes for the profiles.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench.data import flask_cmd
from bench.hello_flask import app as hello
from bench.servers import run_env
from bench.settings import ROOT
from toolkit.visitors import csrf_token


def caller(app: Any, path: str, cookie: str = "") -> Callable[[], None]:
    """One GET of ``path`` through ``app``, as gunicorn's sync worker makes it."""
    from werkzeug.test import EnvironBuilder

    headers = {"Cookie": cookie} if cookie else {}
    builder = EnvironBuilder(path=path, base_url="http://127.0.0.1:8000", headers=headers)
    environ = builder.get_environ()

    def call() -> None:
        status = []
        body = app(dict(environ), lambda s, _h, _e=None: status.append(s))
        b"".join(body)
        getattr(body, "close", lambda: None)()
        if not status[0].startswith("200"):
            raise SystemExit(f"{path}: {status[0]}")

    return call


def cycling(app: Any, path: str, cookie: str = "", count: int = 200) -> Callable[[], None]:
    """GETs of ``path`` with ``{n}`` replaced by 1, 2, ... ``count``, then 1 again."""
    calls = [caller(app, path.format(n=n), cookie) for n in range(1, count + 1)]
    turn = iter(range(2**62))

    def call() -> None:
        calls[next(turn) % count]()

    return call


def write_prose(database: Path, kb: int) -> bool:
    """Give every post its own ``kb`` KB of Markdown prose; say whether HTML is stored too.

    The bodies' HTML, where the schema stores it (migration 0010), is cleared for `flask
    init-db` to render, as it does after an upgrade."""
    paragraph = "Post {id}, paragraph {p}: some *prose* with a [link](https://example.com/{id})"
    paragraph += " and `code`, written the way people write, at some length." * 2
    connection = sqlite3.connect(database)
    columns = {row[1] for row in connection.execute("PRAGMA table_info(post)")}
    stored = "body_html" in columns
    ids = [row[0] for row in connection.execute("SELECT id FROM post")]
    rows = []
    for id in ids:
        body, p = "", 0
        while len(body) < kb * 1024:
            body += paragraph.format(id=id, p=p) + "\n\n"
            p += 1
        rows.append((body, id))
    reset = ", body_html = NULL, rendered_with = NULL" if stored else ""
    connection.executemany(f"UPDATE post SET body = ?{reset} WHERE id = ?", rows)  # noqa: S608
    connection.commit()
    connection.close()
    return stored


def login_cookie(app: Any) -> str:
    """The session cookie of `flask seed`'s user "demo", logged in through the login form.

    Then a page with a form, as a browser would show next: logging in starts a new session,
    and the first form after it puts a CSRF token in it. Without it, every replayed request
    made a new token and signed a new cookie, which a browser's requests do once.
    """
    client = app.test_client()
    token = csrf_token(client.get("/auth/login").text) or ""
    data = {"username": "demo", "password": "demo", "csrf_token": token}
    if client.post("/auth/login", data=data).status_code != 302:
        raise SystemExit("logging in as demo failed")
    client.get("/create")
    return f"session={client.get_cookie('session').value}"


def per_request_us(call: Callable[[], None], requests: int, rounds: int) -> float:
    for _ in range(min(requests, 500)):
        call()
    means = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            call()
        means.append((time.process_time() - started) / requests * 1e6)
    return statistics.median(means)


#: What a flaskr worker loads, in order, and what only migrations and uploads need (Alembic,
#: Pillow): ``--imports`` prints the resident memory each step adds to those before it.
IMPORT_STEPS = [
    ("python", "pass"),
    ("flask", "import flask"),
    ("sqlalchemy + its ORM", "import sqlalchemy.orm, flask_sqlalchemy"),
    ("flaskr's app, every blueprint", "from flaskr import create_app; create_app()"),
    ("alembic + flask_migrate", "import flask_migrate"),
    ("Pillow", "import PIL.Image"),
]
MEASURE = """
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
before = rss_mb()
for name, code in STEPS:
    exec(code)
    after = rss_mb()
    print(f"{name:32} +{after - before:5.1f} MB  ({after:5.1f} MB)")
    before = after
"""


def search_index(database: Path, requests: int) -> None:
    """A page of matches for a word in every title ('post') and in none ('needle'), read in
    the order listings use (ascending negated ids: newest first) and in the opposite one."""
    connection = sqlite3.connect(database)
    query = "SELECT -rowid FROM post_search WHERE post_search MATCH ? ORDER BY rowid {} LIMIT 6"
    for word in ("post", "needle"):
        for order, name in (("ASC", "as listings read it"), ("DESC", "the other way")):
            read = partial(connection.execute, query.format(order), (f'"{word}"',))
            us = per_request_us(lambda read=read: read().fetchall(), requests, 5)
            print(f"search index, {word!r}, {name:20} {us:7.1f} µs/query")


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.in_process", description=__doc__.split("\n")[0]
    )
    p.add_argument("paths", nargs="*", default=["/", "/?q=post", "/tag/flask", "/1", "/hello"])
    p.add_argument("--posts", type=int, default=1_000)
    p.add_argument("--prose", type=int, metavar="KB", help="every post a different body of KB")
    p.add_argument("--requests", type=int, default=2_000, help="per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-cache", action="store_true", help="FLASKR_PAGE_CACHE_SIZE=0")
    p.add_argument("--logged-in", action="store_true", help="as flask seed's user demo")
    p.add_argument("--profile", action="store_true", help="print cProfile's top 30 per path")
    p.add_argument(
        "--sort", default="cumulative", help="the profile's order: cumulative, tottime, ..."
    )
    p.add_argument("--imports", action="store_true", help="RSS each import adds, then stop")
    p.add_argument(
        "--search-index",
        action="store_true",
        help="time the FTS5 title index walked both ways (migration 0005), then stop",
    )
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="flaskr-profile-") as scratch:
        run(args, Path(scratch))


def run(args: argparse.Namespace, scratch: Path) -> None:
    env = run_env(scratch)  # bench/run's: no FLASKR_* from the caller, a real key
    env["FLASKR_LOG_LEVEL"] = "WARNING"
    if args.no_cache:
        env["FLASKR_PAGE_CACHE_SIZE"] = "0"
    flask_cmd(env, "init-db")
    if args.imports:
        code = f"STEPS = {IMPORT_STEPS!r}\n{MEASURE}"
        cmd = [sys.executable, "-c", code]
        subprocess.run(cmd, cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, check=True)  # noqa: S603
        return
    flask_cmd(env, "seed", "--force", "--password", "demo", "--posts", str(args.posts))
    if args.search_index:
        search_index(scratch / "flaskr.sqlite", args.requests)
        return
    if args.prose and write_prose(scratch / "flaskr.sqlite", args.prose):
        flask_cmd(env, "init-db")  # renders the new bodies, as after an upgrade
    os.environ.clear()
    os.environ.update(env)  # create_app reads its settings from the environment

    # Imported once the environment is set: some of the app's libraries read it on import.
    from flaskr import create_app

    app = create_app()
    cookie = login_cookie(app) if args.logged_in else ""
    cache = "off" if args.no_cache else "on"
    who = ", logged in as demo" if cookie else ""
    bodies = f" of {args.prose} KB of prose each" if args.prose else ""
    print(
        f"{args.posts:,} posts{bodies}, page cache {cache}{who}, "
        f"{args.rounds} rounds of {args.requests:,}"
    )
    bare = per_request_us(caller(hello, "/"), args.requests, args.rounds)
    print(f"{'bare Flask hello':24} {bare:7.0f} µs/request")
    for path in args.paths:
        call = cycling(app, path, cookie) if "{n}" in path else caller(app, path, cookie)
        us = per_request_us(call, args.requests, args.rounds)
        print(f"{path:24} {us:7.0f} µs/request  ({us / bare:.1f} × bare Flask)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(per_request_us, call, args.requests, 1)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(30)
            print(out.getvalue())


if __name__ == "__main__":
    main()
