"""One JSON line per event on stdout, each carrying the request's id, so journald and
`docker logs` collect them and one request can be followed from nginx to the app."""

from __future__ import annotations

import logging
import os
import re
import sys

from flask import Flask, has_request_context, request
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


def init_app(app: Flask) -> None:
    """Log as JSON to stdout, unless FLASKR_LOG_FORMAT=text or in tests and debugging."""
    app.after_request(add_request_id_header)
    if app.config.get("LOG_FORMAT", "json") != "json" or app.testing or app.debug:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    app.logger.propagate = False


def add_request_id_header(response: Response) -> Response:
    """Return the id, so a user reporting a problem can quote it; gunicorn logs it too."""
    response.headers["X-Request-ID"] = request_id()
    return response
