"""Shared by the container and host suites: where isolation reports are saved, and how a
gunicorn process of flaskr is recognised in one."""

from __future__ import annotations

import json
import os
from pathlib import Path


def isolation_out(tmp_path: Path) -> Path:
    """Where the reports go: FLASKR_ISOLATION_OUT (scripts/isolation-report --from-suites sets
    it to docs/isolation), else this test's temporary folder."""
    out = Path(os.environ.get("FLASKR_ISOLATION_OUT") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_report(out: Path, name: str, report: dict[str, object]) -> None:
    (out / name).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"saved {out / name}")


def is_gunicorn(process: dict[str, object]) -> bool:
    command = str(process.get("command") or "")
    return "gunicorn" in command and command.endswith("hello:app")
