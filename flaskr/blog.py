"""The blog: index, search, tags, a page per post, writing, likes and comments."""

from __future__ import annotations

import resource
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
)
from sqlalchemy import delete as sa_delete
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from werkzeug.wrappers import Response

from flaskr import render_budget
from flaskr.auth import login_required
from flaskr.bodies import stored
from flaskr.db import db
from flaskr.forms import CONTROL, CommentForm, PostForm, flash_errors, split_tags
from flaskr.guards import MAX_PAGE
from flaskr.images import ImageError, check_quota, read_image
from flaskr.listing import (
    SHORT_SEARCH_SCOPE,
    Listing,
    ShownComment,
    comments_of,
    everything,
    page_of,
    shown_post,
    tagged,
    titles_containing,
)
from flaskr.models import Comment, Image, Like, Post, Tag
from flaskr.page_cache import cached
from flaskr.urls import cached_url_for, on_site_url

bp = Blueprint("blog", __name__)

SEARCH_MAX = 200
#: Pages of search results: the first thousand matches. Each further page of a search read
#: more of the index to skip the ones before (tens of milliseconds deep into 100,000).
SEARCH_MAX_PAGE = 200


def render_listing(listing: Listing, query: str = "", tag: str | None = None) -> str:
    """Render the requested page of a listing (index, search or tag)."""
    page = request.args.get("page", 1, type=int)
    if not 1 <= page <= (SEARCH_MAX_PAGE if query else MAX_PAGE):
        abort(404)
    posts, more = page_of(listing, page, current_app.config["POSTS_PER_PAGE"])
    if page > 1 and not posts:
        abort(404)
    return render_template(
        "blog/index.html",
        posts=posts,
        page=page,
        prev_url=listing_path(page - 1, query, tag) if page > 1 else None,
        next_url=listing_path(page + 1, query, tag)
        if more and not (query and page == SEARCH_MAX_PAGE)
        else None,
        query=query,
        tag=tag,
        scope=SHORT_SEARCH_SCOPE if listing.kind == "short" else None,
        canonical=on_site_url(listing_path(page, query, tag)),
    )


def listing_path(page: int, query: str, tag: str | None) -> str:
    """A page of a listing at its one address: /tag/<lowercase name>, no ?page=1, no 01.

    Built through the links the templates keep (urls.py): routing was 6 % of a logged-in index.
    """
    args: dict[str, Any] = {"q": query} if query else {}
    if page > 1:
        args["page"] = page
    if tag is not None:
        return cached_url_for("blog.tag", name=tag, **args)
    return cached_url_for("blog.index", **args)


@bp.route("/")
@cached("q", "page")
def index() -> str:
    """All posts, or those whose title holds ``q``, five a page."""
    query = CONTROL.sub("", request.args.get("q", "")).strip()[:SEARCH_MAX]
    return render_listing(titles_containing(query) if query else everything(), query=query)


@bp.route("/tag/<string:name>")
@cached("page")
def tag(name: str) -> str:
    """The posts carrying one tag."""
    name = name.lower()
    tag_id = db.session.scalar(select(Tag.id).where(Tag.name == name))
    if tag_id is None:
        abort(404)
    return render_listing(tagged(tag_id), tag=name)


def get_post(id: int, check_author: bool = True) -> Post:
    """The post ``id``: 404 when it does not exist, 403 when it is not the user's own."""
    post = db.session.get(Post, id)
    if post is None:
        abort(404, f"Post id {id} doesn't exist.")
    if check_author and post.author_id != g.user.id:
        abort(403)
    return post


@bp.route("/<int:id>")
@cached("comments")
def detail(id: int) -> Any:
    # No form: the empty comment box is rendered once (fragments.comment_box), and visitors
    # get none, since building one makes a CSRF token, and so a session, for nothing.
    return render_post(id, None)


def render_post(post_id: int, comment_form: CommentForm | None, status: int = 200) -> Any:
    """A post's page: the post, its likes and image in one read, then a page of comments."""
    shown = shown_post(post_id, g.user.id if g.user is not None else None)
    if shown is None:
        abort(404, f"Post id {post_id} doesn't exist.")
    post, liked, image = shown
    comments, older_url, newer_url = page_of_comments(post.id)
    page = render_template(
        "blog/detail.html",
        post=post,
        likes=post.likes,
        liked=liked,
        comments=comments,
        older_url=older_url,
        newer_url=newer_url,
        image=image,
        form=comment_form,
        canonical=on_site_url(
            cached_url_for("blog.detail", id=post.id, **comments_arg(comments_page()))
        ),
    )
    return page, status


def comments_page() -> int:
    """The page of comments asked for, ``?comments=N``, 1 the newest."""
    return request.args.get("comments", 1, type=int)


def comments_arg(n: int) -> dict[str, Any]:
    """The query argument that picks page ``n`` of comments: none for the first."""
    return {"comments": n} if n > 1 else {}


def page_of_comments(post_id: int) -> tuple[list[ShownComment], str | None, str | None]:
    """Give one page of a post's comments and the links to older and newer pages.

    ``?comments=N`` picks the page, 1 the newest; comments are oldest first within it. A
    request renders COMMENTS_PER_PAGE comments however many the post has.
    """
    page = comments_page()
    if not 1 <= page <= MAX_PAGE:
        abort(404)
    per_page = current_app.config["COMMENTS_PER_PAGE"]
    rows = comments_of(post_id, (page - 1) * per_page, per_page + 1)
    if page > 1 and not rows:
        abort(404)

    def url(n: int) -> str:
        return cached_url_for("blog.detail", id=post_id, **comments_arg(n))

    older = url(page + 1) + "#comments" if len(rows) > per_page else None
    newer = url(page - 1) + "#comments" if page > 1 else None
    return list(reversed(rows[:per_page])), older, newer


def insert_or_ignore(model: type[Tag] | type[Like], rows: list[dict[str, Any]]) -> None:
    """Insert ``rows``, leaving out those a unique key already holds: two writers may race."""
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    db.session.execute(insert(model).values(rows).on_conflict_do_nothing())


def tags_named(names: list[str]) -> list[Tag]:
    """The Tag rows for ``names``, creating missing ones; safe when two writers race.

    Most tags exist already: they are read first, and only missing ones are inserted, so a
    write that names known tags takes SQLite's write lock at its own flush, not here.
    """
    if not names:
        return []
    tags = db.session.scalars(select(Tag).where(Tag.name.in_(names))).all()
    if len(tags) < len(names):
        insert_or_ignore(Tag, [{"name": n} for n in names])
        tags = db.session.scalars(select(Tag).where(Tag.name.in_(names))).all()
    return sorted(tags, key=lambda t: names.index(t.name))


def save_post(form: PostForm, post: Post) -> str | None:
    """Copy a valid form onto ``post``; return an error message for a bad image instead."""
    upload = form.image.data
    image = None
    if upload is not None and upload.filename:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        refused: str | None = None
        try:
            check_quota(g.user.id, post.id)
            image = read_image(upload)
        except ImageError as e:
            refused = str(e)
            form.image.errors = [refused]
        finally:  # the re-encoder's CPU, refused or not, is the user's too
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            render_budget.charge(
                after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime,
                commit=False,
            )
        if refused is not None:
            db.session.commit()  # nothing is saved but what the body and image cost
            return refused
    post.title = form.title.data
    stored(post, form.body)
    post.tags = tags_named(split_tags(form.tags.data))
    if image is not None:
        if post.id is not None:
            db.session.execute(sa_delete(Image).where(Image.post_id == post.id))
        image.post = post
        db.session.add(image)
    db.session.add(post)
    db.session.commit()
    return None


def validated(form: PostForm | CommentForm, saving: bool = False) -> bool:
    """Validate a sent form, which renders its body, and charge the user for the render.

    ``saving``: a valid form is written next, and its commit carries the charge.
    """
    valid = bool(form.validate())
    render_budget.charge(form.body.cost, commit=not (valid and saving))
    return valid


def too_busy(wait: int, form: PostForm, template: str, **context: Any) -> Any:
    """Refuse a write or preview over the user's budget: 429, and the form as it was typed."""
    flash(render_budget.refusal(wait), "error")
    return render_template(template, form=form, **context), 429, {"Retry-After": str(wait)}


def form_failed(form: PostForm, template: str, **context: Any) -> tuple[str, int]:
    """Show the form again with what was typed, each error flashed, and a 400 status."""
    flash_errors(form)
    return render_template(template, form=form, **context), 400


def preview(form: PostForm, template: str, **context: Any) -> Any:
    """Show the form again with its Markdown rendered above it; nothing is saved.

    Errors show as they would on saving, so a preview also tells what still needs fixing.
    """
    if not validated(form):
        # A body refused (too long, or too costly to render) is not rendered here either.
        return form_failed(form, template, preview=form.body.html, **context)
    return render_template(template, form=form, preview=form.body.html, **context)


def wants_preview() -> bool:
    """The form was sent with its Preview button (name="preview"), not Save."""
    return request.method == "POST" and "preview" in request.form


@bp.route("/create", methods=("GET", "POST"))
@login_required
def create() -> Any:
    form = PostForm()
    if request.method == "POST" and (wait := render_budget.wait()) is not None:
        return too_busy(wait, form, "blog/create.html")
    if wants_preview():
        return preview(form, "blog/create.html")
    if request.method == "POST" and validated(form, saving=True):
        if save_post(form, Post(author_id=g.user.id)) is None:
            return redirect(cached_url_for("blog.index"))
    elif request.method == "GET":
        return render_template("blog/create.html", form=form)
    return form_failed(form, "blog/create.html")


@bp.route("/<int:id>/update", methods=("GET", "POST"))
@login_required
def update(id: int) -> Any:
    post = get_post(id)
    form = PostForm(obj=post)
    if request.method == "GET":
        form.tags.data = ", ".join(t.name for t in post.tags)
        return render_template("blog/update.html", form=form, post=post)
    if (wait := render_budget.wait()) is not None:
        return too_busy(wait, form, "blog/update.html", post=post)
    if wants_preview():
        return preview(form, "blog/update.html", post=post)
    if validated(form, saving=True) and save_post(form, post) is None:
        return redirect(cached_url_for("blog.index"))
    return form_failed(form, "blog/update.html", post=post)


@bp.route("/<int:id>/delete", methods=("POST",))
@login_required
def delete(id: int) -> Response:
    post = get_post(id)
    db.session.delete(post)
    db.session.commit()
    return redirect(cached_url_for("blog.index"))


@bp.route("/<int:id>/like", methods=("POST",))
@login_required
def like(id: int) -> Response:
    """Like a post, or unlike it when the user already does."""
    post = get_post(id, check_author=False)
    existing = db.session.get(Like, (g.user.id, post.id))
    if existing is None:
        insert_or_ignore(Like, [{"user_id": g.user.id, "post_id": post.id}])
    else:
        db.session.delete(existing)
    db.session.commit()
    return redirect(cached_url_for("blog.detail", id=post.id))


@bp.route("/<int:id>/comment", methods=("POST",))
@login_required
def comment(id: int) -> Any:
    post = get_post(id, check_author=False)
    form = CommentForm()
    if (wait := render_budget.wait()) is not None:
        flash(render_budget.refusal(wait), "error")
        page, _ = render_post(post.id, form)
        return page, 429, {"Retry-After": str(wait)}
    if not validated(form, saving=True):
        flash_errors(form)
        return render_post(post.id, form, status=400)
    comment = Comment(post_id=post.id, author_id=g.user.id)
    stored(comment, form.body)
    db.session.add(comment)
    db.session.commit()
    return redirect(cached_url_for("blog.detail", id=post.id) + "#comments")
