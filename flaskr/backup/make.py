"""Writing one backup, whatever the database, and the lines both commands print about it."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from flaskr.backup.files import Progress, Summary, folder_lock
from flaskr.backup.postgresql import backup_postgresql
from flaskr.backup.sqlite import backup_sqlite
from flaskr.db import db


def make_backup(
    folder: Path, label: str | None = None, progress: Progress | None = None
) -> Summary:
    """Write one backup of the app's database into ``folder``."""
    with folder_lock(folder):
        backup = backup_sqlite if db.engine.dialect.name == "sqlite" else backup_postgresql
        return backup(folder, label, progress or (lambda _done, _total: None))


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
