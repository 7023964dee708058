"""Every ``flask`` command of the app: options and output here, the work in its own module.

The database (db.py, backup.py, copy_db.py), accounts (accounts.py, throttle.py), content
(demo.py, moderation.py). ``flask isolation`` lives with its report in flaskr/isolation/cli.py:
it also runs without the app (``python -m flaskr.isolation``).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from flaskr import accounts, backup, copy_db, demo, mail, moderation, throttle
from flaskr.bodies import render_all_stale
from flaskr.db import db, drop_all, require_schema, schema_revision, upgrade_schema
from flaskr.logs import echo
from flaskr.models import Comment, Post, User

# The database.


@click.command("init-db")
@with_appcontext
@click.option(
    "--drop", is_flag=True, help="Delete every table and all data first (asks to confirm)."
)
@click.option("--yes", is_flag=True, help="Do not ask before --drop.")
def init_db_command(drop: bool, yes: bool) -> None:
    """Create the tables, or upgrade them; existing data is kept unless --drop is given.

    Then render the posts and comments whose stored HTML another renderer made (or none).
    """
    if drop:
        if not yes:
            click.confirm("Delete every user, post and image?", abort=True)
        drop_all()
        echo("Dropped all tables.")
    echo(upgrade_schema())
    current_app.logger.debug("schema at %s", schema_revision())
    echo(render_all_stale())


@click.command("backup")
@with_appcontext
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--keep", type=click.IntRange(min=0), default=0, help="Keep the newest N; 0: all.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line instead.")
@click.option("--quiet", is_flag=True, help="No progress line.")
def backup_command(folder: Path | None, keep: int, as_json: bool, quiet: bool) -> None:
    """Write a consistent, compressed backup of the database while the site serves."""
    folder = folder or backup.backup_folder(current_app)
    summary = backup.make_backup(folder, progress=backup.progress_line(not quiet))
    removed = backup.prune(folder, keep)
    backup.emit(summary, as_json, "Backed up to")
    if removed and not as_json:
        click.echo(f"Removed {len(removed)} older backups (keeping {keep}).")


@click.command("restore")
@with_appcontext
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Restore even while the app is serving.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, nothing else.")
@click.option(
    "--shown-as",
    hidden=True,
    help="The name to print for PATH (scripts/container restores a copy of the user's file).",
)
@click.option(
    "--max-unpacked-mb",
    type=click.IntRange(min=1),
    default=backup.MAX_UNPACKED_MB,
    show_default=True,
    help="The most a compressed SQLite backup may unpack to (it stops at the free space too).",
)
@click.option(
    "--no-migrate",
    is_flag=True,
    help="Keep the backup's schema revision (to roll back to the release that made it).",
)
def restore_command(
    path: Path,
    force: bool,
    as_json: bool,
    shown_as: str | None,
    max_unpacked_mb: int,
    no_migrate: bool,
) -> None:
    """Check a backup, keep the current database aside, restore, then migrate it forward."""
    with backup.quiet_migrations():
        backup.restore(path, force, as_json, shown_as or str(path), max_unpacked_mb, no_migrate)


@click.command("copy-db")
@with_appcontext
@click.option(
    "--to",
    "target_url",
    required=True,
    help="The target database, empty and migrated: postgresql://USER@HOST/NAME, without its "
    "password (refused: every local user can read a command line).",
)
@click.option(
    "--password-file",
    metavar="FILE",
    help="A file (mode 0600) whose first line is the target's password. Else libpq's "
    "PGPASSWORD, PGPASSFILE or ~/.pgpass, else it is asked for in a terminal.",
)
def copy_db_command(target_url: str, password_file: str | None) -> None:
    """Copy every row of this site's database into an empty, migrated one, then verify."""
    copy_db.copy_database(target_url, password_file)


# Accounts.


def named_user(username: str) -> User:
    """The account called ``username`` (whatever its case), or the command fails."""
    require_schema()
    user = accounts.find_user(username)
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


def cli_actor() -> str:
    """Who ran a CLI command, for the moderation log: the operating system's user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # pragma: no cover - a uid without a name or $USER
        return "cli"


@click.command("create-user")
@with_appcontext
@click.argument("username")
@click.password_option()
def create_user_command(username: str, password: str) -> None:
    """Create a user who can log in at once."""
    require_schema()
    try:
        accounts.create_user(username, password)
    except accounts.Refused as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"Created user {username}.")


@account_command("make-admin", "--revoke", "Take the admin right away instead.")
def make_admin_command(user: User, revoke: bool) -> None:
    """Let a user see the operator pages (or stop them, with --revoke)."""
    accounts.set_admin(user, not revoke)
    click.echo(f"{user.username} is {'no longer ' if revoke else ''}an admin.")


@account_command("disable-user", "--enable", "Let the account log in again instead.")
def disable_user_command(user: User, enable: bool) -> None:
    """Disable an account: its sessions end at once and it cannot log in (or --enable it)."""
    moderation.disable_user(user, cli_actor(), enable=enable)
    click.echo(f"{user.username} is {'enabled' if enable else 'disabled'}.")


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


@click.command("remove-second-factor")
@with_appcontext
@click.argument("username")
def remove_second_factor_command(username: str) -> None:
    """Remove an account's second factor and recovery codes (its owner lost both)."""
    user = named_user(username)
    had = accounts.remove_second_factor(user)
    db.session.commit()
    if not had:
        click.echo(f"{user.username} had no second factor.")
        return
    moderation.record("remove-second-factor", cli_actor(), user.username)  # who let whom in
    click.echo(f"Removed the second factor of {user.username}: the password alone logs in.")


@click.command("set-password")
@with_appcontext
@click.argument("username")
@click.password_option()
def set_password_command(username: str, password: str) -> None:
    """Give an account a new password; every session of it ends (the owner forgot it)."""
    user = named_user(username)
    problem = accounts.password_problem(password)
    if problem is not None:
        raise click.ClickException(f"The password {problem}.")
    accounts.set_password(user, password)
    db.session.commit()
    click.echo(f"New password set for {user.username}; every session of it has ended.")


# Mail.


@click.command("send-mail")
@with_appcontext
@click.option("--once", is_flag=True, help="Send what is due now, then stop (tests, cron).")
def send_mail_command(once: bool) -> None:
    """Send the outbox's messages over SMTP, with retries; runs until stopped unless --once."""
    require_schema()
    if not mail.enabled():
        raise click.ClickException(
            "FLASKR_MAIL_URL and FLASKR_MAIL_FROM are not set: there is nowhere to send mail."
        )
    sent = mail.run(once)
    click.echo(f"Sent {sent} messages.")


# Content.


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
    user, made_with = demo.author(author, password)
    if made_with is not None:
        click.echo(f"Created user {author} with password {made_with}")
    with click.progressbar(length=posts, label="Seeding posts") as bar:
        demo.add_posts(user, posts, bar.update)
    click.echo(f"Added {posts} posts by {author}.")


def removal_command(
    model: type[Post] | type[Comment], remove: Callable[..., None]
) -> click.Command:
    """Make ``flask remove-MODEL ID``, which removes that row with ``remove``."""
    noun = model.__name__.lower()

    @click.command(f"remove-{noun}", help=remove.__doc__)
    @with_appcontext
    @click.argument("row_id", metavar=f"{noun.upper()}_ID", type=int)
    def command(row_id: int) -> None:
        found = db.session.get(model, row_id)
        if found is None:
            raise click.ClickException(f"No {noun} with id {row_id}.")
        remove(found, cli_actor())
        click.echo(f"Removed {noun} {row_id}.")

    return command


remove_post_command = removal_command(Post, moderation.remove_post)
remove_comment_command = removal_command(Comment, moderation.remove_comment)
