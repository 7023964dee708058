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
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DataError
from werkzeug.wrappers import Response

from flaskr.db import db

bp = Blueprint("metrics", __name__)

#: Labels come from this fixed set: a made-up method must not add a series for every name.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Addresses refused /metrics that are logged, one line each: made-up ones cannot grow it.
REFUSED_LOGGED_MAX = 100


class Metrics:
    """One app's figures, in a registry of its own, so every app (each test's) starts at zero.

    Under gunicorn each worker serves one app and writes its figures to the multiprocess
    folder, which /metrics sums; outside it, the registry also holds the process and Python
    figures that prometheus_client's default one does.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flaskr_requests_total",
            "HTTP requests answered",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flaskr_request_duration_seconds",
            "Time to answer a request",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.database_errors = Counter(
            "flaskr_database_errors_total",
            "Errors raised by the database driver, except values it refused (bad input, a 400)",
            registry=self.registry,
        )
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        #: Addresses refused /metrics that were logged already: one line each, not one per
        #: scrape (a Prometheus asks every 15 s).
        self.refused_logged: set[str] = set()

    def count_database_error(self, context: ExceptionContext) -> None:
        """Count a failure of the database, not a value it refused (that is a 400)."""
        if not isinstance(context.sqlalchemy_exception, DataError):
            self.database_errors.inc()


def init_app(app: Flask) -> None:
    """Give the app its figures when METRICS is on, and count its engine's errors."""
    if app.config["METRICS"]:
        figures = app.extensions["flaskr.metrics"] = Metrics()
        with app.app_context():
            event.listen(db.engine, "handle_error", figures.count_database_error)


def start_timer() -> None:
    """Note when the request began, for its latency."""
    g.metrics_start = time.perf_counter()


def observe(response: Response) -> Response:
    """Count the request by endpoint, method and status, and record its latency."""
    endpoint = request.endpoint or "unmatched"
    if endpoint != "metrics.metrics":
        figures: Metrics = current_app.extensions["flaskr.metrics"]
        method = request.method if request.method in METHODS else "other"
        figures.requests.labels(endpoint, method, str(response.status_code)).inc()
        start = g.get("metrics_start")
        if start is not None:
            figures.latency.labels(endpoint).observe(time.perf_counter() - start)
    return response


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
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = current_app.extensions["flaskr.metrics"].registry
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _log_refused(address: str, allowed: list[str]) -> None:
    """Say once per address why /metrics answered 404.

    Behind Docker's port publishing the host's own requests arrive from the bridge's gateway
    (172.17.0.1), not from 127.0.0.1."""
    logged = current_app.extensions["flaskr.metrics"].refused_logged
    if address in logged or len(logged) >= REFUSED_LOGGED_MAX:
        return
    logged.add(address)
    current_app.logger.warning(
        "/metrics refused to %s: not in FLASKR_METRICS_ALLOW (%s); add it there, or scrape "
        "from inside (scripts/container metrics)",
        address,
        ", ".join(allowed),
    )
