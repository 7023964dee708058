"""Demo posts for a development site (``flask seed``): tagged, by one author, many at once."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import cache

from sqlalchemy import func, insert, select

from flaskr.accounts import hash_password
from flaskr.bodies import rendered_mark
from flaskr.db import db
from flaskr.models import Post, Tag, User, post_tag
from flaskr.rendering import render

TAGS = ["flask", "python", "gunicorn", "containers", "systemd"]
#: Every demo post's body, its number put in for N: rendered once, not once per post.
BODY = "Demo post number **N**.\n\nWritten by `flask seed`."
#: Posts per INSERT: 100,000 posts take seconds, not minutes.
BATCH = 5_000


def author(username: str, password: str | None) -> tuple[User, str | None]:
    """The author called ``username``, and the password it was made with if it is new.

    A new one gets ``password``, else a random one. No account rule applies: the demo
    author only exists on a site in debug mode, or one whose operator forced it.
    """
    user = db.session.scalar(select(User).where(User.username == username))
    if user is not None:
        return user, None
    password = password or secrets.token_urlsafe(12)
    user = User(username=username, password=hash_password(password))
    db.session.add(user)
    return user, password


@cache
def demo_html() -> str:
    return str(render(BODY))


def demo_body(n: int) -> dict[str, str]:
    """The body of demo post ``n`` and its HTML, as a form would have stored them."""
    return {
        "body": BODY.replace("**N**", f"**{n}**"),
        "body_html": demo_html().replace("<strong>N</strong>", f"<strong>{n}</strong>"),
        "rendered_with": rendered_mark(),
    }


def add_posts(user: User, count: int, progress: Callable[[int], None]) -> None:
    """Add ``count`` posts by ``user``, numbered on from the posts there are, then commit.

    ``progress`` is told how many each batch added.
    """
    for name in TAGS:
        if db.session.scalar(select(Tag.id).where(Tag.name == name)) is None:
            db.session.add(Tag(name=name))
    db.session.commit()
    tag_ids = db.session.scalars(select(Tag.id).where(Tag.name.in_(TAGS))).all()
    start = db.session.scalar(select(func.count()).select_from(Post)) or 0
    for first in range(start + 1, start + count + 1, BATCH):
        numbers = range(first, min(first + BATCH, start + count + 1))
        ids = db.session.scalars(
            insert(Post).returning(Post.id, sort_by_parameter_order=True),
            [{"author_id": user.id, "title": f"Post {n}", **demo_body(n)} for n in numbers],
        ).all()
        db.session.execute(
            insert(post_tag),
            [{"post_id": i, "tag_id": tag_ids[i % len(tag_ids)]} for i in ids],
        )
        db.session.commit()
        progress(len(ids))
