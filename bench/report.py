"""The report of a run, as Markdown (printed at the end, written as bench/RESULTS.md): the
machine and its load, the method, every command, then each section's table; and the growth
plot (bench/growth.png), drawn by bench/plot.py with a matplotlib kept out of the app's venv.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.load import WRK_COMMANDS
from bench.sections import growth, main, memory, startup, workers
from bench.sections.context import Context
from bench.settings import BENCH, ROOT, log
from bench.stats import med

PACKAGES = ("flask", "werkzeug", "gunicorn", "sqlalchemy")
MATPLOTLIB = "matplotlib==3.11.2"


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk_v.stdout or wrk_v.stderr).split("\n", 1)[0].split(" [")[0]
    debian = (
        Path("/etc/debian_version").read_text().strip()
        if Path("/etc/debian_version").exists()
        else ""
    )
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}"
        + (f", Debian {debian}" if debian else ""),
        # bench/run runs with the project's .venv: its packages are gunicorn's.
        "python": platform.python_version(),
        **{name: importlib.metadata.version(name) for name in PACKAGES},
        "wrk": wrk_version,
    }


def load_average() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f}, {b:.2f}, {c:.2f}"


def method(ctx: Context) -> str:
    s = ctx.settings
    return (
        f"- {s.rounds} round(s); each round runs every configuration in turn (order rotated "
        "each round), each on a freshly started gunicorn with a fresh copy of the database; "
        "figures are medians over rounds; ratios are the median of the per-round ratios; "
        "spread is half the range over rounds, as a share of the median.\n"
        f"- wrk on the same cores: {s.duration:g} s per page (growth and workers: "
        f"{s.growth_duration:g} s), after a warm-up of {s.warmup} requests per page. CPU µs/req is "
        "the user+system time of gunicorn's master and workers divided by the requests.\n"
        f"- Data: `flask --app flaskr seed --posts N` (demo posts, 5 tags), plus one post "
        "made by bench/extras.py through the models, 'Needle in a haystack' with a tag, 3 "
        f"comments, a like and an image (the post page and the rare search word). The main "
        f"database has {s.posts:,} posts.\n"
        "- Search: 'post' is in every title, 'needle' in one only.\n"
        "- Pages for visitors come from flaskr's page cache (flaskr/page_cache.py: one "
        "single-row read a request) except the 'logged in' rows, which replay a logged-in "
        "session and are rendered every time; the growth section turns the cache off "
        "(FLASKR_PAGE_CACHE_SIZE=0) so that it measures the queries.\n"
        "- Two readings of '× Flask hello': 'Flask hello' is served with flaskr's "
        "gunicorn.conf.py, as flaskr is (its JSON access log line per request included); "
        "'Flask hello, no conf' with gunicorn's defaults (no access log), the cheapest "
        "reference. Both share flaskr's other flags.\n"
        "- The login POST replays one anonymous session cookie and its CSRF token; the create, "
        "comment and like POSTs replay a logged-in session (each like POST likes the post or "
        "takes the like back); all answer 302.\n"
    )


def report(ctx: Context, info: dict[str, Any]) -> str:
    """The whole report, as Markdown: printed at the end, and written as bench/RESULTS.md."""
    r = ctx.results
    m = info["machine"]
    out: list[str] = []
    add = out.append
    add("# flaskr benchmark results\n")
    add(
        f"Written by `{info['command']}` on {info['date']} in {info['elapsed']:.0f} s. "
        "Absolute figures hold only on this kind of machine; compare the ratios, measured in "
        "the same run. See docs/performance.md for what they mean.\n"
    )
    add("## Machine\n")
    add(
        f"- {m['cores']} cores ({m['cpu']}), {m['memory']}, {m['os']}\n"
        f"- Python {m['python']}, Flask {m['flask']}, Werkzeug {m['werkzeug']}, "
        f"gunicorn {m['gunicorn']}, SQLAlchemy {m['sqlalchemy']}, {m['wrk']}; SQLite\n"
        f"- load average (1, 5, 15 min) before: {info['load_before']}; "
        f"after: {info['load_after']}\n"
    )
    # Only the load before the run says whether other jobs ran: the run itself keeps both
    # cores busy, so the load after it is always high.
    before = float(info["load_before"].split(",")[0])
    if before > 0.5 * (os.cpu_count() or 1):
        add(
            f"**The machine was busy when this run started** (load average {before:.1f} on "
            f"{m['cores']} cores): absolute figures may be low and noisy; the ratios within a "
            "round and the CPU µs per request are the steadier figures.\n"
        )
    add("## Method\n")
    add(method(ctx))
    if ctx.settings.app_dir is not None:
        add(f"**flaskr served from {ctx.settings.app_dir}**, not this checkout's flaskr/.\n")
    add("Commands (from `flaskr/`, so flaskr/gunicorn.conf.py applies to every config):\n")
    add("```sh")
    for name, cmd in ctx.commands.items():
        add(f"# {name}")
        add(cmd)
    add("# wrk (the Lua scripts read the request from BENCH_* variables)")
    for cmd in WRK_COMMANDS.values():
        add(cmd)
    add("```\n")
    if "main" in r:
        add("## Pages and forms against bare apps\n")
        add(main.render(r) + "\n")
        add("## Launch to first 200\n")
        add(startup.render(r) + "\n")
    if "growth" in r:
        add("## Growth with the number of posts\n")
        add(growth.render(r) + "\n")
        if info.get("plot"):
            add("![throughput against the number of posts](growth.png)\n")
    if "memory" in r:
        add("## Memory\n")
        soak = r["memory"]["soak"]
        add(
            f"A mixed read load (index pages, random posts, searches, tag pages, the feed) of "
            f"{soak['requests']:,} requests at {soak['rps']:,.0f} req/s, errors "
            f"{soak['errors']}.\n"
        )
        add(memory.render(r) + "\n")
        floor = r.get("main", {}).get("floor_rss", {})
        if floor:
            figures = ", ".join(f"{c} {mb:.1f} MB" for c, mb in floor.items())
            add(
                f"For scale, a worker's RSS after its load in the main section: {figures} "
                "(same gunicorn, same Python, nearly no app).\n"
            )
    if "workers" in r:
        add("## Worker classes and counts\n")
        add(workers.render(r) + "\n")
        add(f"Best sync worker count by index req/s in this run: **{workers.best(r)}**.\n")
    return "\n".join(out)


def draw(results: dict[str, Any], out: Path) -> bool:
    """bench/growth.png from the growth section, with the bare Flask hello as a reference."""
    g = results.get("growth")
    if not g or len(g["sizes"]) < 2:
        return False
    data: dict[str, Any] = {
        "sizes": g["sizes"],
        "pages": {},
        "references": {},
        "title": "flaskr under gunicorn (sync, 3 workers): req/s against posts",
    }
    for key, v in g["rows"].items():
        page, _n = key.split("|")
        data["pages"].setdefault(page, []).append(med(v["rps"]))
    rows = results.get("main", {}).get("rows", {})
    hello = f"{main.HELLO}|{main.HELLO_PAGE}"
    if hello in rows:
        data["references"]["bare Flask hello"] = med(rows[hello]["rps"])
    path = out / "growth.json"
    path.write_text(json.dumps(data))
    py = BENCH / ".venv" / "bin" / "python"
    if (
        not py.exists()
        or subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True).returncode
    ):
        log(
            "\nThe plot needs matplotlib, which the app does not: creating bench/.venv with "
            f"{MATPLOTLIB} (once; --no-plot skips it)."
        )
        made = subprocess.run([sys.executable, "-m", "venv", str(BENCH / ".venv")], check=False)
        pip = subprocess.run([str(py), "-m", "pip", "install", "-q", MATPLOTLIB], check=False)
        if made.returncode or pip.returncode:
            log("  could not install matplotlib: no plot (the figures are in RESULTS.md)")
            return False
    done = subprocess.run(
        [str(py), "-m", "bench.plot", str(path), str(BENCH / "growth.png")], cwd=ROOT, check=False
    )
    return done.returncode == 0
