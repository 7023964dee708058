"""Post and comment bodies: rendered once, when they are written, and stored with their HTML.

Pages show the stored ``body_html`` and never render Markdown, so what a body costs is paid
once, by its writer, within the bounds of flaskr/rendering.py. ``render_stale`` renders
again the bodies that another renderer (``rendering.RENDERER``) made, or that none did
(written by other means, or before migration 0010): ``flask init-db`` runs it after its
migrations, so an upgrade of markdown-it-py or nh3 takes effect before the workers start.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from markupsafe import Markup
from sqlalchemy import bindparam, or_, select, update

from flaskr.db import db
from flaskr.forms import MarkdownField
from flaskr.models import Comment, Post
from flaskr.rendering import RENDERER, RenderTooCostly, plain, render

#: Bodies read, rendered and written back per transaction.
BATCH = 200


def rendered_mark() -> str:
    """What ``rendered_with`` holds: the renderer, and a mark new at every write.

    A body changed without a new mark (plain SQL, an older release) loses its stale HTML to
    migration 0010's trigger, so no edit is ever hidden behind the HTML of the old text.
    """
    return f"{RENDERER} #{secrets.token_hex(4)}"


def stored(row: Post | Comment, field: MarkdownField) -> None:
    """Give ``row`` the body of a validated form's field and the HTML rendered from it."""
    if field.html is None:
        raise ValueError(f"{field.name} was not validated: it has no HTML to store")
    row.body = field.data or ""
    row.body_html = str(field.html)
    row.rendered_with = rendered_mark()


def shown(html: str | None, body: str) -> Markup:
    """What a page shows of a body: its stored HTML, or the text as written if it has none."""
    if html is None:
        return plain(body)
    # Safe to mark: only render() (nh3-cleaned) or plain() (escaped) made what is stored.
    return Markup(html)  # noqa: S704  # nosec B704


def render_stale(model: Any) -> tuple[int, int]:
    """Render again every ``model`` body made by another renderer, or by none.

    Returns how many were rendered, and how many of those are now shown as plain text
    because this renderer refuses them (RenderTooCostly). A body edited meanwhile keeps its
    edit: a row is only written if its body is still the one rendered.
    """
    stale = or_(model.rendered_with.is_(None), ~model.rendered_with.startswith(f"{RENDERER} #"))
    table = model.__table__
    # One statement for the batch, run for each row (executemany).
    write = (
        update(table)
        .where(table.c.id == bindparam("row_id"), table.c.body == bindparam("rendered_body"))
        .values(body_html=bindparam("html"), rendered_with=bindparam("mark"))
    )
    done = refused = 0
    after = 0
    while True:
        rows = db.session.execute(
            select(model.id, model.body)
            .where(stale, model.id > after)
            .order_by(model.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return done, refused
        written = []
        for id, body in rows:
            try:
                html = render(body or "")
            except RenderTooCostly:
                html = plain(body or "")
                refused += 1
            written.append(
                {"row_id": id, "rendered_body": body, "html": str(html), "mark": rendered_mark()}
            )
        db.session.connection().execute(write, written)
        db.session.commit()
        done += len(rows)
        after = rows[-1].id


def render_all_stale() -> str:
    """Render the stale posts and comments; say what was done, for ``flask init-db``."""
    started = time.monotonic()
    posts, refused_posts = render_stale(Post)
    comments, refused_comments = render_stale(Comment)
    if not posts and not comments:
        return f"Every post and comment is rendered by {RENDERER}."
    refused = refused_posts + refused_comments
    return (
        f"Rendered {posts} posts and {comments} comments with {RENDERER} in "
        f"{time.monotonic() - started:.1f}s"
        + (f"; {refused} too costly for it are shown as plain text." if refused else ".")
    )
