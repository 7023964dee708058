"""An Atom feed of the newest posts, linked from every page's <head>."""

from __future__ import annotations

import re

from flask import Blueprint, render_template
from sqlalchemy import select

from flaskr.db import db
from flaskr.models import Post
from flaskr.page_cache import cached

bp = Blueprint("feed", __name__)

FEED_SIZE = 20
#: Characters XML 1.0 forbids. The forms refuse them, but one post written before they did, or
#: by other means, must not make the feed unreadable for every subscriber.
NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@bp.get("/feed.atom")
@cached
def atom() -> tuple[str, int, dict[str, str]]:
    posts = db.session.scalars(
        select(Post).order_by(Post.created.desc(), Post.id.desc()).limit(FEED_SIZE)
    ).all()
    updated = posts[0].created if posts else None
    body = NOT_XML.sub("", render_template("feed.xml", posts=posts, updated=updated))
    return body, 200, {"Content-Type": "application/atom+xml; charset=utf-8"}
