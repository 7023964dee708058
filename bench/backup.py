"""Backup and restore figures for docs/backup.md: for each size, a fresh SQLite instance seeded
with `flask seed`, then `flask backup` while writer threads commit one post at a time (as the
app does, WAL and busy_timeout included), then `flask restore` onto a fresh instance.

    .venv/bin/python -m bench.backup                  1,000 and 100,000 posts
    .venv/bin/python -m bench.backup --posts 5000     one size

Prints one Markdown row per size: backup seconds and size, restore seconds, and how long the
writers' commits took before and during the backup (the longest one, and the 99th percentile)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLASK = str(Path(sys.executable).parent / "flask")


def flask(instance: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASKR_")}
    env.update(FLASKR_INSTANCE_PATH=str(instance), FLASKR_SECRET_KEY=secrets.token_hex(32))
    done = subprocess.run(
        [FLASK, "--app", "flaskr", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"flask {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


class Writers:
    """Threads committing one small post at a time; each commit's (start, end) is kept."""

    def __init__(self, database: Path, count: int) -> None:
        self.database = database
        self.stop = threading.Event()
        self.commits: list[tuple[float, float]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(count)]

    def run(self, n: int) -> None:
        db = sqlite3.connect(self.database, isolation_level=None, timeout=15)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        i = 0
        while not self.stop.is_set():
            i += 1
            started = time.monotonic()
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "INSERT INTO post (author_id, title, body) VALUES (1, ?, 'bench')",
                (f"writer {n} post {i}",),
            )
            db.execute("COMMIT")
            with self.lock:
                self.commits.append((started, time.monotonic()))
            time.sleep(0.005)
        db.close()

    def waits(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [e - s for s, e in self.commits if e > start and s < end]


def describe(waits: list[float]) -> str:
    if not waits:
        return "none"
    p99 = statistics.quantiles(waits, n=100)[98] if len(waits) > 1 else waits[0]
    return f"{max(waits) * 1000:.0f} ms max, {p99 * 1000:.1f} ms p99 ({len(waits)} commits)"


def measure(posts: int, writers: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="flaskr-bench-backup-") as tmp:
        live, fresh = Path(tmp) / "live", Path(tmp) / "fresh"
        flask(live, "init-db")
        flask(live, "seed", "--force", "--posts", str(posts))
        load = Writers(live / "flaskr.sqlite", writers)
        for thread in load.threads:
            thread.start()
        try:
            time.sleep(2)
            started = time.monotonic()
            summary = json.loads(flask(live, "backup", "--json", "--quiet").splitlines()[-1])
            ended = time.monotonic()
            time.sleep(0.5)
        finally:
            load.stop.set()
            for thread in load.threads:
                thread.join()
        restore_started = time.monotonic()
        restored = json.loads(flask(fresh, "restore", "--json", summary["path"]).splitlines()[-1])
        return {
            "posts": posts,
            "database_bytes": (live / "flaskr.sqlite").stat().st_size,
            "backup_seconds": summary["seconds"],
            "backup_command_seconds": round(ended - started, 2),
            "backup_bytes": summary["size"],
            "restore_command_seconds": round(time.monotonic() - restore_started, 2),
            "restored_posts": restored["posts"],
            "writes_before": describe(load.waits(started - 2, started)),
            "writes_during": describe(load.waits(started, ended)),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.backup", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--posts", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    print(
        "| posts | database | backup (flask backup, whole command) | backup file | restore "
        "| writers' commits before | during the backup |\n|---|---|---|---|---|---|---|"
    )
    for posts in args.posts:
        r = measure(posts, args.writers)
        print(
            f"| {posts:,} | {r['database_bytes'] / 1e6:.1f} MB | {r['backup_seconds']:.2f} s "
            f"({r['backup_command_seconds']:.2f} s) | {r['backup_bytes'] / 1e6:.2f} MB "
            f"| {r['restore_command_seconds']:.2f} s | {r['writes_before']} "
            f"| {r['writes_during']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
