"""The main section: flaskr's pages and forms beside a bare WSGI callable and a bare Flask
hello, interleaved in rounds on the same gunicorn flags, and flaskr's ratio to each.

Flask hello runs twice: under flaskr's gunicorn.conf.py (its JSON access log line per request
included), as flaskr is served, and under gunicorn's defaults (no access log), the cheapest
reading. Every flaskr row is given against both, so either reading of "× Flask hello" can be
quoted. The launch times of this section fill the start-up table (startup.py).
"""

from __future__ import annotations

import re
from typing import Any

from bench.pages import Page, form_pages, read_pages
from bench.sections.context import Context
from bench.servers import Server, run_env
from bench.settings import log
from bench.stats import med, ratio, spread, summarise, table

BARE = "bare WSGI"
HELLO = "Flask hello"
#: Flask hello under gunicorn's defaults rather than flaskr's gunicorn.conf.py (no access log).
NO_CONF = "Flask hello, no conf"
CONFIGS = [BARE, HELLO, NO_CONF, "flaskr"]
HELLO_PAGE = "Hello, World!"


def reference(ctx: Context, config: str) -> Server:
    """The bare app ``config`` names, under flaskr's gunicorn.conf.py or gunicorn's defaults."""
    app = "bare_wsgi:app" if config == BARE else "hello_flask:app"
    extra: list[str] = []
    if config == NO_CONF:
        defaults = ctx.out / "gunicorn-defaults.conf.py"
        defaults.write_text("# gunicorn's defaults: no access log, nothing else\n")
        extra = ["--config", str(defaults)]
    return Server(re.sub(r"\W+", "-", config), app, run_env(), ctx.out, extra)


def run(ctx: Context) -> None:
    s = ctx.settings
    log(f"\n== main: {s.rounds} interleaved round(s), {s.duration:g} s per page")
    needle = ctx.dbs[s.posts]["needle_id"]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    startup: dict[str, list[float]] = {c: [] for c in CONFIGS}
    rss: list[dict[str, Any]] = []
    floor: dict[str, list[float]] = {}
    for rnd in range(s.rounds):
        turn = rnd % len(CONFIGS)
        for config in CONFIGS[turn:] + CONFIGS[:turn]:
            is_flaskr = config == "flaskr"
            server = ctx.flaskr(s.posts, f"flaskr-r{rnd}") if is_flaskr else reference(ctx, config)
            ctx.commands[config] = server.command
            try:
                startup[config].append(server.start())
                pages = read_pages(needle) if is_flaskr else [Page(HELLO_PAGE, "/")]
                ctx.warm(server, pages)
                if is_flaskr:
                    pages += form_pages(server.base, needle)
                    before = server.rss()
                label = f"round {rnd + 1} {config:12}"
                for page, r in ctx.measure(server, pages, s.duration, label):
                    runs.setdefault((config, page.name), []).append(r)
                if is_flaskr:
                    rss.append({"warm": before, "after": server.rss()})
                else:  # the floor: a worker of the same gunicorn and Python, nearly no app
                    floor.setdefault(config, []).extend(server.rss()["workers"].values())
            finally:
                server.stop()
    ctx.results["main"] = {
        "rows": {f"{c}|{p}": summarise(v) for (c, p), v in runs.items()},
        "startup": startup,
        "rss": rss,
        "floor_rss": {c: med(v) for c, v in floor.items()},
    }


def times(v: dict[str, Any], reference: dict[str, Any] | None) -> str:
    """``v``'s req/s as a multiple of ``reference``'s, or a dash where there is none."""
    return f"{ratio(v['rps'], reference['rps']):.2f}" if reference else "–"


def render(results: dict[str, Any]) -> str:
    rows_in = results["main"]["rows"]
    hello = rows_in.get(f"{HELLO}|{HELLO_PAGE}")
    hello_no_conf = rows_in.get(f"{NO_CONF}|{HELLO_PAGE}")
    bare = rows_in.get(f"{BARE}|{HELLO_PAGE}")
    rows = []
    for key, v in rows_in.items():
        config, page = key.split("|")
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
                times(v, hello if config == "flaskr" else None),
                times(v, hello_no_conf if config in ("flaskr", HELLO) else None),
                times(v, bare if config != BARE else None),
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
        f"× {HELLO}",
        f"× {NO_CONF}",
        f"× {BARE}",
    ]
    return table(head, rows)
