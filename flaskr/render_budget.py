"""What rendering each account's posts, comments, previews and images may cost, site-wide.

Every post, edit, preview and comment renders its Markdown (forms.MarkdownField), each
render within rendering.MAX_RENDER_SECONDS, and an image is re-encoded in a child process
within IMAGE_CPU_SECONDS. Nothing bounded how often: one account sending costly previews (or
images that are dear to decode) back to back on 15 connections made every page wait 4 s and
the container's health check fail. Now that CPU time is summed in the database per account
(every worker and instance shares it): past RENDER_CPU_MS_PER_USER within
RENDER_WINDOW_SECONDS, the account's writes and previews get 429 with Retry-After and the
form as it was typed; past RENDER_CPU_MS_SITE for all accounts together, everyone's do, so
that many accounts cannot add up to more. A person's posts render in a few milliseconds.

A render is charged once it is done, with what it took: requests already running when the
budget runs out finish, so an account overshoots it by at most one render per worker.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from flask import current_app, g
from sqlalchemy import delete, func, select

from flaskr.db import db
from flaskr.models import RenderCost


def _now() -> datetime:
    """UTC without tzinfo, the way both SQLite and PostgreSQL columns here store times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _window() -> timedelta:
    return timedelta(seconds=current_app.config["RENDER_WINDOW_SECONDS"])


def wait() -> int | None:
    """Seconds the logged-in user must wait before rendering again, or None.

    Each account has RENDER_CPU_MS_PER_USER; all of them together RENDER_CPU_MS_SITE, so that
    many accounts cannot add up to more (registering is free: 20 accounts an hour from one
    address).
    """
    config = current_app.config
    now = _now()
    since = RenderCost.created > now - _window()
    own = RenderCost.user_id == g.user.id
    row = db.session.execute(
        select(
            func.sum(RenderCost.cpu_ms).filter(own),
            func.min(RenderCost.created).filter(own),
            func.sum(RenderCost.cpu_ms),
            func.min(RenderCost.created),
        ).where(since)
    ).one()
    limits = ((row[0], row[1], config["RENDER_CPU_MS_PER_USER"]),
              (row[2], row[3], config["RENDER_CPU_MS_SITE"]))  # fmt: skip
    waits = [
        math.ceil((oldest + _window() - now).total_seconds())
        for spent, oldest, limit in limits
        if spent is not None and spent >= limit
    ]
    return max(1, *waits) if waits else None


def charge(seconds: float) -> None:
    """Count a render of the logged-in user's that took ``seconds`` of CPU.

    Renders under a millisecond are not written down: they cost less than the request.
    """
    cpu_ms = int(seconds * 1000)
    if cpu_ms < 1:
        return
    now = _now()
    db.session.execute(delete(RenderCost).where(RenderCost.created < now - _window()))
    db.session.add(RenderCost(user_id=g.user.id, created=now, cpu_ms=cpu_ms))
    db.session.commit()


def refusal(seconds: int) -> str:
    """What a refused request is told."""
    minutes, rest = divmod(seconds, 60)
    when = f"{minutes} min {rest} s" if minutes else f"{rest} s"
    return f"You have written or previewed a lot lately. Try again in {when}."
