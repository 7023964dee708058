"""Probes for orchestrators: /healthz says the process answers, /readyz that it can serve."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy.exc import SQLAlchemyError

from flaskr.db import head_revision, schema_revision

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: no database call, so a database outage does not restart every instance."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, str | None], int]:
    """Readiness: the database answers and its schema is the one this code expects."""
    try:
        current = schema_revision()
    except SQLAlchemyError as e:
        current_app.logger.warning("not ready: database unavailable: %s", e.__class__.__name__)
        return {"status": "unavailable", "reason": "database unavailable"}, 503
    expected = head_revision()
    if current != expected:
        reason = f"schema at {current}, code expects {expected}: run flask init-db"
        return {"status": "unavailable", "reason": reason}, 503
    return {"status": "ok", "schema": current}, 200
