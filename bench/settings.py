"""What a run of bench/run is asked to do (its flags, as one Settings) and where things are.

Every section reads its durations, counts and rounds from here, so ``--smoke`` and the other
flags change the whole run in one place.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
VENV_BIN = ROOT / ".venv" / "bin"
SECTIONS = ("main", "growth", "memory", "workers")


@dataclass
class Settings:
    rounds: int = 3
    duration: float = 8.0  # seconds of load per page and round, main section
    warmup: int = 100  # requests per page before measuring
    posts: int = 1_000  # posts in the main section's database
    growth_sizes: list[int] = field(default_factory=lambda: [100, 10_000, 100_000])
    growth_duration: float = 4.0  # seconds per page in the growth and workers sections
    soak_requests: int = 100_000
    soak_warmup: int = 5_000
    soak_max_seconds: float = 1800.0
    worker_counts: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    threads: int = 4
    sections: list[str] = field(default_factory=lambda: list(SECTIONS))
    write_results: bool = True
    plot: bool = True
    keep: bool = False
    smoke: bool = False
    #: Where gunicorn serves flaskr from: None for this checkout's flaskr/ (see --app-dir).
    app_dir: Path | None = None


#: ``--smoke``: every section on tiny data, about a second per configuration; writes nothing.
SMOKE = Settings(
    rounds=1,
    duration=1.0,
    warmup=20,
    posts=100,
    growth_sizes=[100],
    growth_duration=1.0,
    soak_requests=200,
    soak_warmup=50,
    worker_counts=[3],
    write_results=False,
    plot=False,
    smoke=True,
)


def counts(text: str) -> list[int]:
    """A comma-separated list of counts: "3,1" -> [3, 1]."""
    return [int(x) for x in text.split(",")]


def sizes(text: str) -> list[int]:
    """Database sizes, smallest first: "10000,100" -> [100, 10000]."""
    return sorted(counts(text))


def names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",")]


def directory(text: str) -> Path:
    return Path(text).resolve()


#: bench/run's flags, in --help's order: (flag, its name in the parsed arguments, which is the
#: Settings field it sets where there is one, its type or None for an on/off switch, help).
FLAGS: list[tuple[str, str, Callable[[str], Any] | None, str]] = [
    ("--smoke", "smoke", None, "tiny data, 1 round, ~1 s per config"),
    ("--rounds", "rounds", int, "interleaved rounds (default 3; smoke 1)"),
    ("--duration", "duration", float, "seconds per page and round (default 8)"),
    ("--posts", "posts", int, "posts in the main database (default 1000)"),
    ("--growth", "growth_sizes", sizes, "comma-separated post counts (default 100,10000,100000)"),
    ("--growth-duration", "growth_duration", float,
     "seconds per growth and workers page (default 4)"),
    ("--soak", "soak_requests", int, "requests in the memory run (default 100000)"),
    ("--soak-max-seconds", "soak_max_seconds", float, "time cap of the memory run (1800)"),
    ("--warmup", "warmup", int, "warm-up requests per page (default 100)"),
    ("--workers", "worker_counts", counts, "sync worker counts to try (default 1,2,3,4,5)"),
    ("--only", "sections", names, "sections to run: main,growth,memory,workers"),
    ("--no-write", "no_write", None, "do not write bench/RESULTS.md"),
    ("--no-plot", "no_plot", None, "do not draw bench/growth.png"),
    ("--app-dir", "app_dir", directory, "serve flaskr from another copy's flaskr/ folder (A/B)"),
    ("--keep", "keep", None, "keep the databases in bench/out/"),
]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark flaskr under gunicorn (the README's flags) with wrk.",
    )
    for flag, dest, kind, text in FLAGS:
        if kind is None:
            p.add_argument(flag, dest=dest, action="store_true", help=text)
        else:
            metavar = flag[2:].upper().replace("-", "_")
            p.add_argument(flag, dest=dest, type=kind, metavar=metavar, help=text)
    return p


def parse_args(argv: list[str]) -> Settings:
    """The Settings bench/run's flags ask for: the defaults or --smoke's, then each flag."""
    p = parser()
    args = p.parse_args(argv)
    s = replace(SMOKE) if args.smoke else Settings()
    for name, value in vars(args).items():
        if value and hasattr(s, name):
            setattr(s, name, value)
    unknown = set(s.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    if args.no_write:
        s.write_results = False
    if args.no_plot or not s.write_results:
        s.plot = False
    return s


def log(msg: str) -> None:
    """Progress, printed at once (bench/run's output is read while it runs)."""
    print(msg, flush=True)
