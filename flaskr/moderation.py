"""Moderation: an admin removes any post or comment and disables an account, from the pages
or the ``flask`` CLI. Each action is logged (logger ``flaskr``, JSON in production) with who
did it. The database triggers of migration 0006 raise the content version on each removal,
so no cached page shows removed content.
"""

from __future__ import annotations

import getpass
from typing import Any

import click
from flask import Blueprint, abort, current_app, flash, g, redirect, url_for
from flask.cli import with_appcontext
from sqlalchemy import delete
from werkzeug.wrappers import Response

from flaskr.auth import admin_required, end_sessions
from flaskr.cli import named_user
from flaskr.db import db
from flaskr.models import Comment, Post, User

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
    target = f"post {post.id} by {post.author.username}"
    db.session.delete(post)
    db.session.commit()
    record("remove-post", actor, target)


def remove_comment(comment: Comment, actor: str) -> None:
    target = f"comment {comment.id} on post {comment.post_id} by {comment.author.username}"
    db.session.execute(delete(Comment).where(Comment.id == comment.id))
    db.session.commit()
    record("remove-comment", actor, target)


def set_disabled(user: User, disabled: bool, actor: str) -> None:
    """Disable an account (its sessions end at once) or enable it again."""
    user.disabled = disabled
    if disabled:
        end_sessions(user)
    db.session.commit()
    record("disable" if disabled else "enable", actor, f"user {user.username}")


@bp.post("/post/<int:id>/remove")
@admin_required
def post(id: int) -> Response:
    found = db.session.get(Post, id) or abort(404, f"Post id {id} doesn't exist.")
    remove_post(found, g.user.username)
    flash(f"Post {id} removed.", "info")
    return redirect(url_for("blog.index"))


@bp.post("/comment/<int:id>/remove")
@admin_required
def comment(id: int) -> Response:
    found = db.session.get(Comment, id) or abort(404, f"Comment id {id} doesn't exist.")
    remove_comment(found, g.user.username)
    flash(f"Comment {id} removed.", "info")
    return redirect(url_for("blog.detail", id=found.post_id) + "#comments")


@bp.post("/user/<int:id>/<any(disable, enable):action>")
@admin_required
def user(id: int, action: str) -> Response:
    found = db.session.get(User, id) or abort(404, f"User id {id} doesn't exist.")
    if found.id == g.user.id:
        abort(400, "You cannot disable your own account.")
    set_disabled(found, action == "disable", g.user.username)
    flash(f"{found.username} is {action}d.", "info")
    return redirect(url_for("blog.index"))


def cli_actor() -> str:
    """Who ran a CLI command: the operating system's user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # pragma: no cover - a uid without a name or $USER
        return "cli"


@click.command("disable-user")
@with_appcontext
@click.argument("username")
@click.option("--enable", is_flag=True, help="Let the account log in again instead.")
def disable_user_command(username: str, enable: bool) -> None:
    """Disable an account: its sessions end at once and it cannot log in (or --enable it)."""
    found = named_user(username)
    set_disabled(found, not enable, cli_actor())
    click.echo(f"{found.username} is {'enabled' if enable else 'disabled'}.")


@click.command("remove-post")
@with_appcontext
@click.argument("post_id", type=int)
def remove_post_command(post_id: int) -> None:
    """Remove a post, with its comments, likes and image."""
    remove_post(found_or_fail(Post, post_id), cli_actor())
    click.echo(f"Removed post {post_id}.")


@click.command("remove-comment")
@with_appcontext
@click.argument("comment_id", type=int)
def remove_comment_command(comment_id: int) -> None:
    """Remove one comment."""
    remove_comment(found_or_fail(Comment, comment_id), cli_actor())
    click.echo(f"Removed comment {comment_id}.")


def found_or_fail(model: type[Post] | type[Comment], id_: int) -> Any:
    """The row, or the command fails saying it is not there."""
    found = db.session.get(model, id_)
    if found is None:
        raise click.ClickException(f"No {model.__name__.lower()} with id {id_}.")
    return found
