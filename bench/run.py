"""Benchmark flaskr as the README serves it, beside a bare Flask app and a bare WSGI callable.

Run by ``bench/run`` (which checks for wrk and the project's .venv first) as
``python -m bench.run``. Everything runs on 127.0.0.1, every load is bounded in time, and
every server is stopped however the run ends.

Sections (all by default; ``--only`` picks some), one module each in bench/sections/:
  main     flaskr's pages and forms, a bare Flask app and a bare WSGI callable, interleaved
           rounds, medians, spread, flaskr's ratio to each; time from launch to first 200
  growth   index, search (common and rare word) and a tag page at 100 / 10,000 / 100,000 posts
  memory   RSS of the master and each worker after warm-up and after a long mixed run
  workers  sync against gthread with the same 3 processes, and each sync worker count asked

``--smoke`` runs all of it on tiny data with short loads, for CI to check every row, and
writes no RESULTS.md.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import shlex
import shutil
import signal
import sys
import time
from typing import Any

from bench.data import build_databases
from bench.report import draw, load_average, machine, report
from bench.sections import growth, main, memory, workers
from bench.sections.context import Context
from bench.servers import APP_DIR, stop_all
from bench.settings import BENCH, ROOT, log, parse_args

SECTIONS = {"main": main.run, "growth": growth.run, "memory": memory.run, "workers": workers.run}


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def run(argv: list[str]) -> int:
    settings = parse_args(argv)
    if settings.app_dir is not None:
        APP_DIR[0] = settings.app_dir
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
    ctx = Context(settings, out)
    try:
        log("== data: flask seed")
        sizes = {settings.posts} | (
            set(settings.growth_sizes) if "growth" in settings.sections else set()
        )
        ctx.dbs = build_databases(out, sorted(sizes))
        for name, section in SECTIONS.items():
            if name in settings.sections:
                section(ctx)
    finally:
        stop_all()
        if not settings.keep:
            for sub in ("instances", *(f"db-{n}" for n in ctx.dbs)):
                shutil.rmtree(out / sub, ignore_errors=True)
    info["elapsed"] = time.monotonic() - started
    info["load_after"] = load_average()
    (out / "results.json").write_text(json.dumps(ctx.results, default=str, indent=1))
    info["plot"] = settings.plot and draw(ctx.results, out)
    text = report(ctx, info)
    log("\n" + text)
    if settings.write_results:
        (BENCH / "RESULTS.md").write_text(text)
        log("wrote bench/RESULTS.md" + (" and bench/growth.png" if info["plot"] else ""))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(run(sys.argv[1:]))
    except KeyboardInterrupt:
        stop_all()
        print("\ninterrupted: servers stopped", file=sys.stderr)
        sys.exit(130)
