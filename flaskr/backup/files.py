"""What a backup is called, where it goes, and how its files are written.

Names sort by time and carry the schema revision; a folder takes one backup at a time; every
file is private (0600) and appears under its final name only when complete.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask

from flaskr.db import known_revisions, open_lock_file

#: ``flaskr-<UTC time>-<schema revision>[-<label>].<format>``: sorting by name sorts by time.
NAME = re.compile(
    r"^flaskr-(?P<time>\d{8}T\d{6}\.\d{3}Z)-(?P<revision>\w+?)(?:-(?P<label>pre-restore))?"
    r"\.(?P<format>sqlite\.gz|pgdump)$"
)
EXTENSION = {"sqlite": "sqlite.gz", "postgresql": "pgdump"}
#: The revision recorded for a database made by the Flask tutorial's schema.sql.
UNVERSIONED = "unversioned"
MB = 1024 * 1024

#: Told how far a copy is: (done, total).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Summary:
    """What one backup or restore holds, printed as one JSON line by ``--json``."""

    path: str
    size: int
    posts: int
    users: int
    revision: str
    seconds: float


def check_revision(revision: str) -> None:
    """Refuse a backup made by newer code: its schema would be half understood."""
    known = known_revisions()
    if revision != UNVERSIONED and revision not in known:
        raise click.ClickException(
            f"The backup is at schema revision {revision}, which this version of flaskr does "
            f"not know (its newest is {known[-1]}): it was made by a newer flaskr. Install "
            "that version (or newer) to restore it; nothing was changed."
        )


# --- where backups go and what they are called -------------------------------------------


def backup_folder(app: Flask) -> Path:
    """FLASKR_BACKUP_FOLDER, else ``backups`` in the instance folder."""
    return Path(app.config["BACKUP_FOLDER"] or os.path.join(app.instance_path, "backups"))


def backup_name(dialect: str, revision: str, label: str | None = None) -> str:
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S") + f".{now.microsecond // 1000:03d}Z"
    return f"flaskr-{stamp}-{revision}{'-' + label if label else ''}.{EXTENSION[dialect]}"


def backups_in(folder: Path) -> list[Path]:
    """The scheduled backups in ``folder``, oldest first (pre-restore copies are not counted)."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if (m := NAME.match(p.name)) and not m["label"]]
    return sorted(found, key=lambda p: p.name)


def prune(folder: Path, keep: int) -> list[Path]:
    """Remove all but the newest ``keep`` backups; return the removed ones."""
    old = backups_in(folder)[:-keep] if keep > 0 else []
    for path in old:
        path.unlink()
    return old


# --- the folder's lock and writing files -------------------------------------------------


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """One backup at a time per folder; leftovers of a killed one are removed under the lock.

    The folder must be writable by its owner only (made 0700): anyone else who could write
    there could plant links where the backup writes.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = folder.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise click.ClickException(
            f"{folder} is writable by others (mode {stat.S_IMODE(mode):04o}): backups are "
            f"written only where the service alone can write. `chmod 0700 {folder}`."
        )
    with open_lock_file(folder / ".lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in folder.glob(".*.partial*"):
            stale.unlink()
        yield


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_private_file(path: Path) -> int:
    """Create ``path`` for writing, readable by its owner only (0600, whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def publish(partial: Path, final: Path) -> None:
    """fsync, then rename into place: the final name only ever holds a complete file."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, final)
    _fsync_dir(final.parent)
