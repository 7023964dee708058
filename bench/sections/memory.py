"""The memory section: the RSS of gunicorn's master and each worker after a warm-up and after
a long mixed read load (bench/lua/soak.lua: index pages, random posts, searches, tag pages,
the feed), so that a leak or an unbounded cache shows as growth. Bounded in time however slow
the machine is (--soak-max-seconds).
"""

from __future__ import annotations

import time
from typing import Any

from bench.load import wrk
from bench.pages import Page
from bench.sections.context import Context
from bench.settings import log
from bench.stats import table


def run(ctx: Context) -> None:
    s = ctx.settings
    size = s.posts
    log(f"\n== memory: RSS after {s.soak_warmup:,} and after {s.soak_requests:,} more requests")
    server = ctx.flaskr(size, "memory")
    ctx.commands["flaskr (memory)"] = server.command
    env = {"BENCH_POSTS": str(ctx.dbs[size]["posts"])}
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
                extra = {**env, "BENCH_SEED": str(seed_n)}
                r = wrk(server, page, slice_s, script="soak.lua", extra_env=extra)
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
    ctx.results["memory"] = {"before": before, "after": after, "soak": soak, "samples": samples}


def render(results: dict[str, Any]) -> str:
    m = results["memory"]
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
