"""Probes for orchestrators: /healthz says the process answers, /readyz that it can serve."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from flask import Blueprint, current_app
from sqlalchemy.exc import SQLAlchemyError

from flaskr.db import MIGRATIONS, schema_revision

bp = Blueprint("health", __name__)

REVISION_LINE = re.compile(r'^(revision|down_revision) = "([^"]+)"$', re.MULTILINE)


@cache
def head_revision() -> str | None:
    """Name the newest migration shipped with this code: the one no other revises.

    Read from the scripts' own lines rather than through Alembic, which serving workers do
    not import (tests/test_health.py checks the answer against Alembic's).
    """
    revisions, revised = set(), set()
    for path in Path(MIGRATIONS, "versions").glob("*.py"):
        found = dict(REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        revisions.add(found["revision"])
        revised.add(found.get("down_revision"))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


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
