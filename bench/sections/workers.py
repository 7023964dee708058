"""The workers section: gunicorn's sync workers against gthread with the same 3 processes,
and sync with each worker count asked for, on the index and a post page; the best sync count
by index throughput is named under the table.
"""

from __future__ import annotations

from typing import Any

from bench.pages import read_pages
from bench.sections.context import Context
from bench.settings import log
from bench.stats import med, summarise, table


def configs(worker_counts: list[int], threads: int) -> list[tuple[str, list[str]]]:
    """Each sync count, with gthread × 3 placed right after sync × 3 (or last)."""
    found: list[tuple[str, list[str]]] = [
        (f"sync × {n}", ["--workers", str(n)]) for n in worker_counts
    ]
    found.insert(
        worker_counts.index(3) + 1 if 3 in worker_counts else len(found),
        (
            f"gthread × 3 ({threads} threads)",
            ["--workers", "3", "--worker-class", "gthread", "--threads", str(threads)],
        ),
    )
    return found


def run(ctx: Context) -> None:
    s = ctx.settings
    tried = configs(s.worker_counts, s.threads)
    log(f"\n== workers: {', '.join(c for c, _ in tried)}")
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    needle = ctx.dbs[s.posts]["needle_id"]
    pages = [p for p in read_pages(needle) if p.name in ("index", "post page")]
    for rnd in range(s.rounds):
        order = tried if rnd % 2 == 0 else list(reversed(tried))
        for name, extra in order:
            server = ctx.flaskr(s.posts, f"workers-{rnd}-{name.split()[0]}{extra[1]}", extra)
            ctx.commands[f"flaskr ({name})"] = server.command
            try:
                server.start()
                ctx.warm(server, pages)
                label = f"round {rnd + 1} {name:22}"
                for page, r in ctx.measure(server, pages, s.growth_duration, label):
                    runs.setdefault((name, page.name), []).append(r)
                if (name, "rss") not in runs:
                    runs[(name, "rss")] = [{"rss": server.rss()}]
            finally:
                server.stop()
    ctx.results["workers"] = {
        "configs": [c for c, _ in tried],
        "rows": {
            f"{c}|{p}": summarise(v) if p != "rss" else v[0]["rss"] for (c, p), v in runs.items()
        },
    }


def render(results: dict[str, Any]) -> str:
    w = results["workers"]
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


def best(results: dict[str, Any]) -> str:
    """The sync worker count with the most index requests per second in this run."""
    w = results["workers"]
    sync = [c for c in w["configs"] if c.startswith("sync")]
    if not sync:
        return ""
    return max(sync, key=lambda c: med(w["rows"][f"{c}|index"]["rps"]))
