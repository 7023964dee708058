"""Draw bench/growth.png from the growth figures bench/report.py saved (JSON).

Run with bench/.venv's Python (matplotlib is not one of the app's dependencies):
    bench/.venv/bin/python -m bench.plot bench/out/<run>/growth.json bench/growth.png"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source: str, target: str) -> None:
    with open(source) as f:
        data = json.load(f)
    sizes = data["sizes"]
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for page, series in data["pages"].items():
        ax.plot(sizes, series, marker="o", label=page)
    for name, value in data.get("references", {}).items():
        ax.axhline(value, linestyle="--", linewidth=0.8, color="grey")
        ax.annotate(name, (sizes[0], value), textcoords="offset points", xytext=(2, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([f"{s:,}" for s in sizes])
    ax.set_xlabel("posts in the database")
    ax.set_ylabel("requests per second (median)")
    ax.set_ylim(bottom=0)
    ax.set_title(data.get("title", "flaskr: throughput against the number of posts"), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(target)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
