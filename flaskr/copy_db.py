"""``flask copy-db --to URL``: move a site's data into another database.

Typically from its SQLite file to PostgreSQL when it outgrows one machine (docs/scale-out.md).
"""

from __future__ import annotations

import time

import click
from flask.cli import with_appcontext
from sqlalchemy import Connection, Integer, Table, create_engine, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError

from flaskr.config import with_driver
from flaskr.db import db, require_schema, schema_revision

#: Kept by the target's own triggers (and its migration's first row), not copied.
DERIVED = {"content_version"}
#: Rows per INSERT: images are up to 5 MB each, so they go a few at a time.
BATCH = {"image": 20}
DEFAULT_BATCH = 2000


def copied_tables() -> list[Table]:
    """Every table of the models, parents before children (foreign keys hold at each insert)."""
    return [t for t in db.metadata.sorted_tables if t.name not in DERIVED]


def target_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def count(connection: Connection, table: Table) -> int:
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


def reset_sequence(connection: Connection, table: Table) -> None:
    """Rows came with their ids: the next id PostgreSQL hands out follows the largest."""
    key = list(table.primary_key.columns)
    if connection.dialect.name != "postgresql" or len(key) != 1:
        return
    if not isinstance(key[0].type, Integer):
        return
    column = table.c[key[0].name]
    sequence = func.pg_get_serial_sequence(f'"{table.name}"', column.name)
    largest = func.max(column)
    connection.execute(
        select(func.setval(sequence, func.coalesce(largest, 1), largest.is_not(None)))
    )


@click.command("copy-db")
@with_appcontext
@click.option(
    "--to",
    "target_url",
    required=True,
    help="The target database, empty and migrated: postgresql://USER:PASSWORD@HOST/NAME.",
)
def copy_db_command(target_url: str) -> None:
    """Copy every row of this site's database into an empty, migrated one, then verify."""
    require_schema()
    revision = schema_revision()
    target = create_engine(with_driver(target_url))
    shown = target.url.render_as_string(hide_password=True)
    started = time.monotonic()
    try:
        with db.engine.connect() as source, target.begin() as out:
            there = target_revision(out)
            if there != revision:
                raise click.ClickException(
                    f"{shown} is at schema revision {there}, this database at {revision}. "
                    f"Migrate the target first: FLASKR_DATABASE_URL='{shown}' flask --app flaskr "
                    "init-db (with its password), then copy again."
                )
            tables = copied_tables()
            busy = [t.name for t in tables if count(out, t)]
            if busy:
                raise click.ClickException(
                    f"{shown} already holds rows (tables {', '.join(busy)}): copy-db only fills "
                    "an empty database, so nothing is overwritten or mixed."
                )
            total = 0
            for table in tables:
                rows = 0
                size = BATCH.get(table.name, DEFAULT_BATCH)
                order = table.primary_key.columns
                result = source.execute(select(table).order_by(*order)).mappings()
                while chunk := result.fetchmany(size):
                    # One multi-row INSERT: the target's statement triggers fire once per batch.
                    out.execute(table.insert().values([dict(row) for row in chunk]))
                    rows += len(chunk)
                reset_sequence(out, table)
                have, want = count(out, table), count(source, table)
                if have != want:
                    raise click.ClickException(
                        f"{table.name}: {have} rows arrived of {want}; nothing was kept."
                    )
                click.echo(f"{table.name}: {rows} rows")
                total += rows
    except SQLAlchemyError as e:
        raise click.ClickException(f"copying into {shown} failed, nothing was kept: {e}") from e
    finally:
        target.dispose()
    elapsed = time.monotonic() - started
    click.echo(f"Copied {total} rows in {len(tables)} tables in {elapsed:.1f}s; counts verified.")
