"""Pages of posts for the index, search and tag listings, at a cost the posts do not grow.

Every listing is newest first by post id (ids only grow, and the primary key, the tag index
and the search index all hand them out in that order), so a page reads its own rows and
stops: no listing sorts or counts all matching posts. Each page costs one query whatever
its size: the posts with their authors, counts and tags. The statements are built
once and take the page's values as parameters, and rows stay plain values rather than ORM
objects; docs/performance.md has the profile that asked for both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from flask import current_app
from markupsafe import Markup
from sqlalchemy import (
    Integer,
    Select,
    bindparam,
    case,
    column,
    exists,
    func,
    inspect,
    literal_column,
    select,
    table,
)

from flaskr.bodies import shown
from flaskr.db import db
from flaskr.models import Comment, Image, Like, Post, Tag, User, post_tag

POST = Post.__table__
#: Migration 0005's FTS5 trigram index of post titles, rowid = -post.id (SQLite only).
POST_SEARCH = table("post_search", column("rowid", Integer))
#: Trigrams: a shorter search cannot use the index and scans titles instead.
INDEXED_SEARCH_MIN = 3
#: The newest posts whose titles a search shorter than INDEXED_SEARCH_MIN looks through.
SHORT_SEARCH_SCOPE = 10_000


class Author(NamedTuple):
    username: str


class TagName(NamedTuple):
    name: str


class PostAuthor(NamedTuple):
    """A post's author on its own page, where an admin may disable or enable the account."""

    username: str
    id: int
    disabled: bool


class ShownComment(NamedTuple):
    """A comment as a post's page shows it (the template reads it like a ``Comment``)."""

    id: int
    created: datetime
    author: PostAuthor
    body_html: Markup


class ImageSize(NamedTuple):
    width: int
    height: int


@dataclass(slots=True)
class ListedPost:
    """What a listing shows of a post (the templates read it like a ``Post``)."""

    id: int
    title: str
    body_html: Markup
    created: datetime
    author_id: int
    author: Author | PostAuthor
    likes: int
    comments: int
    has_image: bool
    tags: list[TagName] = field(default_factory=list)


class Listing(NamedTuple):
    """Which posts a listing holds: a kind of statement and its parameters."""

    kind: str
    params: dict[str, Any]


def everything() -> Listing:
    return Listing("index", {})


def tagged(tag_id: int) -> Listing:
    return Listing("tag", {"tag_id": tag_id})


def titles_containing(text: str) -> Listing:
    """Posts whose title contains ``text``, any case; ``%`` and ``_`` are plain characters.

    A text shorter than a trigram can use no index: it is looked for in the titles of the
    newest SHORT_SEARCH_SCOPE posts only, so its cost does not grow with the site (60 ms of
    CPU a page at 100,000 posts, before).
    """
    if len(text) >= INDEXED_SEARCH_MIN and has_title_index():
        return Listing("match", {"match": '"' + text.replace('"', '""') + '"'})
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    kind = "like" if len(text) >= INDEXED_SEARCH_MIN else "short"
    return Listing(kind, {"pattern": f"%{escaped}%"})


def has_title_index() -> bool:
    """Tell whether migration 0005 could build the SQLite FTS5 index.

    PostgreSQL's pg_trgm index serves the plain ILIKE, so it needs no other statement.
    """
    extensions = current_app.extensions
    if "flaskr.title_index" not in extensions:
        engine = db.engine
        extensions["flaskr.title_index"] = engine.dialect.name == "sqlite" and inspect(
            engine
        ).has_table("post_search")
    return bool(extensions["flaskr.title_index"])


def _post_ids(kind: str) -> Select[Any]:
    """The ids of a listing's posts, newest first, in the order an index yields them."""
    if kind == "tag":
        post_id = post_tag.c.post_id
        return (
            select(post_id).where(post_tag.c.tag_id == bindparam("tag_id")).order_by(post_id.desc())
        )
    if kind == "match":  # rowids are negated ids (migration 0005): ascending is newest first
        match = literal_column("post_search").op("MATCH")(bindparam("match"))
        return select(-POST_SEARCH.c.rowid).where(match).order_by(POST_SEARCH.c.rowid)
    ids = select(POST.c.id).order_by(POST.c.id.desc())
    if kind == "like":
        return ids.where(POST.c.title.ilike(bindparam("pattern"), escape="\\"))
    if kind == "short":
        recent = select(POST.c.id, POST.c.title).order_by(POST.c.id.desc())
        newest = recent.limit(SHORT_SEARCH_SCOPE).subquery()
        return (
            select(newest.c.id)
            .where(newest.c.title.ilike(bindparam("pattern"), escape="\\"))
            .order_by(newest.c.id.desc())
        )
    return ids


def _count(model: Any) -> Any:
    return select(func.count()).where(model.post_id == POST.c.id).correlate(POST).scalar_subquery()


TAG = Tag.__table__
#: Tag names hold letters, digits, '-' and '_' only (forms.TAG_PATTERN): a space separates them.
TAG_SEPARATOR = " "


def _tag_names() -> Any:
    """A post's tag names in one string (group_concat on SQLite, string_agg on PostgreSQL)."""
    return (
        select(func.aggregate_strings(TAG.c.name, TAG_SEPARATOR))
        .select_from(post_tag.join(TAG, TAG.c.id == post_tag.c.tag_id))
        .where(post_tag.c.post_id == POST.c.id)
        .correlate(POST)
        .scalar_subquery()
    )


def _shown(user: Any) -> tuple[Any, ...]:
    """What a post shows wherever it is: its fields, its author's name, its counts and tags."""
    return (
        POST.c.id,
        POST.c.title,
        POST.c.body_html,
        # The text only when it has no HTML stored (shown as plain text): it is not shown else.
        case((POST.c.body_html.is_(None), POST.c.body)).label("body"),
        POST.c.created,
        POST.c.author_id,
        user.c.username,
        _count(Like).label("likes"),
        _count(Comment).label("comments"),
        _tag_names().label("tags"),
    )


@cache
def page_statement(kind: str) -> Select[Any]:
    page_ids = _post_ids(kind).offset(bindparam("offset")).limit(bindparam("limit"))
    user = User.__table__
    return (
        select(
            *_shown(user),
            exists().where(Image.post_id == POST.c.id).correlate(POST).label("has_image"),
        )
        .join(user, user.c.id == POST.c.author_id)
        .where(POST.c.id.in_(page_ids.scalar_subquery()))
        .order_by(POST.c.id.desc())
    )


def page_of(listing: Listing, page: int, per_page: int) -> tuple[list[ListedPost], bool]:
    """Return page ``page`` (from 1) of the listing, and whether another page follows.

    Read on a pooled connection of its own: setting up and tearing down the ORM session cost
    more than the query, and a listing only reads.
    """
    params = {**listing.params, "offset": (page - 1) * per_page, "limit": per_page + 1}
    with db.engine.connect() as connection:
        rows = connection.execute(page_statement(listing.kind), params).all()
    posts = [
        ListedPost(
            id,
            title,
            shown(html, body),
            created,
            author_id,
            Author(username),
            likes,
            comments,
            has_image,
            tag_names(tags),
        )  # fmt: skip
        for (
            id,
            title,
            html,
            body,
            created,
            author_id,
            username,
            likes,
            comments,
            tags,
            has_image,
        ) in rows[:per_page]  # fmt: skip
    ]
    return posts, len(rows) > per_page


def tag_names(tags: str | None) -> list[TagName]:
    """The tags of an aggregated ``_tag_names()`` string, in name order."""
    return [TagName(name) for name in sorted(tags.split(TAG_SEPARATOR))] if tags else []


@cache
def post_statement() -> Select[Any]:
    """One post as its page shows it, and what the viewer sees of it.

    That is whether they like it (``user`` is NULL for a visitor, whom no like matches) and
    its image's size.
    """
    user = User.__table__
    image = Image.__table__
    return (
        select(
            *_shown(user),
            user.c.disabled,
            exists()
            .where(Like.post_id == POST.c.id, Like.user_id == bindparam("user"))
            .correlate(POST)
            .label("liked"),
            image.c.width,
            image.c.height,
        )
        .join(user, user.c.id == POST.c.author_id)
        .outerjoin(image, image.c.post_id == POST.c.id)
        .where(POST.c.id == bindparam("id"))
    )


def shown_post(id: int, user_id: int | None) -> tuple[ListedPost, bool, ImageSize | None] | None:
    """Give the post ``id`` for its page, whether ``user_id`` likes it, and its image's size.

    None when there is no such post. One read, on a pooled connection of its own like a page.
    """
    with db.engine.connect() as connection:
        row = connection.execute(post_statement(), {"id": id, "user": user_id}).first()
    if row is None:
        return None
    (id, title, html, body, created, author_id, username, likes, comments, tags, disabled, liked,
     width, height) = row  # fmt: skip
    post = ListedPost(
        id, title, shown(html, body), created, author_id,
        PostAuthor(username, author_id, disabled), likes, comments, width is not None,
        tag_names(tags),
    )  # fmt: skip
    return post, bool(liked), ImageSize(width, height) if width is not None else None


@cache
def comments_statement() -> Select[Any]:
    """A page of a post's comments with their authors, newest first."""
    comment = Comment.__table__
    user = User.__table__
    return (
        select(
            comment.c.id,
            comment.c.created,
            comment.c.body_html,
            case((comment.c.body_html.is_(None), comment.c.body)).label("body"),
            user.c.username,
            user.c.id,
            user.c.disabled,
        )
        .join(user, user.c.id == comment.c.author_id)
        .where(comment.c.post_id == bindparam("post"))
        .order_by(comment.c.id.desc())
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


def comments_of(post_id: int, offset: int, limit: int) -> list[ShownComment]:
    """Up to ``limit`` of the post's comments after the newest ``offset``, newest first.

    Read as plain rows on a pooled connection of its own, like the post: through the ORM
    session, a page of comments cost more than the rest of the post's page, even with none.
    """
    params = {"post": post_id, "offset": offset, "limit": limit}
    with db.engine.connect() as connection:
        rows = connection.execute(comments_statement(), params).all()
    return [
        ShownComment(id, created, PostAuthor(username, author_id, disabled), shown(html, body))
        for id, created, html, body, username, author_id, disabled in rows
    ]
