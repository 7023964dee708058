"""Scale-out throughput for docs/scale-out.md: the index page through a real nginx in front of
1, 2 and 3 gunicorn instances of flaskr (each the README's command line) on one PostgreSQL.

    .venv/bin/python -m bench.scale_out                    # wrk -t2 -c16 -d10s per row
    .venv/bin/python -m bench.scale_out --seconds 2 --posts 5

It uses the scale-out suite's launchers from the toolkit (a throwaway PostgreSQL cluster:
toolkit/postgres.py; gunicorn instances sharing a key file: toolkit/fleet.py; nginx with
swappable upstreams: toolkit/nginx.py), so it needs the dev venv (requests), and root: for the
cluster's ``postgres`` user, and to install wrk, nginx and PostgreSQL from Debian when they
are missing. Everything listens on 127.0.0.1
and is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

from bench.data import flask_cmd
from bench.load import run_wrk
from bench.pages import Page
from toolkit.fleet import Fleet, fleet_env
from toolkit.nginx import nginx
from toolkit.packages import need
from toolkit.postgres import postgres


def measure(seconds: int, connections: int, workers: int, posts: int) -> None:
    """Print the index page's throughput through nginx with 1, 2 and 3 instances."""
    flags = ["-t2", f"-c{connections}", "--latency", "--timeout", "10s"]
    index = Page("index", "/")
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="flaskr-bench-")))
        pg = stack.enter_context(postgres())
        env = fleet_env(workdir, pg.url)
        flask_cmd(env, "init-db")
        flask_cmd(env, "seed", "--force", "--posts", str(posts))
        fleet = Fleet(stack, workdir, env)
        instances = [fleet.start(workers=workers) for _ in range(3)]
        print(f"index page, wrk {' '.join(flags[:2])} -d{seconds}s, gunicorn --workers {workers}")
        print("| instances behind nginx | requests/s | p50 latency | p99 latency | errors |")
        print("|---|---|---|---|---|")
        for n in (1, 2, 3):
            with nginx([i.port for i in instances[:n]], access_log=False) as lb:
                run_wrk(lb.base, index, 2, flags=flags)  # warm every worker up
                r = run_wrk(lb.base, index, seconds, flags=flags)
                print(
                    f"| {n} | {r['rps']:,.0f} | {r['p50']:.1f} ms | {r['p99']:.1f} ms "
                    f"| {r['errors']} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk's time per row")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers per instance")
    parser.add_argument("--posts", type=int, default=30)
    args = parser.parse_args()
    need("wrk")  # nginx and PostgreSQL install themselves likewise
    measure(args.seconds, args.connections, args.workers, args.posts)


if __name__ == "__main__":
    main()
