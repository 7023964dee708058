"""SQLite's backup and restore, through its online backup API.

A backup copies the database as of one moment while the site writes, checks the copy and
compresses it; a restore unpacks no further than the disk allows, checks, then copies the
backup in as one transaction.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import click

from flaskr.backup.files import (
    MB,
    UNVERSIONED,
    Progress,
    Summary,
    backup_name,
    check_revision,
    new_private_file,
    publish,
)
from flaskr.db import create_private_file, db

#: What a SQLite database file starts with.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Free space a restore leaves on the database's file system while it unpacks a backup.
RESTORE_RESERVE = 64 * MB
#: The most a compressed SQLite backup may unpack to, unless --max-unpacked-mb says more.
MAX_UNPACKED_MB = 10 * 1024
#: Pages copied per step of SQLite's backup: between steps the progress line moves.
STEP_PAGES = 4096


def sqlite_facts(path: Path) -> tuple[str, int, int]:
    """Integrity-check an SQLite file and read its revision and counts."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdict = connection.execute("PRAGMA integrity_check").fetchone()[0]
            if verdict != "ok":
                raise click.ClickException(f"{path} fails SQLite's integrity check: {verdict}")
            tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
            if not {"user", "post"} <= tables:
                raise click.ClickException(f"{path} holds no flaskr database.")
            revision = UNVERSIONED
            if "alembic_version" in tables:
                revision = connection.execute("SELECT version_num FROM alembic_version").fetchone()[
                    0
                ]
            posts = connection.execute("SELECT count(*) FROM post").fetchone()[0]
            users = connection.execute('SELECT count(*) FROM "user"').fetchone()[0]
        finally:
            connection.close()
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"{path} is not a readable SQLite database: {e}") from e
    return revision, posts, users


# --- backup ------------------------------------------------------------------------------


def sqlite_snapshot(source: Path, target: Path, progress: Progress) -> None:
    """Copy the database as of one moment with SQLite's online backup API.

    A read transaction held on the source pins that moment: in WAL mode writers go on
    meanwhile, and the copy never restarts because of them.
    """
    src = sqlite3.connect(source, isolation_level=None)
    dst = sqlite3.connect(target)
    try:
        src.execute("PRAGMA busy_timeout=15000")
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        src.backup(
            dst, pages=STEP_PAGES, progress=lambda _s, rest, total: progress(total - rest, total)
        )
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
    finally:
        dst.close()
        src.close()


def backup_sqlite(folder: Path, label: str | None, progress: Progress) -> Summary:
    started = time.monotonic()
    source = Path(db.engine.url.database or "")
    if not source.is_file():
        raise click.ClickException(f"There is no database at {source} to back up.")
    copy = folder / f".{os.getpid()}-copy.sqlite.partial"
    try:
        os.close(new_private_file(copy))
        sqlite_snapshot(source, copy, progress)
        revision, posts, users = sqlite_facts(copy)
        final = folder / backup_name("sqlite", revision, label)
        partial = folder / f".{final.name}.partial"
        with (
            open(copy, "rb") as raw,
            os.fdopen(new_private_file(partial), "wb") as out,
            gzip.GzipFile("flaskr.sqlite", "wb", compresslevel=6, fileobj=out, mtime=0) as gz,
        ):
            shutil.copyfileobj(raw, gz, MB)
        publish(partial, final)
    finally:
        copy.unlink(missing_ok=True)
    return Summary(
        str(final), final.stat().st_size, posts, users, revision, time.monotonic() - started
    )


def progress_line(enabled: bool) -> Progress:
    """Report on stderr every tenth of a copy that takes more than one step."""
    shown: set[int] = set()

    def report(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if enabled and total > STEP_PAGES and tenth not in shown:
            shown.add(tenth)
            click.echo(f"Backing up: {tenth * 10}% of {total} pages", err=True)

    return report


# --- restore -----------------------------------------------------------------------------


def unpack_capped(
    gz: gzip.GzipFile, out: IO[bytes], path: Path, max_bytes: int, folder: Path
) -> None:
    """Unpack a compressed backup that starts as a SQLite database, and only so far.

    It stops at ``max_bytes`` or the folder's free space less RESTORE_RESERVE, whichever
    comes first: a few MB of zeros would otherwise unpack to gigabytes before any check.
    """
    head = gz.read(len(SQLITE_HEADER))
    if head != SQLITE_HEADER:
        raise click.ClickException(f"{path} does not hold a SQLite database (its header is not).")
    free = shutil.disk_usage(folder).free - RESTORE_RESERVE
    limit = min(max_bytes, free)
    out.write(head)
    written = len(head)
    while chunk := gz.read(MB):
        written += len(chunk)
        if written > limit:
            why = (
                f"the {max_bytes // MB} MB that --max-unpacked-mb allows"
                if limit == max_bytes
                else f"the free space in {folder} ({max(free, 0) // MB} MB, keeping "
                f"{RESTORE_RESERVE // MB} MB free)"
            )
            raise click.ClickException(
                f"{path} unpacks to more than {why}: refused, nothing changed. A database that "
                "large needs --max-unpacked-mb raised, or more free space."
            )
        out.write(chunk)


def restore_sqlite(
    path: Path, keep_aside: Callable[[], Summary | None], max_bytes: int = MAX_UNPACKED_MB * MB
) -> None:
    """Put an SQLite backup in place of the live database, keeping the current one aside.

    The backup is unpacked and checked next to the live file, then copied in with the backup
    API: one transaction, so a crash leaves the old or the new.
    """
    live = Path(db.engine.url.database or "")
    unpacked = live.with_name(f".{live.name}.restore.partial")
    try:
        unpacked.unlink(missing_ok=True)  # left by a killed restore
        with gzip.open(path, "rb") as gz, os.fdopen(new_private_file(unpacked), "wb") as out:
            unpack_capped(gz, out, path, max_bytes, unpacked.parent)
    except (OSError, EOFError) as e:
        unpacked.unlink(missing_ok=True)
        raise click.ClickException(f"{path} is not a flaskr SQLite backup: {e}") from e
    except click.ClickException:
        unpacked.unlink(missing_ok=True)
        raise
    try:
        revision, _posts, _users = sqlite_facts(unpacked)
        check_revision(revision)
        # Still to be written: the live database kept aside (a copy, then its gzip) and the
        # backup copied in (through the write-ahead log: its size again).
        size = unpacked.stat().st_size
        needed = size + 2 * (live.stat().st_size if live.exists() else 0) + RESTORE_RESERVE
        free = shutil.disk_usage(live.parent).free
        if free < needed:
            raise click.ClickException(
                f"Restoring {path} needs about {needed // MB} MB free in {live.parent} (a copy of "
                f"the live database kept aside, and the backup copied in); {free // MB} MB are. "
                "Nothing was changed."
            )
        keep_aside()
        db.engine.dispose()
        create_private_file(live)  # a new database is 0600, an existing one keeps its mode
        src = sqlite3.connect(unpacked)
        dst = sqlite3.connect(live)
        try:
            dst.execute("PRAGMA busy_timeout=15000")
            src.backup(dst)
        except sqlite3.Error as e:
            raise click.ClickException(
                f"Copying {path} in failed ({e}): the live database is as it was (the copy is one "
                "transaction)."
            ) from e
        finally:
            dst.close()
            src.close()
    finally:
        unpacked.unlink(missing_ok=True)
