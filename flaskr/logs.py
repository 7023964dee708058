"""One JSON line per event on stdout, each carrying the request's id.

journald and `docker logs` collect them, and one request can be followed from nginx to the app.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import NoReturn

import click
from flask import Flask, current_app, has_request_context, request
from pythonjsonlogger.json import JsonFormatter
from werkzeug.wrappers import Response

#: An id a client or proxy may hand us: short, and nothing that could forge a log line.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id() -> str:
    """This request's id: X-Request-ID when it is sane, else a new one (32 hex digits)."""
    environ = request.environ
    given = environ.get("flaskr.request_id")
    if given is None:
        given = environ.get("HTTP_X_REQUEST_ID", "")
        if not REQUEST_ID.match(given):
            given = os.urandom(16).hex()
        environ["flaskr.request_id"] = given
    return given


class RequestIdFilter(logging.Filter):
    """Adds request_id (and the path) to records logged while a request is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = request_id()
            record.path = request.path
        return True


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def logs_as_json(app: Flask) -> bool:
    """JSON lines, unless FLASKR_LOG_FORMAT=text or in tests and debugging."""
    return app.config["LOG_FORMAT"] == "json" and not (app.testing or app.debug)


def for_logs(app: Flask) -> bool:
    """Tell whether a command's output goes to a deployment's logs, not to a person.

    Logs are a container starting or a pipe into the journal, rather than a terminal: then
    the output is JSON like the rest.
    """
    return logs_as_json(app) and not sys.stdout.isatty()


def echo(message: str) -> None:
    """A command's message, as one JSON log line where the output is logs, else plain text."""
    if for_logs(current_app):
        current_app.logger.info(message)
    else:
        click.echo(message)


def fail(app: Flask, message: str) -> NoReturn:
    """Stop a command with a fatal error before the app exists (at a container's start, say).

    One JSON line where the output is logs, else click's plain "Error: ..." line.
    """
    if for_logs(app):
        record = logging.makeLogRecord(
            {"name": app.name, "levelname": "CRITICAL", "levelno": logging.CRITICAL, "msg": message}
        )
        print(json_formatter().format(record), file=sys.stderr, flush=True)
        raise SystemExit(1)
    raise click.ClickException(message)


def json_root_handlers() -> None:
    """Alembic's own handlers (its alembic.ini) write JSON too."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(json_formatter())


def init_app(app: Flask) -> None:
    """Log as JSON to stdout, unless FLASKR_LOG_FORMAT=text or in tests and debugging."""
    if not logs_as_json(app):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(app.config["LOG_LEVEL"])
    app.logger.propagate = False


def add_request_id_header(response: Response) -> Response:
    """Return the id, so a user reporting a problem can quote it; gunicorn logs it too."""
    response.headers["X-Request-ID"] = request_id()
    return response
