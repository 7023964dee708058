"""Admin commands for the ``flask`` CLI: create users, seed demo data, back up and restore."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import func, insert, select
from werkzeug.security import generate_password_hash

from flaskr.backup import backup_command, restore_command
from flaskr.db import db
from flaskr.models import Post, Tag, User, post_tag

DEMO_TAGS = ["flask", "python", "gunicorn", "containers", "systemd"]


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.password_option()
def create_user_command(username: str, password: str) -> None:
    """Create a user who can log in at once."""
    if db.session.scalar(select(User.id).where(User.username == username)) is not None:
        raise click.ClickException(f"User {username} is already registered.")
    db.session.add(User(username=username, password=generate_password_hash(password)))
    db.session.commit()
    click.echo(f"Created user {username}.")


@click.command("seed")
@with_appcontext
@click.option("--posts", default=20, show_default=True, help="How many posts to add.")
@click.option("--author", default="demo", show_default=True, help="Who writes them.")
def seed_command(posts: int, author: str) -> None:
    """Add demo posts (titles 'Post N', tagged), in batches so 100,000 take seconds."""
    user = db.session.scalar(select(User).where(User.username == author))
    if user is None:
        user = User(username=author, password=generate_password_hash(author))
        db.session.add(user)
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
                [
                    {
                        "author_id": user.id,
                        "title": f"Post {n}",
                        "body": f"Demo post number **{n}**.\n\nWritten by `flask seed`.",
                    }
                    for n in numbers
                ],
            ).all()
            db.session.execute(
                insert(post_tag),
                [{"post_id": i, "tag_id": tag_ids[i % len(tag_ids)]} for i in ids],
            )
            db.session.commit()
            bar.update(len(ids))
    click.echo(f"Added {posts} posts by {author}.")


@click.command("make-admin")
@with_appcontext
@click.argument("username")
@click.option("--revoke", is_flag=True, help="Take the admin right away instead.")
def make_admin_command(username: str, revoke: bool) -> None:
    """Let a user see the operator pages (or stop them, with --revoke)."""
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"No user named {username}.")
    user.is_admin = not revoke
    db.session.commit()
    click.echo(f"{username} is {'no longer ' if revoke else ''}an admin.")


def init_app(app: Flask) -> None:
    app.cli.add_command(make_admin_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(seed_command)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)
