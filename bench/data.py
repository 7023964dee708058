"""The databases bench/run measures: seeded once with `flask seed` (in steps, a copy kept at
each size), plus the needle post of bench/extras.py, then copied afresh for every server so
that one round's writes never carry over to the next.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.servers import run_env
from bench.settings import ROOT, VENV_BIN, log


def command(cmd: list[str], env: dict[str, str], timeout: float) -> str:
    """Run ``cmd`` from the checkout; its output, or an error with what it printed."""
    done = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def flask_cmd(env: dict[str, str], *args: str) -> str:
    """``flask --app flaskr ARGS`` from the checkout; its output, or an error saying why."""
    return command([str(VENV_BIN / "flask"), "--app", "flaskr", *args], env, timeout=900)


def seed(env: dict[str, str], posts: int) -> None:
    if posts > 0:
        flask_cmd(env, "seed", "--force", "--password", "demo", "--posts", str(posts))


def add_needle(env: dict[str, str]) -> dict[str, int]:
    """Run ``python -m bench.extras`` on the instance ``env`` names; the needle post's id."""
    out = command([str(VENV_BIN / "python"), "-m", "bench.extras"], env, timeout=120)
    return json.loads(out.strip().splitlines()[-1])


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database (WAL included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def build_databases(out: Path, sizes: list[int]) -> dict[int, dict[str, Any]]:
    """Seed one database in steps with `flask seed` and keep a copy at each size asked for.
    Each copy also holds the needle post (added right after the first step)."""
    work = out / "seeding"
    env = run_env(work)
    flask_cmd(env, "init-db")
    made: dict[int, dict[str, Any]] = {}
    have = 0
    needle: dict[str, int] | None = None
    for size in sizes:
        started = time.monotonic()
        seed(env, size - have)
        have = size
        if needle is None:
            needle = add_needle(env)
        target = out / f"db-{size}" / "flaskr.sqlite"
        copy_database(work / "flaskr.sqlite", target)
        made[size] = {"pristine": target, "needle_id": needle["needle_id"], "posts": size + 1}
        log(f"  seeded {size:,} posts (+1 needle) in {time.monotonic() - started:.1f} s")
    shutil.rmtree(work, ignore_errors=True)
    return made


def fresh_instance(db: dict[str, Any], out: Path, name: str) -> Path:
    """A new instance folder holding a copy of the pristine database (writes don't carry over
    from one round to the next)."""
    instance = out / "instances" / name
    shutil.rmtree(instance, ignore_errors=True)
    instance.mkdir(parents=True)
    copy_database(db["pristine"], instance / "flaskr.sqlite")
    return instance
