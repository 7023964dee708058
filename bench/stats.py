"""Medians, spreads and ratios over interleaved rounds, and the Markdown tables they fill.

A ratio is the median of per-round ratios: the two configurations of a round ran minutes
apart at most, so a busy machine moves both alike.
"""

from __future__ import annotations

import statistics
from typing import Any


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float]) -> str:
    """Half the range over rounds as a share of the median, and the range itself."""
    if len(xs) < 2:
        return "–"
    m = med(xs)
    return f"±{(max(xs) - min(xs)) / 2 / m * 100:.0f} % ({min(xs):,.0f}–{max(xs):,.0f})"


def ratio(a: list[float], b: list[float]) -> float:
    """The median of the per-round ratios: each round's pair ran minutes apart at most."""
    pairs = [x / y for x, y in zip(a, b, strict=False) if y]
    return med(pairs)


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration's wrk runs over the rounds: req/s of each, medians of the rest."""
    return {
        "rps": [r["rps"] for r in runs],
        "p50": med([r["p50"] for r in runs]),
        "p99": med([r["p99"] for r in runs]),
        "errors": sum(r["errors"] for r in runs),
        "cpu_us": med([r["cpu_us"] for r in runs]),
    }
