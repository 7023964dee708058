"""The start-up table: seconds from launching gunicorn to its first 200 on ``/``, for every
configuration of the main section (which records them as it starts its servers)."""

from __future__ import annotations

from typing import Any

from bench.stats import med, table


def render(results: dict[str, Any]) -> str:
    rows = []
    for config, xs in results["main"]["startup"].items():
        if xs:
            rows.append([config, f"{med(xs):.2f}", f"{min(xs):.2f}–{max(xs):.2f}", str(len(xs))])
    return table(["config", "launch to first 200, s (median)", "range", "launches"], rows)
