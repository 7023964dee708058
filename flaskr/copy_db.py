"""Move a site's data into another database (``flask copy-db --to URL``, commands.py).

Typically from its SQLite file to PostgreSQL when it outgrows one machine (docs/scale-out.md).
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
from urllib.parse import quote, quote_plus

import click
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Integer,
    Table,
    create_engine,
    func,
    make_url,
    select,
)
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from flaskr.db import db, require_schema, revision_of, schema_revision, shown_url, with_driver

#: Kept by the target's own triggers (and its migration's first row), not copied.
DERIVED = {"content_version"}
#: Rows per INSERT: images are up to 5 MB each, so they go a few at a time.
BATCH = {"image": 20}
DEFAULT_BATCH = 2000
#: The systemd credential the host's `sudo flaskr copy-db --password-file FILE` hands over
#: (deploy/systemd/flaskr-command): read when no --password-file is given.
CREDENTIAL = "copy_db_password"
#: Where to give the target's password instead of in the URL, which is on the command line.
HOW = (
    "give the URL without it (postgresql://USER@HOST/NAME) and the password in "
    "--password-file FILE (mode 0600: chmod 600 FILE), in libpq's PGPASSWORD, PGPASSFILE or "
    "~/.pgpass, or type it when copy-db asks (in a terminal)"
)
#: What names a password in a URL's query (?password=, ?PASSWORD=, ?sslpassword=, ...): libpq
#: takes its connection options there too. ?passfile= names a file, not a secret: allowed.
SECRET_QUERY = re.compile(r"passw(or)?d|secret|^pwd$", re.IGNORECASE)


def checked_url(given: str) -> URL:
    """The --to URL, refused when it holds a password, before its user or in its query.

    Every local user can read a command line (/proc/PID/cmdline): the password would be
    theirs while the copy runs.
    """
    try:
        url = make_url(with_driver(given))
    except (ArgumentError, ValueError):  # a message may repeat the string, password and all
        raise click.ClickException(
            "--to is not a database URL (postgresql://USER@HOST/NAME)."
        ) from None
    in_query = [key for key in url.query if SECRET_QUERY.search(key)]
    if url.password is not None or in_query:
        what = "a password" if url.password is not None else f"a password in ?{in_query[0]}="
        raise click.ClickException(
            f"--to {shown_url(url)} holds {what}, which every local user can read on this "
            f"command's line while it runs: {HOW}."
        )
    return url


def scrubbed(message: str, url: URL) -> str:
    """An error's text without the URL's password or any value of its query, as ***.

    Drivers quote them (libpq: 'invalid sslmode value: "..."'), and SQLAlchemy prints a URL's
    query as it is. Query values are masked where they stand as a whole word.
    """
    if url.password:
        for form in {url.password, quote(url.password, safe=""), quote_plus(url.password)}:
            message = message.replace(form, "***")
    values = {v for vs in url.query.values() for v in ([vs] if isinstance(vs, str) else vs)}
    for value in sorted(filter(None, values), key=len, reverse=True):
        for form in {value, quote(value, safe=""), quote_plus(value)}:
            message = re.sub(rf"(?<!\w){re.escape(form)}(?!\w)", "***", message)
    return message


def read_password_file(path: str) -> str:
    """The password in ``path`` (its first line), refused unless only its owner may read it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        raise click.ClickException(
            f"cannot read the password file {path} ({e.strerror}) as uid {os.getuid()}."
        ) from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise click.ClickException(f"the password file {path} is not a regular file.")
        if mode & 0o077:
            raise click.ClickException(
                f"the password file {path} is mode {stat.S_IMODE(mode):04o}: others than its "
                f"owner may read it. Make it private first: chmod 600 {path}"
            )
        lines = f.read(4096).decode().splitlines()
    if not lines or not lines[0]:
        raise click.ClickException(f"the password file {path} is empty: one line, the password.")
    return lines[0]


def credential_file() -> str | None:
    """The password systemd handed over with LoadCredential=copy_db_password, if it did."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and os.path.exists(os.path.join(directory, CREDENTIAL)):
        return os.path.join(directory, CREDENTIAL)
    return None


def connect_target(url: URL) -> Engine:
    """An engine on the target, with a password typed at a terminal if it takes one.

    Without a password in the URL, libpq finds one itself (PGPASSWORD, PGPASSFILE,
    ~/.pgpass); when the server still asks for one and a person is at a terminal, copy-db
    asks too, without echoing it.
    """
    target = create_engine(url)
    if url.password is not None:
        return target
    try:
        target.connect().close()
    except SQLAlchemyError as e:
        if not isinstance(e, OperationalError) or "no password supplied" not in str(e):
            return target  # the copy reports it, as any other failure
        target.dispose()
        if not sys.stdin.isatty():  # a password piped in is not read: it would echo nowhere
            raise click.ClickException(
                f"{shown_url(url)} asks for a password, and there is no terminal to ask it "
                "at (standard input is not read for it): use --password-file FILE (mode 0600) "
                "or libpq's PGPASSFILE."
            ) from None
        password = click.prompt(f"Password for {shown_url(url)}", hide_input=True)
        target = create_engine(url.set(password=password))
    return target


def copied_tables() -> list[Table]:
    """Every table of the models, parents before children (foreign keys hold at each insert)."""
    return [t for t in db.metadata.sorted_tables if t.name not in DERIVED]


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


def copy_database(target_url: str, password_file: str | None) -> None:
    """Copy every row of this site's database into an empty, migrated one, then verify.

    Each table's count is printed as it arrives; any refusal or failure is a
    ``click.ClickException`` that names the target without its password.
    """
    url = checked_url(target_url)
    password_file = password_file or credential_file()
    if password_file is not None:
        url = url.set(password=read_password_file(password_file))
    require_schema()
    revision = schema_revision()
    where = shown_url(url)
    try:
        target = connect_target(url)
    except ArgumentError as e:  # SQLite's driver takes no password, for one
        raise click.ClickException(f"{where}: {scrubbed(str(e), url)}") from None
    started = time.monotonic()
    try:
        with db.engine.connect() as source, target.begin() as out:
            there = revision_of(out)
            if there != revision:
                raise click.ClickException(
                    f"{where} is at schema revision {there}, this database at {revision}. "
                    "Migrate the target first: flask --app flaskr init-db with "
                    "FLASKR_DATABASE_URL set to it in the environment, read from a private file "
                    "(never on a command line: docs/operating.md), then copy again."
                )
            tables = copied_tables()
            busy = [t.name for t in tables if count(out, t)]
            if busy:
                raise click.ClickException(
                    f"{where} already holds rows (tables {', '.join(busy)}): copy-db only fills "
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
        raise click.ClickException(
            f"copying into {where} failed, nothing was kept: {scrubbed(str(e), url)}"
        ) from e
    finally:
        target.dispose()
    elapsed = time.monotonic() - started
    click.echo(f"Copied {total} rows in {len(tables)} tables in {elapsed:.1f}s; counts verified.")
