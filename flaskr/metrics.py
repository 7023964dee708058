"""Prometheus metrics at /metrics, off unless METRICS is true.

Then only for the addresses in METRICS_ALLOW. Under gunicorn the figures cover every worker:
prometheus_client's multiprocess mode, with PROMETHEUS_MULTIPROC_DIR set up before the app
loads (flaskr/serving/hooks.py).
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, abort, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DataError
from werkzeug.wrappers import Response

from flaskr.db import db

bp = Blueprint("metrics", __name__)

REQUESTS = Counter(
    "flaskr_requests_total", "HTTP requests answered", ["endpoint", "method", "status"]
)
LATENCY = Histogram(
    "flaskr_request_duration_seconds",
    "Time to answer a request",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DATABASE_ERRORS = Counter(
    "flaskr_database_errors_total",
    "Errors raised by the database driver, except values it refused (bad input, a 400)",
)
#: Labels come from this fixed set: a made-up method must not add a series for every name.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Addresses refused /metrics that this process has logged already: one line each, not one
#: per scrape (a Prometheus asks every 15 s). Bounded, so made-up addresses cannot grow it.
_REFUSED_LOGGED: set[str] = set()
_REFUSED_LOGGED_MAX = 100


def start_timer() -> None:
    """Note when the request began, for its latency."""
    g.metrics_start = time.perf_counter()


def observe(response: Response) -> Response:
    """Count the request by endpoint, method and status, and record its latency."""
    endpoint = request.endpoint or "unmatched"
    if endpoint != "metrics.metrics":
        method = request.method if request.method in METHODS else "other"
        REQUESTS.labels(endpoint, method, str(response.status_code)).inc()
        start = g.get("metrics_start")
        if start is not None:
            LATENCY.labels(endpoint).observe(time.perf_counter() - start)
    return response


def _count_database_error(context: ExceptionContext) -> None:
    """Count a failure of the database, not a value it refused (that is a 400)."""
    if not isinstance(context.sqlalchemy_exception, DataError):
        DATABASE_ERRORS.inc()


@bp.get("/metrics")
def metrics() -> Response:
    """The figures in Prometheus' text format, summed over gunicorn's workers."""
    allowed = current_app.config["METRICS_ALLOW"]
    if not current_app.config["METRICS"]:
        abort(404)
    if request.remote_addr not in allowed:
        _log_refused(str(request.remote_addr), allowed)
        abort(404)  # the client learns nothing; the operator reads why in the log
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, content_type=CONTENT_TYPE_LATEST)


def _log_refused(address: str, allowed: list[str]) -> None:
    """Say once per address why /metrics answered 404.

    Behind Docker's port publishing the host's own requests arrive from the bridge's gateway
    (172.17.0.1), not from 127.0.0.1."""
    if address in _REFUSED_LOGGED or len(_REFUSED_LOGGED) >= _REFUSED_LOGGED_MAX:
        return
    _REFUSED_LOGGED.add(address)
    current_app.logger.warning(
        "/metrics refused to %s: not in FLASKR_METRICS_ALLOW (%s); add it there, or scrape "
        "from inside (scripts/container metrics)",
        address,
        ", ".join(allowed),
    )


def count_database_errors(app: Flask) -> None:
    """Listen to the app's engine for the errors its driver raises."""
    with app.app_context():
        event.listen(db.engine, "handle_error", _count_database_error)
