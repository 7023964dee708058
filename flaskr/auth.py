"""Register, log in, log out: the tutorial's views, with CSRF and modern password hashes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import TooManyRequests
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from flaskr import throttle
from flaskr.db import db
from flaskr.forms import AuthForm
from flaskr.models import User

bp = Blueprint("auth", __name__, url_prefix="/auth")

#: werkzeug's current default; hashes made with another method are upgraded at login.
HASH_METHOD = "scrypt"


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anonymous visitors to the login page, as the tutorial does."""

    @functools.wraps(view)
    def wrapped_view(**kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("auth.login"))
        return view(**kwargs)

    return wrapped_view


def is_admin(user: User | None) -> bool:
    """Admins are marked with `flask make-admin`, or named in the ADMINS setting
    (FLASKR_ADMINS='["alice"]') so a deployment can name them without a database write."""
    if user is None:
        return False
    admins = current_app.config.get("ADMINS") or []
    if isinstance(admins, str):
        admins = [admins]  # a single name, not a string to search for substrings
    return user.is_admin or user.username in admins


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the logged-in user, or None, on ``g.user`` for every request."""
    user_id = session.get("user_id")
    g.user = db.session.get(User, user_id) if isinstance(user_id, int) else None


def flash_errors(form: AuthForm) -> None:
    """Show the first error of each field as a flash message, like the tutorial."""
    for errors in form.errors.values():
        flash(errors[0], "error")


@bp.route("/register", methods=("GET", "POST"))
def register() -> tuple[str, int] | Response:
    form = AuthForm()
    if form.validate_on_submit():
        username = form.username.data
        db.session.add(User(username=username, password=generate_password_hash(form.password.data)))
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            flash(f"User {username} is already registered.", "error")
        else:
            return redirect(url_for("auth.login"))
    else:
        flash_errors(form)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/login", methods=("GET", "POST"))
def login() -> tuple[str, int] | Response:
    form = AuthForm()
    if form.validate_on_submit():
        username = form.username.data
        wait = throttle.retry_after(username)
        if wait is not None:
            raise TooManyRequests(
                f"Too many failed logins. Try again in {wait // 60} min {wait % 60} s.",
                retry_after=wait,
            )
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            flash("Incorrect username.", "error")
            throttle.record_failure(username)
        elif not check_password_hash(user.password, form.password.data):
            flash("Incorrect password.", "error")
            throttle.record_failure(username)
        else:
            throttle.clear_failures(username)
            if not user.password.startswith(HASH_METHOD + ":"):
                # The tutorial stored pbkdf2:sha256 hashes; replace them while we know the password.
                user.password = generate_password_hash(form.password.data)
            db.session.commit()
            session.clear()
            session["user_id"] = user.id
            return redirect(url_for("index"))
    else:
        flash_errors(form)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout")
def logout() -> Response:
    session.clear()
    return redirect(url_for("index"))
