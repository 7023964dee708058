"""An Atom feed of the newest posts, linked from every page's <head>.

Its size is bounded whatever users post: FEED_SIZE entries, each carrying its post's stored
HTML only when that, escaped as Atom wants it, is at most ENTRY_CONTENT_BYTES, and else a
plain-text summary of SUMMARY_CHARACTERS and the link to the post. So the page cache keeps
it like any page (flaskr/page_cache.py keeps nothing over an eighth of its budget).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint, render_template
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import undefer

from flaskr.bodies import shown
from flaskr.db import db
from flaskr.models import Post
from flaskr.page_cache import cached

bp = Blueprint("feed", __name__)

FEED_SIZE = 20
#: An entry's escaped HTML at most: longer posts get a summary and their link instead.
ENTRY_CONTENT_BYTES = 16 * 1024
SUMMARY_CHARACTERS = 500
#: Characters XML 1.0 forbids. The forms refuse them, but one post written before they did, or
#: by other means, must not make the feed unreadable for every subscriber.
NOT_XML = re.compile(r"[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass
class Entry:
    """A post as the feed carries it: ``content`` or else ``summary`` (text).

    ``content`` is the post's HTML escaped once, as Atom's ``type="html"`` carries it: the
    bytes it is measured by are the bytes the feed sends.
    """

    post: Post
    content: Markup | None
    summary: str | None


def entry(post: Post) -> Entry:
    """The post's whole HTML if it is short enough, else the start of its text."""
    content = escape(str(shown(post.body_html, post.body)))
    if len(content.encode()) <= ENTRY_CONTENT_BYTES:
        return Entry(post, content, None)
    text = " ".join(post.body[: SUMMARY_CHARACTERS * 2].split())
    if len(text) > SUMMARY_CHARACTERS:
        text = text[:SUMMARY_CHARACTERS].rsplit(" ", 1)[0] + " …"
    return Entry(post, None, text)


@bp.get("/feed.atom")
@cached()
def atom() -> tuple[str, int, dict[str, str]]:
    posts = db.session.scalars(
        select(Post)
        .options(undefer(Post.body_html))
        .order_by(Post.created.desc(), Post.id.desc())
        .limit(FEED_SIZE)
    ).all()
    updated = posts[0].created if posts else None
    entries = [entry(post) for post in posts]
    body = NOT_XML.sub("", render_template("feed.xml", entries=entries, updated=updated))
    return body, 200, {"Content-Type": "application/atom+xml; charset=utf-8"}
