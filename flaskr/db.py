"""The database: SQLAlchemy session, SQLite tuning, and schema creation or upgrade."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote_plus

import click
from flask import Flask, current_app
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event, inspect
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

#: Constraint names that Alembic can find again on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING))

MIGRATIONS = os.path.join(os.path.dirname(__file__), "migrations")
#: The revision whose schema is exactly the Flask tutorial's schema.sql.
TUTORIAL_REVISION = "0001_tutorial"


#: The engines this process made, for the fork hook below (weakly: tests make many apps).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    """Give a forked process empty pools, never its parent's connections.

    gunicorn forks its workers from a master that has loaded the app (preload_app). That master
    opens no connection, but if it ever did, two processes sharing one socket or SQLite handle
    would corrupt both: SQLAlchemy's advice for os.fork(), kept in one place.
    """
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_inherited_connections)


@event.listens_for(Engine, "connect")
def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """Set SQLite up for several workers: WAL, foreign keys, a busy timeout.

    WAL lets readers and one writer work at once; the busy timeout makes writers queue
    instead of failing with "database is locked" when three workers write together.
    """
    if type(dbapi_connection).__module__ != "sqlite3":
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty and readable by its owner only (0600, whatever the umask).

    False when it exists already (its mode is the operator's, left as it is) or cannot be
    made here (SQLite, opening it next, says why).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:
        return False
    try:
        os.fchmod(fd, 0o600)  # a umask may have taken the owner's bits too
    finally:
        os.close(fd)
    return True


def open_lock_file(path: str | os.PathLike[str]) -> IO[str]:
    """Open (creating, mode 0600) a lock file without following a link planted in its place.

    A link at that name would make the service create or lock a file wherever it points.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise click.ClickException(
                f"{path} is a symbolic link, not a lock file: remove it (someone may have put "
                "it there to make this command write elsewhere)."
            ) from e
        raise
    return os.fdopen(fd, "r+")


@event.listens_for(Engine, "do_connect")
def _create_sqlite_privately(dialect: Any, _record: Any, cargs: list[Any], cparams: Any) -> None:
    """Make a new SQLite database file 0600 before SQLite creates it with the umask's mode.

    Under the usual umask 022 that was 0644: every local user could read the password hashes.
    SQLite gives the -wal and -shm files the database's own mode. A database named by a URI
    (``?uri=true``) is left to SQLite.
    """
    if dialect.name != "sqlite" or cparams.get("uri") or not cargs:
        return
    if isinstance(cargs[0], str) and cargs[0] not in ("", ":memory:"):
        create_private_file(cargs[0])


#: libpq's bounds on a PostgreSQL connection (init_app); FLASKR_SQLALCHEMY_ENGINE_OPTIONS'
#: "connect_args" overrides them.
PG_CONNECT_ARGS = {"connect_timeout": 5, "tcp_user_timeout": 5000}


def init_app(app: Flask) -> None:
    """Bind the SQLAlchemy extension, and Flask-Migrate where commands run, to the app."""
    options = app.config["SQLALCHEMY_ENGINE_OPTIONS"]
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite needs no pool pings; each worker keeps its own file handle.
        options.pop("pool_pre_ping", None)
    elif app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        # A database gone away must not hold a worker: libpq gives up connecting after 5 s,
        # and gives up a connection whose packets go unacknowledged for 5 s (a stopped
        # container's end can vanish without closing it; the pool's ping then waited for
        # TCP's own timeout, and a page while PostgreSQL was down took over 15 s).
        options["connect_args"] = {**PG_CONNECT_ARGS, **options.get("connect_args", {})}
    db.init_app(app)
    with app.app_context():
        _ENGINES.update(db.engines.values())
    if click.get_current_context(silent=True) is not None:
        # Alembic only where migrations run, the CLI: serving workers stay smaller
        # (docs/performance.md has the figure, from `python -m bench.in_process --imports`).
        use_migrate(app)


def end_session(_error: BaseException | None) -> None:
    """Drop the request's session even when the database went away during it.

    Registered to run before Flask-SQLAlchemy's own teardown: when PostgreSQL restarted
    during the request, the final ROLLBACK fails on a connection that is already invalidated,
    so the session is forgotten instead of crashing the worker after the response.
    """
    try:
        db.session.remove()
    except SQLAlchemyError:
        db.session.registry.clear()


def use_migrate(app: Flask) -> None:
    """Register Flask-Migrate (and so import Alembic) on first need."""
    if "migrate" not in app.extensions:
        from flask_migrate import Migrate

        Migrate(app, db, directory=MIGRATIONS, render_as_batch=True)


def schema_revision() -> str | None:
    """Give the Alembic revision the app's database is at, or None for an unversioned one."""
    with db.engine.connect() as connection:
        return revision_of(connection)


def revision_of(connection: Connection) -> str | None:
    """Give the Alembic revision of the database behind ``connection``, or None.

    The one place that reads ``alembic_version``; plain SQL, so that /readyz does not make a
    serving worker import Alembic. On the caller's connection, so a backup reads it in the
    snapshot it dumps.
    """
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.exec_driver_sql(
        "SELECT version_num FROM alembic_version"
    ).scalar()
    return revision


REVISION_LINE = re.compile(r'^(revision|down_revision) = "([^"]+)"$', re.MULTILINE)


@cache
def migration_chain() -> dict[str, str | None]:
    """Each revision shipped with this code, and the one it revises (None for the first).

    Read from the migration scripts' own lines rather than through Alembic, which serving
    workers do not import (tests/test_db.py checks the answers against Alembic's).
    """
    revises: dict[str, str | None] = {}
    for path in Path(MIGRATIONS, "versions").glob("*.py"):
        found = dict(REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        revises[found["revision"]] = found.get("down_revision")
    return revises


def known_revisions() -> list[str]:
    """Every revision this code knows, oldest first."""
    revises = migration_chain()

    def depth(revision: str | None) -> int:
        return 0 if revision is None else 1 + depth(revises.get(revision))

    return sorted(revises, key=lambda revision: (depth(revision), revision))


def head_revision() -> str | None:
    """Name the newest migration shipped with this code: the one no other revises."""
    revises = migration_chain()
    heads = set(revises) - set(revises.values())
    return heads.pop() if len(heads) == 1 else None


def shown_url(url: URL) -> str:
    """A database URL for a message: its password as ***, and every value of its query too.

    render_as_string(hide_password=True) hides only the password before the host, and libpq
    takes options, a password among them, in the query as well.
    """
    text = url.difference_update_query(list(url.query)).render_as_string(hide_password=True)
    if url.query:
        text += "?" + "&".join(f"{quote_plus(key)}=***" for key in url.query)
    return text


def require_schema() -> None:
    """Stop a command that needs the tables when the database has none, saying how to fix it.

    That replaces a traceback ("no such table"). An SQLite file that does not exist is not
    created by looking: a command run from the wrong folder leaves no stray empty database.
    """
    url = db.engine.url
    where = shown_url(url)
    fix = (
        "Commands must run with the site's settings: on a host set up by install-host, "
        "`sudo flaskr COMMAND`; in the container, `scripts/container flask COMMAND`. "
        "A new database gets its tables with `flask --app flaskr init-db`."
    )
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file and file != ":memory:" and not os.path.exists(file):
        raise click.ClickException(f"there is no database at {url.database}. {fix}")
    if schema_revision() is None:
        raise click.ClickException(f"the database {where} has no flaskr tables yet. {fix}")


@contextmanager
def migration_lock() -> Iterator[None]:
    """Hold a lock shared by every instance, so containers starting together migrate once."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as connection:
            connection.exec_driver_sql("SELECT pg_advisory_lock(725400)")
            try:
                yield
            finally:
                connection.exec_driver_sql("SELECT pg_advisory_unlock(725400)")
        return
    database = db.engine.url.database or ""
    path = (
        database + ".migrate-lock"
        if database
        else os.path.join(current_app.instance_path, ".migrate-lock")
    )
    create_private_file(path)  # empty, but beside the database: private as it is
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade_schema() -> str:
    """Create the schema, or bring an existing one (the tutorial's too) to the newest revision.

    Never drops data. Returns what it did, for the CLI to print.
    """
    with migration_lock():
        return _upgrade_schema()


def _upgrade_schema() -> str:
    from flask_migrate import stamp, upgrade

    use_migrate(current_app._get_current_object())  # type: ignore[attr-defined]
    tables = set(inspect(db.engine).get_table_names())
    if schema_revision() is None and {"user", "post"} <= tables:
        # A database made by the tutorial's schema.sql: adopt it, then migrate forward.
        stamp(directory=MIGRATIONS, revision=TUTORIAL_REVISION)
        upgrade(directory=MIGRATIONS)
        return "Upgraded the Flask tutorial's database in place."
    before = schema_revision()
    upgrade(directory=MIGRATIONS)
    return "Initialized the database." if before is None else "The database is up to date."


#: Tables the migrations make beside the models': Alembic's own, and the search index.
TABLES_BESIDE_MODELS = ("alembic_version", "post_search")
#: What migrations add on PostgreSQL beside the tables: the triggers' functions (0006, 0010).
POSTGRESQL_FUNCTIONS = ("content_changed()", "body_edited()")


def drop_all() -> None:
    """Remove every table, the Alembic version and what migrations add beside the models."""
    db.drop_all()
    with db.engine.begin() as connection:
        for table in TABLES_BESIDE_MODELS:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        if connection.dialect.name == "postgresql":
            for function in POSTGRESQL_FUNCTIONS:
                connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function}")


def database_url(app: Flask) -> str:
    """FLASKR_DATABASE_URL, else DATABASE_URL, else an SQLite file in the instance folder."""
    url = app.config["DATABASE_URL"] or os.environ.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(app.instance_path, "flaskr.sqlite")
    return with_driver(url)


def with_driver(url: str) -> str:
    """Hosting platforms hand out postgres:// URLs; SQLAlchemy wants a driver named."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
