"""Moderation: an admin removes any post or comment and disables an account.

From the pages or the ``flask`` CLI (commands.py). Each action is logged (logger ``flaskr``, JSON in
production) with who did it. The database triggers of migration 0006 raise the content
version on each removal, so no cached page shows removed content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, abort, current_app, flash, g, redirect, url_for
from sqlalchemy import delete
from werkzeug.wrappers import Response

from flaskr import accounts
from flaskr.auth import admin_required
from flaskr.db import db
from flaskr.models import Comment, Post, User

Row = TypeVar("Row", Post, Comment)

#: Its forms carry nothing but the CSRF token that CSRFProtect checks on every POST.
bp = Blueprint("moderation", __name__, url_prefix="/admin")


def record(action: str, actor: str, target: str) -> None:
    """One log line per moderation action: what, by whom, to what."""
    current_app.logger.warning(
        "moderation: %s %s by %s",
        action,
        target,
        actor,
        extra={"moderation": action, "actor": actor, "target": target},
    )


def remove_post(post: Post, actor: str) -> None:
    """Remove a post, with its comments, likes and image."""
    target = f"post {post.id} by {post.author.username}"
    db.session.delete(post)
    db.session.commit()
    record("remove-post", actor, target)


def remove_comment(comment: Comment, actor: str) -> None:
    """Remove one comment."""
    target = f"comment {comment.id} on post {comment.post_id} by {comment.author.username}"
    db.session.execute(delete(Comment).where(Comment.id == comment.id))
    db.session.commit()
    record("remove-comment", actor, target)


def disable_user(user: User, actor: str, enable: bool = False) -> None:
    """Disable an account (accounts.py: its sessions end) or enable it again, and log it."""
    accounts.set_disabled(user, not enable)
    record("enable" if enable else "disable", actor, f"user {user.username}")


def remove_for_admin(model: type[Row], id: int, remove: Callable[[Row, str], None]) -> Row:
    """Remove row ``id`` of ``model`` as the logged-in admin and tell them; a 404 if missing."""
    name = model.__name__
    found = db.session.get(model, id) or abort(404, f"{name} id {id} doesn't exist.")
    remove(found, g.user.username)
    flash(f"{name} {id} removed.", "info")
    return found


@bp.post("/post/<int:id>/remove")
@admin_required
def post(id: int) -> Response:
    """Remove a post from its page."""
    remove_for_admin(Post, id, remove_post)
    return redirect(url_for("blog.index"))


@bp.post("/comment/<int:id>/remove")
@admin_required
def comment(id: int) -> Response:
    """Remove a comment, back to the comments of its post."""
    found = remove_for_admin(Comment, id, remove_comment)
    return redirect(url_for("blog.detail", id=found.post_id) + "#comments")


@bp.post("/user/<int:id>/<any(disable, enable):action>")
@admin_required
def user(id: int, action: str) -> Response:
    found = db.session.get(User, id) or abort(404, f"User id {id} doesn't exist.")
    if found.id == g.user.id:
        abort(400, "You cannot disable your own account.")
    disable_user(found, g.user.username, enable=action == "enable")
    flash(f"{found.username} is {action}d.", "info")
    return redirect(url_for("blog.index"))
