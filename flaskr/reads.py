"""Small reads that every request makes, on the driver's own pooled connection.

A visitor's cached page costs one read (the content version) and a logged-in request one
more (its user). Through SQLAlchemy, its Connection and result objects cost several times
the read itself (docs/performance.md), so these go to the DBAPI cursor directly. The
statements are still SQLAlchemy's, compiled once per database dialect (quoting, parameter
style), and a driver error still surfaces as SQLAlchemy's (a database that is down is a 503).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler

from flaskr.db import db


@lru_cache(maxsize=16)  # the module-level statements that call first_row: a handful
def _compiled(statement: Executable, dialect: Dialect) -> SQLCompiler:
    compiled: SQLCompiler = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    return compiled


def first_row(
    statement: Executable, params: dict[str, Any] | None = None
) -> tuple[Any, ...] | None:
    """The first row ``statement`` returns with ``params``, or None."""
    engine = db.engine
    compiled = _compiled(statement, engine.dialect)
    values = compiled.construct_params(params or {})
    if compiled.positiontup is not None:
        arguments: Any = tuple(values[name] for name in compiled.positiontup)
    else:
        arguments = values
    driver_error = engine.dialect.loaded_dbapi.Error
    try:
        # The pool's connection: pre-ping and reset on return apply. Connecting is inside the
        # try: a database that is down fails here, and must surface as SQLAlchemy's error
        # (a 503 page), not the driver's (a 500).
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(compiled.string, arguments)
                row = cursor.fetchone()
            finally:
                cursor.close()
        finally:
            connection.close()
    except driver_error as error:
        raise DBAPIError.instance(compiled.string, arguments, error, driver_error) from error
    return None if row is None else tuple(row)
