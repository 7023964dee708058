"""Parts of pages shared by their viewers, rendered once and kept while they stay the same.

Rendering the posts of a listing (header, links, tags and counts through Jinja) cost more
than the whole rest of the index page (docs/performance.md). The HTML of a listed post
depends only on what it shows (the fields of ``ListedPost``), on whether the viewer may edit
it, and on where the app is mounted, so each app keeps it under exactly those: a changed
title, a new like or comment makes another key, and the old entry ages out. Bounded in bytes
like every cache here.

A post's own page is built the same way for logged-in readers, whom the page cache never
serves: the post and its page of comments are kept under what they show (an admin's, with
buttons that carry the admin's CSRF token, are rendered each time), and what is the
viewer's own (their like, their token, the comment box) is rendered around them.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from flask import Flask, current_app, g, request
from markupsafe import Markup

from flaskr.bounded_cache import BoundedCache
from flaskr.forms import CommentForm
from flaskr.listing import ImageSize, ListedPost, ShownComment


def _post_key(post: ListedPost) -> tuple[Hashable, ...]:
    """What a post's header and body show, and where the app is mounted.

    Any of it changed makes another key (templates/blog/_post_header.html shows most of it).
    """
    editable = g.user is not None and g.user.id == post.author_id
    return (
        request.script_root,
        editable,
        post.id,
        post.title,
        post.body_html,
        post.created,
        post.author.username,
        tuple(tag.name for tag in post.tags),
    )


def listed_post(post: ListedPost) -> Markup:
    """The ``<article>`` of ``post`` in a listing (templates/blog/_listed_post.html)."""
    key = ("listed", *_post_key(post), post.likes, post.comments, post.has_image)
    return kept(key, "blog/_listed_post.html", post=post)


def post_article(post: ListedPost, image: ImageSize | None) -> Markup:
    """The ``<article>`` of ``post`` on its own page (templates/blog/_post_article.html)."""
    if g.user is not None and g.user.is_admin:
        return rendered("blog/_post_article.html", post=post, image=image)
    return kept(
        ("article", *_post_key(post), image), "blog/_post_article.html", post=post, image=image
    )


def comment_list(comments: list[ShownComment]) -> Markup:
    """A page of a post's comments (templates/blog/_comments.html)."""
    if g.user is not None and g.user.is_admin:
        return rendered("blog/_comments.html", comments=comments)
    key = (
        "comments",
        request.script_root,
        *((c.id, c.created, c.author.username, c.body_html) for c in comments),
    )
    return kept(key, "blog/_comments.html", comments=comments)


def comment_box(form: CommentForm | None) -> Markup:
    """The comment form's text box: ``form``'s as sent (typed text, errors), or an empty one.

    The empty one is the same for every viewer and is rendered once per app: building a
    form to show it, and rendering its field, was about a quarter of a logged-in post page.
    """
    extensions = current_app.extensions
    if form is None and "flaskr.comment_box" in extensions:
        return extensions["flaskr.comment_box"]  # type: ignore[no-any-return]
    field = current_app.jinja_env.get_template("_field.html").module.field  # type: ignore[attr-defined]
    shown = form or CommentForm(formdata=None, meta={"csrf": False})
    box: Markup = field(shown.body, required=True, rows=4, maxlength=2000)
    if form is None:
        extensions["flaskr.comment_box"] = box
    return box


def rendered(template: str, **context: Any) -> Markup:
    """``template`` rendered with ``context``; safe to mark: templates escape what they put in."""
    return Markup(current_app.jinja_env.get_template(template).render(**context))  # noqa: S704  # nosec B704


def kept(key: Hashable, template: str, **context: Any) -> Markup:
    """``template`` rendered with ``context``, kept under ``key`` (every field it shows)."""
    cache: BoundedCache = current_app.extensions["flaskr.posts"]
    html: Markup | None = cache.get(key)
    if html is None:
        html = rendered(template, **context)
        cache.put(key, html)
    return html


def init_app(app: Flask) -> None:
    """Give templates the fragments above, and the app the fragments it keeps.

    Their keys hold the bodies, their values the HTML: at most POST_CACHE_BYTES in all.
    """
    for fragment in (listed_post, post_article, comment_list, comment_box):
        app.add_template_global(fragment)
    app.extensions["flaskr.posts"] = BoundedCache(app.config["POST_CACHE_BYTES"])
