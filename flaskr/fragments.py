"""Posts as listings show them, rendered once and kept while they stay the same.

Rendering the posts of a listing (header, links, tags and counts through Jinja) cost more
than the whole rest of the index page (docs/performance.md). The HTML of a listed post
depends only on what it shows (the fields of ``ListedPost``), on whether the viewer may edit
it, and on where the app is mounted, so each app keeps it under exactly those: a changed
title, a new like or comment makes another key, and the old entry ages out. Bounded in bytes
like every cache here.
"""

from __future__ import annotations

from flask import Flask, current_app, g, request
from markupsafe import Markup

from flaskr.bounded_cache import BoundedCache
from flaskr.listing import ListedPost


def listed_post(post: ListedPost) -> Markup:
    """The ``<article>`` of ``post`` in a listing (templates/blog/_listed_post.html)."""
    editable = g.user is not None and g.user.id == post.author_id
    key = (
        request.script_root,
        editable,
        post.id,
        post.title,
        post.body_html,
        post.created,
        post.author.username,
        post.likes,
        post.comments,
        post.has_image,
        *(tag.name for tag in post.tags),
    )
    rendered: BoundedCache = current_app.extensions["flaskr.posts"]
    html: Markup | None = rendered.get(key)
    if html is None:
        template = current_app.jinja_env.get_template("blog/_listed_post.html")
        # Safe to mark: the template escapes everything it puts in.
        html = Markup(template.render(post=post))  # noqa: S704  # nosec B704
        rendered.put(key, html)
    return html


def init_app(app: Flask) -> None:
    """Give templates listed_post, and the app the posts it keeps.

    Their keys hold the bodies, their values the HTML: at most POST_CACHE_BYTES in all.
    """
    app.add_template_global(listed_post)
    app.extensions["flaskr.posts"] = BoundedCache(app.config["POST_CACHE_BYTES"])
