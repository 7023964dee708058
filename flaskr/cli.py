"""Admin commands for the ``flask`` CLI: create users, make admins, seed demo data."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from functools import cache

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import func, insert, select
from werkzeug.security import generate_password_hash

from flaskr import throttle
from flaskr.auth import find_user
from flaskr.bodies import rendered_mark
from flaskr.db import db, require_schema
from flaskr.forms import PASSWORD_MAX, PASSWORD_MIN, USERNAME_MAX, USERNAME_PATTERN
from flaskr.models import Post, Tag, User, post_tag
from flaskr.rendering import render

DEMO_TAGS = ["flask", "python", "gunicorn", "containers", "systemd"]


def named_user(username: str) -> User:
    """The account called ``username`` (whatever its case), or the command fails."""
    require_schema()
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"No user named {username}.")
    return user


def account_command(
    name: str, flag: str, flag_help: str
) -> Callable[[Callable[[User, bool], None]], click.Command]:
    """Make ``flask NAME USERNAME [FLAG]`` of a function given the account and the flag."""

    def make(apply: Callable[[User, bool], None]) -> click.Command:
        @click.command(name, help=apply.__doc__)
        @with_appcontext
        @click.argument("username")
        @click.option(flag, "flag", is_flag=True, help=flag_help)
        def command(username: str, flag: bool) -> None:
            apply(named_user(username), flag)

        return command

    return make


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.password_option()
def create_user_command(username: str, password: str) -> None:
    """Create a user who can log in at once."""
    require_schema()
    if len(username) > USERNAME_MAX or not USERNAME_PATTERN.match(username):
        raise click.ClickException(
            f"A username is 1 to {USERNAME_MAX} of A-Z, a-z, 0-9, '.', '-' and '_'."
        )
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise click.ClickException(f"A password is {PASSWORD_MIN} to {PASSWORD_MAX} characters.")
    if find_user(username) is not None:
        raise click.ClickException(f"User {username} is already registered.")
    db.session.add(User(username=username, password=generate_password_hash(password)))
    db.session.commit()
    click.echo(f"Created user {username}.")


@click.command("seed")
@with_appcontext
@click.option(
    "--posts", default=20, show_default=True, type=click.IntRange(1), help="How many posts to add."
)
@click.option("--author", default="demo", show_default=True, help="Who writes them.")
@click.option("--password", help="The author's password if new (default: random, printed).")
@click.option("--force", is_flag=True, help="Seed although the app is not in debug mode.")
def seed_command(posts: int, author: str, password: str | None, force: bool) -> None:
    """Add demo posts (titles 'Post N', tagged), in batches so 100,000 take seconds."""
    if not (current_app.debug or force):
        # The demo author can log in: on a real site that is an account nobody asked for.
        raise click.ClickException(
            "seed adds demo posts by a user who can log in, so it runs in debug mode only "
            "(flask --app flaskr --debug seed) or with --force."
        )
    require_schema()
    user = db.session.scalar(select(User).where(User.username == author))
    if user is None:
        password = password or secrets.token_urlsafe(12)
        user = User(username=author, password=generate_password_hash(password))
        db.session.add(user)
        click.echo(f"Created user {author} with password {password}")
    for name in DEMO_TAGS:
        if db.session.scalar(select(Tag.id).where(Tag.name == name)) is None:
            db.session.add(Tag(name=name))
    db.session.commit()
    tag_ids = db.session.scalars(select(Tag.id).where(Tag.name.in_(DEMO_TAGS))).all()
    start = db.session.scalar(select(func.count()).select_from(Post)) or 0
    batch = 5_000
    with click.progressbar(length=posts, label="Seeding posts") as bar:
        for first in range(start + 1, start + posts + 1, batch):
            numbers = range(first, min(first + batch, start + posts + 1))
            ids = db.session.scalars(
                insert(Post).returning(Post.id, sort_by_parameter_order=True),
                [{"author_id": user.id, "title": f"Post {n}", **demo_body(n)} for n in numbers],
            ).all()
            db.session.execute(
                insert(post_tag),
                [{"post_id": i, "tag_id": tag_ids[i % len(tag_ids)]} for i in ids],
            )
            db.session.commit()
            bar.update(len(ids))
    click.echo(f"Added {posts} posts by {author}.")


#: Every demo post's body, its number put in for N: rendered once, not once per post.
DEMO_BODY = "Demo post number **N**.\n\nWritten by `flask seed`."


@cache
def demo_html() -> str:
    return str(render(DEMO_BODY))


def demo_body(n: int) -> dict[str, str]:
    """The body of demo post ``n`` and its HTML, as a form would have stored them."""
    return {
        "body": DEMO_BODY.replace("**N**", f"**{n}**"),
        "body_html": demo_html().replace("<strong>N</strong>", f"<strong>{n}</strong>"),
        "rendered_with": rendered_mark(),
    }


@account_command("make-admin", "--revoke", "Take the admin right away instead.")
def make_admin_command(user: User, revoke: bool) -> None:
    """Let a user see the operator pages (or stop them, with --revoke)."""
    user.is_admin = not revoke
    db.session.commit()
    click.echo(f"{user.username} is {'no longer ' if revoke else ''}an admin.")


@click.command("clear-login-failures")
@with_appcontext
@click.argument("username")
def clear_login_failures_command(username: str) -> None:
    """Forget the failed logins counted against an account, so its owner can log in at once.

    From any browser, a new one too, while strangers' guesses hold the account's limit.
    """
    user = named_user(username)
    cleared = throttle.clear_failures(user.username)
    click.echo(f"Forgot {cleared} failed logins counted against {user.username}.")
