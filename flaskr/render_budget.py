"""What rendering each account's posts, comments, previews and images may cost, site-wide.

Every post, edit, preview and comment renders its Markdown (forms.MarkdownField), each
render within rendering.MAX_RENDER_SECONDS, and an image is re-encoded in a child process
within IMAGE_CPU_SECONDS. Nothing bounded how often: one account sending costly previews (or
images that are dear to decode) back to back on 15 connections made every page wait 4 s and
the container's health check fail. Now that CPU time is summed in the database per account
(every worker and instance shares it): past RENDER_CPU_MS_PER_USER within
RENDER_WINDOW_SECONDS, the account's writes and previews get 429 with Retry-After and the
form as it was typed. Its logins with the right password and its password changes, whose
hashes cost about 0.2 s each, count and wait too. Past RENDER_CPU_MS_SITE for all accounts
together, every account that spent a quarter of its own waits as well, so that many accounts
cannot add up to more while ordinary writers go on: their renders take under a millisecond
and are not even written down.

A render is charged once it is done, with what it took: requests already running when the
budget runs out finish, so an account overshoots it by at most one render per worker.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from flask import current_app, g
from sqlalchemy import Select, bindparam, delete, func, select

from flaskr.db import db
from flaskr.models import RenderCost


def _now() -> datetime:
    """UTC without tzinfo, the way both SQLite and PostgreSQL columns here store times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _window() -> timedelta:
    return timedelta(seconds=current_app.config["RENDER_WINDOW_SECONDS"])


#: When all accounts together have spent RENDER_CPU_MS_SITE, an account that has spent this
#: share of its own budget waits too; one that spent less (every ordinary writer, whose
#: renders take under a millisecond and are not even written down) goes on.
HEAVY_SHARE = 4


@cache
def _spent() -> Select[Any]:
    """What the account and the site spent since ``since``, and when each oldest render was.

    Built once, as the listings' statements are: every write and login asks it.
    """
    own = RenderCost.user_id == bindparam("user")
    return select(
        func.sum(RenderCost.cpu_ms).filter(own),
        func.min(RenderCost.created).filter(own),
        func.sum(RenderCost.cpu_ms),
        func.min(RenderCost.created),
    ).where(RenderCost.created > bindparam("since"))


def wait(user_id: int | None = None) -> int | None:
    """Seconds the user (the logged-in one by default) must wait before rendering again.

    Each account has RENDER_CPU_MS_PER_USER. All of them together have RENDER_CPU_MS_SITE,
    so that many accounts cannot add up to more (registering is free); past it, the accounts
    that spent a quarter of their own budget wait, and nobody else: a third outside review
    blocked everyone's writing with eight accounts when the site's budget held everyone back.
    """
    config = current_app.config
    now = _now()
    user = g.user.id if user_id is None else user_id
    mine, my_oldest, site, site_oldest = db.session.execute(
        _spent(), {"user": user, "since": now - _window()}
    ).one()
    per_user = config["RENDER_CPU_MS_PER_USER"]
    if mine is None:
        return None
    oldest = None
    if mine >= per_user:
        oldest = my_oldest
    elif site >= config["RENDER_CPU_MS_SITE"] and HEAVY_SHARE * mine >= per_user:
        oldest = site_oldest
    if oldest is None:
        return None
    return max(1, math.ceil((oldest + _window() - now).total_seconds()))  # type: ignore[no-any-return]


def charge(seconds: float, user_id: int | None = None, *, commit: bool = True) -> None:
    """Count a render of the user's (the logged-in one by default) that took ``seconds``.

    Renders under a millisecond are not written down: they cost less than the request.
    ``commit=False`` leaves the count to the caller's commit: a write that follows counts its
    render in its own transaction, not in one more of its own (one lock and one sync fewer).
    """
    cpu_ms = int(seconds * 1000)
    if cpu_ms < 1:
        return
    now = _now()
    db.session.execute(delete(RenderCost).where(RenderCost.created < now - _window()))
    user = g.user.id if user_id is None else user_id
    db.session.add(RenderCost(user_id=user, created=now, cpu_ms=cpu_ms))
    if commit:
        db.session.commit()


def refusal(seconds: int) -> str:
    """What a refused request is told."""
    minutes, rest = divmod(seconds, 60)
    when = f"{minutes} min {rest} s" if minutes else f"{rest} s"
    return f"You have written or previewed a lot lately. Try again in {when}."
