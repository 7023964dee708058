"""The growth section: the pages whose queries could grow with the data (index, search for a
common and a rare word, a tag page) at each database size, with the page cache off so that
every request runs its queries; the last column is throughput at the largest size against the
smallest (1.00 means no growth).
"""

from __future__ import annotations

from typing import Any

from bench.pages import read_pages
from bench.sections.context import Context
from bench.settings import log
from bench.stats import med, ratio, summarise, table


def run(ctx: Context) -> None:
    s = ctx.settings
    log(f"\n== growth: {', '.join(f'{n:,}' for n in s.growth_sizes)} posts")
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for rnd in range(s.rounds):
        sizes = s.growth_sizes if rnd % 2 == 0 else list(reversed(s.growth_sizes))
        for size in sizes:
            pages = [
                p
                for p in read_pages(ctx.dbs[size]["needle_id"])
                if p.name not in ("post page", "feed")
            ]
            # Page cache off: every request runs the page's queries, whose cost is what
            # may grow with the data (a cached page costs one read at any size).
            server = ctx.flaskr(size, f"growth-{size}-r{rnd}", page_cache=False)
            ctx.commands["flaskr (growth, FLASKR_PAGE_CACHE_SIZE=0)"] = server.command
            try:
                server.start()
                ctx.warm(server, pages)
                label = f"round {rnd + 1} {size:>7,} posts"
                for page, r in ctx.measure(server, pages, s.growth_duration, label):
                    runs.setdefault((page.name, size), []).append(r)
            finally:
                server.stop()
    ctx.results["growth"] = {
        "sizes": s.growth_sizes,
        "rows": {f"{p}|{n}": summarise(v) for (p, n), v in runs.items()},
    }


def render(results: dict[str, Any]) -> str:
    g = results["growth"]
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
