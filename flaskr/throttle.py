"""Login throttling kept in the database, so it holds across every gunicorn worker and every
instance sharing the database, and survives restarts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from flask import current_app, request
from sqlalchemy import delete, func, or_, select

from flaskr.db import db
from flaskr.models import LoginFailure


def _now() -> datetime:
    """UTC without tzinfo, the way both SQLite and PostgreSQL columns here store times."""
    return datetime.now(UTC).replace(tzinfo=None)


def retry_after(username: str) -> int | None:
    """Seconds until this username (from anywhere) or this address may try again, or None
    when neither has reached its limit of failures within the window."""
    config = current_app.config
    window = timedelta(seconds=config["LOGIN_WINDOW_SECONDS"])
    since = _now() - window
    address = request.remote_addr or ""
    row = db.session.execute(
        select(
            func.count().filter(LoginFailure.username == username),
            func.min(LoginFailure.created).filter(LoginFailure.username == username),
            func.count().filter(LoginFailure.remote_addr == address),
            func.min(LoginFailure.created).filter(LoginFailure.remote_addr == address),
        ).where(
            LoginFailure.created > since,
            or_(LoginFailure.username == username, LoginFailure.remote_addr == address),
        )
    ).one()
    user_count, user_oldest, addr_count, addr_oldest = row
    oldest = None
    if user_count >= config["LOGIN_FAILURES_PER_USER"]:
        oldest = user_oldest
    if addr_count >= config["LOGIN_FAILURES_PER_ADDRESS"]:
        oldest = addr_oldest if oldest is None else max(oldest, addr_oldest)
    if oldest is None:
        return None
    return max(1, math.ceil((oldest + window - _now()).total_seconds()))


def record_failure(username: str) -> None:
    """Remember a failed login, and forget those older than the window."""
    window = timedelta(seconds=current_app.config["LOGIN_WINDOW_SECONDS"])
    db.session.execute(delete(LoginFailure).where(LoginFailure.created < _now() - window))
    db.session.add(
        LoginFailure(
            username=username[:64], remote_addr=(request.remote_addr or "")[:64], created=_now()
        )
    )
    db.session.commit()


def clear_failures(username: str) -> None:
    """A successful login forgives that user's earlier mistakes."""
    db.session.execute(delete(LoginFailure).where(LoginFailure.username == username))
