"""``flask restore``'s steps, all or nothing.

Refuse while serving, keep the live database aside, put the backup in, migrate it, and
number its content after everything served before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from sqlalchemy import func, inspect, select, update

from flaskr.backup.files import EXTENSION, MB, UNVERSIONED, Summary, backup_folder
from flaskr.backup.make import emit, make_backup
from flaskr.backup.postgresql import restore_postgresql
from flaskr.backup.sqlite import restore_sqlite
from flaskr.bodies import render_all_stale
from flaskr.db import db, schema_revision, upgrade_schema
from flaskr.models import ContentVersion, Post, User
from flaskr.serving.lock import serving_reason


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


def counts() -> tuple[int, int]:
    posts = db.session.scalar(select(func.count()).select_from(Post)) or 0
    users = db.session.scalar(select(func.count()).select_from(User)) or 0
    return posts, users


def content_version_now() -> int | None:
    """The database's content version (migration 0006), or None before it has one."""
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
    return bool(inspect(db.engine).get_table_names())
