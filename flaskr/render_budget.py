"""What rendering each account's posts, comments and previews may cost, across all workers.

Every post, edit, preview and comment renders its Markdown (forms.MarkdownField), each
render within rendering.MAX_RENDER_SECONDS. Nothing bounded how often: one account sending
costly previews back to back (they save nothing and reuse one CSRF token) on 15 connections
made every page wait 4 s and the container's health check fail. Now the CPU time of each
account's renders is summed in the database (every worker and instance shares it): past
RENDER_CPU_MS_PER_USER within RENDER_WINDOW_SECONDS, its writes and previews get 429 with
Retry-After and the form as it was typed. A person's posts render in a few milliseconds.

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
    """Seconds the logged-in user must wait before rendering again, or None."""
    now = _now()
    spent, oldest = db.session.execute(
        select(func.sum(RenderCost.cpu_ms), func.min(RenderCost.created)).where(
            RenderCost.user_id == g.user.id, RenderCost.created > now - _window()
        )
    ).one()
    if spent is None or spent < current_app.config["RENDER_CPU_MS_PER_USER"]:
        return None
    return max(1, math.ceil((oldest + _window() - now).total_seconds()))


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
