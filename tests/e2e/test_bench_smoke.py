"""`bench/run --smoke` keeps working: tiny data, one short round of every section. Figures are
never pass or fail here (the machine may be busy); the table, its rows and zero errors are."""

from __future__ import annotations

import subprocess

import pytest

from toolkit import ROOT
from toolkit.packages import need

MAIN_ROWS = [
    ("bare WSGI", "Hello, World!"),
    ("Flask hello", "Hello, World!"),
    ("Flask hello, no conf", "Hello, World!"),
    ("flaskr", "index"),
    ("flaskr", "post page"),
    ("flaskr", "search, common word"),
    ("flaskr", "search, rare word"),
    ("flaskr", "tag page"),
    ("flaskr", "feed"),
    ("flaskr", "index, logged in (not cached)"),
    ("flaskr", "post page, logged in (not cached)"),
    ("flaskr", "login POST"),
    ("flaskr", "create POST"),
    ("flaskr", "comment POST"),
    ("flaskr", "like POST"),
]
GROWTH_ROWS = ["index", "search, common word", "search, rare word", "tag page"]


def rows(output: str, title: str) -> list[dict[str, str]]:
    """The Markdown table under the heading ``## title``, as dicts keyed by its header."""
    section = output.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def run(*command: str) -> str:
    """Run a bench command from the checkout; its standard output, once it exited 0."""
    done = subprocess.run(
        list(command), cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


IN_PROCESS = (str(ROOT / ".venv" / "bin" / "python"), "-m", "bench.in_process")


def test_bench_smoke_prints_every_row_without_errors() -> None:
    need("wrk")
    out = run(str(ROOT / "bench" / "run"), "--smoke")

    main = rows(out, "Pages and forms against bare apps")
    assert [(r["config"], r["page"]) for r in main] == MAIN_ROWS
    for r in main:
        assert int(r["errors"]) == 0, r
        float(r["req/s"].replace(",", ""))  # a number, whatever its value
    for r in main[3:]:
        assert r["× Flask hello"] != "–" and r["× bare WSGI"] != "–", r
        assert r["× Flask hello, no conf"] != "–", r
    # What the access log costs a bare hello: Flask hello against itself without the conf.
    assert main[1]["× Flask hello, no conf"] != "–", main[1]
    # Both readings of "× Flask hello": one under flaskr's gunicorn.conf.py (no --config, as
    # flaskr runs), one under gunicorn's defaults (a --config that sets nothing).
    commands = out.split("```sh\n", 1)[1].split("```", 1)[0]
    hello = commands.split("# Flask hello\n", 1)[1].splitlines()[0]
    no_conf = commands.split("# Flask hello, no conf\n", 1)[1].splitlines()[0]
    assert "hello_flask:app" in hello and "--config" not in hello, hello
    assert "hello_flask:app" in no_conf and "--config" in no_conf, no_conf

    startup = rows(out, "Launch to first 200")
    assert [r["config"] for r in startup] == [
        "bare WSGI",
        "Flask hello",
        "Flask hello, no conf",
        "flaskr",
    ]

    growth = rows(out, "Growth with the number of posts")
    assert [r["page"] for r in growth] == GROWTH_ROWS
    assert all(int(r["errors"]) == 0 for r in growth), growth

    memory = rows(out, "Memory")
    assert [r["process"] for r in memory][:1] == ["master"] and len(memory) == 4, memory

    workers = rows(out, "Worker classes and counts")
    assert {r["gunicorn"] for r in workers} == {"sync × 3", "gthread × 3 (4 threads)"}
    assert all(int(r["errors"]) == 0 for r in workers), workers

    assert "wrote bench/RESULTS.md" not in out


def test_profile_prints_a_figure_per_page() -> None:
    out = run(*IN_PROCESS, "--posts", "10", "--requests", "50", "--rounds", "1", "--profile",
              "/", "/?q=post", "/hello")  # fmt: skip
    lines = out.splitlines()
    for path in ("bare Flask hello", "/", "/?q=post", "/hello"):
        assert any(line.startswith(f"{path} ") and "µs/request" in line for line in lines), path
    assert "page_cache.py" in out  # the profile of "/" shows where a cached page comes from


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (["--imports"], ["flask ", "alembic + flask_migrate ", "Pillow "]),
        (["--posts", "10", "--requests", "20", "--search-index"], ["search index, 'post', "]),
    ],
)
def test_in_process_measures_imports_and_the_search_index(
    args: list[str], lines: list[str]
) -> None:
    """The figures docs/performance.md quotes for memory and the search index come from here."""
    out = run(*IN_PROCESS, *args)
    for start in lines:
        found = [line for line in out.splitlines() if line.startswith(start)]
        assert found and all(("MB" in f or "µs/query" in f) for f in found), (start, out)
