"""Backups: ``flask backup`` and ``flask restore``, for SQLite and PostgreSQL.

``flask backup`` writes a consistent, compressed copy of the database while the site serves
and writes; ``flask restore`` checks one and puts it back, keeping the current database aside
first. SQLite through its online backup API, PostgreSQL through pg_dump/pg_restore.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import click
from flask import Flask, current_app
from sqlalchemy import func, select, update
from sqlalchemy.engine import URL

from flaskr.bodies import render_all_stale
from flaskr.db import (
    MIGRATIONS,
    create_private_file,
    db,
    open_lock_file,
    schema_revision,
    upgrade_schema,
)
from flaskr.models import ContentVersion, Post, User
from flaskr.serving.lock import serving_reason

#: ``flaskr-<UTC time>-<schema revision>[-<label>].<format>``: sorting by name sorts by time.
NAME = re.compile(
    r"^flaskr-(?P<time>\d{8}T\d{6}\.\d{3}Z)-(?P<revision>\w+?)(?:-(?P<label>pre-restore))?"
    r"\.(?P<format>sqlite\.gz|pgdump)$"
)
EXTENSION = {"sqlite": "sqlite.gz", "postgresql": "pgdump"}
#: The revision recorded for a database made by the Flask tutorial's schema.sql.
UNVERSIONED = "unversioned"
MB = 1024 * 1024
#: What a SQLite database file starts with.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Free space a restore leaves on the database's file system while it unpacks a backup.
RESTORE_RESERVE = 64 * MB
#: The most a compressed SQLite backup may unpack to, unless --max-unpacked-mb says more.
MAX_UNPACKED_MB = 10 * 1024
#: Pages copied per step of SQLite's backup: between steps the progress line moves.
STEP_PAGES = 4096
PG_CLIENT_MISSING = (
    "{tool} was not found: install the PostgreSQL client tools, Debian's package "
    "postgresql-client (sudo apt-get install postgresql-client), in a version at least the "
    "server's."
)


@dataclass(frozen=True)
class Summary:
    """What one backup or restore holds, printed as one JSON line by ``--json``."""

    path: str
    size: int
    posts: int
    users: int
    revision: str
    seconds: float


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


def _new_private_file(path: Path) -> int:
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


# --- counting and checking ---------------------------------------------------------------


def counts() -> tuple[int, int]:
    posts = db.session.scalar(select(func.count()).select_from(Post)) or 0
    users = db.session.scalar(select(func.count()).select_from(User)) or 0
    return posts, users


def known_revisions() -> list[str]:
    """Every revision this code knows, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(MIGRATIONS)
    return [r.revision for r in reversed(list(scripts.walk_revisions()))]


def check_revision(revision: str) -> None:
    """Refuse a backup made by newer code: its schema would be half understood."""
    known = known_revisions()
    if revision != UNVERSIONED and revision not in known:
        raise click.ClickException(
            f"The backup is at schema revision {revision}, which this version of flaskr does "
            f"not know (its newest is {known[-1]}): it was made by a newer flaskr. Install "
            "that version (or newer) to restore it; nothing was changed."
        )


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


# --- SQLite ------------------------------------------------------------------------------


Progress = Callable[[int, int], None]


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
        os.close(_new_private_file(copy))
        sqlite_snapshot(source, copy, progress)
        revision, posts, users = sqlite_facts(copy)
        final = folder / backup_name("sqlite", revision, label)
        partial = folder / f".{final.name}.partial"
        with (
            open(copy, "rb") as raw,
            os.fdopen(_new_private_file(partial), "wb") as out,
            gzip.GzipFile("flaskr.sqlite", "wb", compresslevel=6, fileobj=out, mtime=0) as gz,
        ):
            shutil.copyfileobj(raw, gz, 1024 * 1024)
        publish(partial, final)
    finally:
        copy.unlink(missing_ok=True)
    return Summary(
        str(final), final.stat().st_size, posts, users, revision, time.monotonic() - started
    )


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
        with gzip.open(path, "rb") as gz, os.fdopen(_new_private_file(unpacked), "wb") as out:
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


# --- PostgreSQL --------------------------------------------------------------------------


def pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise click.ClickException(PG_CLIENT_MISSING.format(tool=name))
    return found


def libpq_target(url: URL) -> tuple[str, dict[str, str]]:
    """Give the libpq URL the client tools take, and an environment carrying the password.

    The password stays out of the command line, which every local user can read in /proc.
    """
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url._replace(drivername="postgresql", password=None)  # set() keeps a None field
    return plain.render_as_string(hide_password=False), env


def run_pg(args: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise click.ClickException(f"{what} failed: {done.stderr.strip()}")
    return done.stdout


def backup_postgresql(folder: Path, label: str | None, progress: Progress) -> Summary:
    """Run pg_dump in the custom format (compressed).

    It reads the very snapshot in which the revision and counts were read.
    """
    started = time.monotonic()
    pg_dump = pg_tool("pg_dump")
    target, env = libpq_target(db.engine.url)
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            snapshot = connection.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            revision = (
                connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
                or UNVERSIONED
            )
            posts = connection.scalar(select(func.count()).select_from(Post)) or 0
            users = connection.scalar(select(func.count()).select_from(User)) or 0
            final = folder / backup_name("postgresql", revision, label)
            partial = folder / f".{final.name}.partial"
            os.close(_new_private_file(partial))  # pg_dump keeps the mode: 0600
            progress(0, 1)
            try:
                run_pg(
                    [pg_dump, "--format=custom", f"--snapshot={snapshot}", "--no-owner",
                     f"--file={partial}", f"--dbname={target}"],
                    env,
                    "pg_dump",
                )  # fmt: skip
                progress(1, 1)
                run_pg([pg_tool("pg_restore"), "--list", str(partial)], env, "Reading the dump")
                publish(partial, final)
            finally:
                partial.unlink(missing_ok=True)
    return Summary(
        str(final), final.stat().st_size, posts, users, revision, time.monotonic() - started
    )


def dump_revision(path: Path, env: dict[str, str]) -> str:
    """The schema revision recorded in a custom-format dump, read without restoring it."""
    out = run_pg(
        [pg_tool("pg_restore"), "--data-only", "--table=alembic_version", "--file=-", str(path)],
        env,
        f"Reading {path}",
    )
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line and i + 1 < len(lines):
            value = lines[i + 1].strip()
            return UNVERSIONED if value == "\\." else value
    return UNVERSIONED


def restore_postgresql(path: Path, keep_aside: Callable[[], Summary | None]) -> None:
    """Replace the database with the dump whole, or leave it as it was.

    The whole dump is read first (``pg_restore --file=/dev/null`` decompresses every block and
    writes nothing), so a damaged one is refused before anything is touched. Then flaskr's
    tables are dropped and the dump restored in one transaction; should that still fail, the
    copy kept aside a moment before is put back the same way, and the error says so.
    """
    from flaskr.db import drop_all

    target, env = libpq_target(db.engine.url)
    pg_restore = pg_tool("pg_restore")
    run_pg([pg_restore, "--list", str(path)], env, f"Reading {path}")
    check_revision(dump_revision(path, env))
    run_pg(
        [pg_restore, "--file=/dev/null", str(path)],
        env,
        f"Reading all of {path} (nothing was changed)",
    )

    def load(dump: Path) -> None:
        drop_all()
        db.engine.dispose()
        run_pg(
            [pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges",
             "--single-transaction", "--exit-on-error", f"--dbname={target}", str(dump)],
            env,
            "pg_restore",
        )  # fmt: skip

    aside = keep_aside()
    try:
        load(path)
    except click.ClickException as failed:
        if aside is None:
            raise
        try:
            load(Path(aside.path))
        except click.ClickException as also:
            raise click.ClickException(
                f"{failed.message}\nPutting the previous database back failed too: "
                f"{also.message}\nIt is kept in {aside.path}: restore that."
            ) from also
        raise click.ClickException(
            f"{failed.message}\nThe previous database was put back from {aside.path}: "
            "nothing changed."
        ) from failed


# --- the commands ------------------------------------------------------------------------


def make_backup(
    folder: Path, label: str | None = None, progress: Progress | None = None
) -> Summary:
    """Write one backup of the app's database into ``folder``."""
    with folder_lock(folder):
        backup = backup_sqlite if db.engine.dialect.name == "sqlite" else backup_postgresql
        return backup(folder, label, progress or (lambda _done, _total: None))


def progress_line(enabled: bool) -> Progress:
    """Report on stderr every tenth of a copy that takes more than one step."""
    shown: set[int] = set()

    def report(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if enabled and total > STEP_PAGES and tenth not in shown:
            shown.add(tenth)
            click.echo(f"Backing up: {tenth * 10}% of {total} pages", err=True)

    return report


def plural(count: int, noun: str) -> str:
    """``1 post``, ``2 posts``, ``0 posts``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def emit(summary: Summary, as_json: bool, verb: str, note: str = "", **extra: object) -> None:
    """One sentence, or with --json one JSON object and nothing else.

    ``note`` follows the sentence's revision; ``extra`` is added to the JSON object.
    """
    if as_json:
        fields = {**asdict(summary), "seconds": round(summary.seconds, 3), **extra}
        click.echo(json.dumps(fields))
    else:
        click.echo(
            f"{verb} {summary.path}: {summary.size} bytes, {plural(summary.posts, 'post')}, "
            f"{plural(summary.users, 'user')}, revision {summary.revision}{note}, "
            f"{summary.seconds:.2f} s."
        )


def _above_info(record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO


@contextmanager
def quiet_migrations() -> Iterator[None]:
    """Keep Alembic's INFO lines out of restore's output.

    They (``Context impl SQLiteImpl.``, JSON in a deployment's logging) would go between
    restore's own sentences, which say what the migration did. A filter on the logger that
    makes them: the migrations' env.py sets the levels again on every run."""
    migration = logging.getLogger("alembic.runtime.migration")
    migration.addFilter(_above_info)
    try:
        yield
    finally:
        migration.removeFilter(_above_info)


def restore(
    path: Path,
    force: bool,
    as_json: bool,
    shown: str,
    max_unpacked_mb: int,
    no_migrate: bool = False,
) -> None:
    started = time.monotonic()
    dialect = db.engine.dialect.name
    if not path.name.endswith(EXTENSION[dialect]):
        raise click.ClickException(
            f"{shown} is not a {dialect} backup (those end in .{EXTENSION[dialect]})."
        )
    reason = serving_reason(current_app)
    if reason and not force:
        raise click.ClickException(
            f"Refusing to restore while the app serves: {reason}. Stop it first (systemctl "
            "stop flaskr, scripts/container stop), or pass --force."
        )
    aside: list[Summary] = []
    version = content_version_now()

    def keep_aside() -> Summary | None:
        if schema_revision() is None and not has_tables():
            return None
        aside.append(make_backup(backup_folder(current_app), label="pre-restore"))
        return aside[-1]

    if dialect == "sqlite":
        restore_sqlite(path, keep_aside, max_unpacked_mb * MB)
    else:
        restore_postgresql(path, keep_aside)
    if aside and not as_json:
        click.echo(f"Kept the previous database as {aside[-1].path}.")
    restored = schema_revision() or UNVERSIONED
    if no_migrate:
        # The backup's schema stays for the release that made it (a rollback): nothing that
        # needs this code's newest schema runs (the re-rendering); its init-db migrates it.
        messages = [
            f"The backup is at revision {restored}; not migrated (--no-migrate): the release "
            "that knows it serves it as it is, and this code migrates it at its next init-db."
        ]
        if content_version_now() is not None:
            follow_on(version)
    else:
        message = upgrade_schema()
        now = schema_revision() or UNVERSIONED
        if message.startswith("The database is up to date"):
            message = (
                f"The backup was at revision {restored}, this code's newest: nothing to migrate."
                if now == restored
                else f"The backup was at revision {restored}; migrated to {now}."
            )
        follow_on(version)
        messages = [message, render_all_stale()]
    posts, users = counts()
    summary = Summary(
        shown,
        path.stat().st_size,
        posts,
        users,
        schema_revision() or UNVERSIONED,
        time.monotonic() - started,
    )
    if not as_json:
        for line in messages:
            click.echo(line)
    emit(
        summary,
        as_json,
        "Restored",
        f" (the backup's: {restored})" if restored != summary.revision else "",
        kept_aside=aside[-1].path if aside else None,
        backup_revision=restored,
    )


def content_version_now() -> int | None:
    """The database's content version (migration 0006), or None before it has one."""
    from sqlalchemy import inspect

    # On a connection of its own, given back at once: the file is about to be replaced.
    with db.engine.connect() as connection:
        if not inspect(connection).has_table("content_version"):
            return None
        return connection.scalar(select(ContentVersion.version).where(ContentVersion.id == 1))


def follow_on(before: int | None) -> None:
    """Number the restored data after everything served before the restore.

    Workers keep pages under the content version they were made at (page_cache.py). A
    restored database brings its own, older number back; the next writes would then reach
    numbers the workers hold pages of the replaced data under, and a restore while serving
    (--force) showed posts the restore had taken away. So the restored data gets a number
    above any seen before it.
    """
    if before is None:
        return
    with db.engine.begin() as connection:
        connection.execute(
            update(ContentVersion)
            .where(ContentVersion.id == 1, ContentVersion.version <= before)
            .values(version=before + 1)
        )


def has_tables() -> bool:
    from sqlalchemy import inspect

    return bool(inspect(db.engine).get_table_names())
