"""PostgreSQL's backup and restore, through pg_dump and pg_restore.

A backup dumps the snapshot in which its revision and counts were read; a restore reads the
whole dump before touching anything, and replaces the database whole or puts it back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from flaskr.backup.files import (
    UNVERSIONED,
    Progress,
    Summary,
    backup_name,
    check_revision,
    new_private_file,
    publish,
)
from flaskr.db import db, drop_all, revision_of
from flaskr.models import Post, User

PG_CLIENT_MISSING = (
    "{tool} was not found: install the PostgreSQL client tools, Debian's package "
    "postgresql-client (sudo apt-get install postgresql-client), in a version at least the "
    "server's."
)


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
            revision = revision_of(connection) or UNVERSIONED
            posts = connection.scalar(select(func.count()).select_from(Post)) or 0
            users = connection.scalar(select(func.count()).select_from(User)) or 0
            final = folder / backup_name("postgresql", revision, label)
            partial = folder / f".{final.name}.partial"
            os.close(new_private_file(partial))  # pg_dump keeps the mode: 0600
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
