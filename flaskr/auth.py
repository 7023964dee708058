"""Register, log in, log out: the tutorial's views, made safe to run in public.

They add CSRF, modern password hashes, throttled guessing, answers that do not tell which
names exist, and sessions that end.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf import FlaskForm
from sqlalchemy import bindparam, select
from werkzeug.exceptions import NotFound, TooManyRequests
from werkzeug.wrappers import Response
from wtforms import Field

from flaskr import accounts, render_budget, throttle
from flaskr.db import db
from flaskr.errors import prefers_json
from flaskr.forms import LoginForm, PasswordChangeForm, RegisterForm, flash_errors
from flaskr.models import User
from flaskr.reads import first_row

bp = Blueprint("auth", __name__, url_prefix="/auth")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send anonymous visitors to the login page, as the tutorial does."""

    @functools.wraps(view)
    def wrapped_view(**kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("auth.login"))
        return view(**kwargs)

    return wrapped_view


def admin_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Admin pages answer everyone else as a page that does not exist."""

    @functools.wraps(view)
    def wrapped_view(**kwargs: Any) -> Any:
        if not accounts.is_admin(g.user):
            raise NotFound()
        if current_app.config["REQUIRE_2FA_FOR_ADMINS"] and not accounts.has_second_factor(
            account()
        ):
            flash(
                "Admin pages need a second factor on your account (an app's codes or a passkey):"
                " add one first.",
                "error",
            )
            return redirect(url_for("second_factor.enrol"))
        return view(**kwargs)

    return wrapped_view


class LoggedInUser(NamedTuple):
    """Hold what every request needs of its user (``g.user``).

    A view that changes the account loads the ``User`` row itself (``account``).
    """

    id: int
    username: str
    is_admin: bool
    session_version: int
    disabled: bool


#: Only those columns, read on the driver's connection (reads.py): loading the ORM object
#: through the session was much of what a logged-in request added to a visitor's.
LOAD_USER = select(
    User.id, User.username, User.is_admin, User.session_version, User.disabled
).where(User.id == bindparam("id"))


def account() -> User:
    """The logged-in user's row, for the views that change it."""
    return db.session.get_one(User, g.user.id)


def log_in(user: User) -> None:
    """Start a session for ``user``, bound to its current session version."""
    session.clear()
    session["user_id"] = user.id
    session["session_version"] = user.session_version


def logged_in(user: User, response: Response | None = None) -> Response:
    """Log ``user`` in, off to the index (or ``response``), this browser remembered as theirs."""
    log_in(user)
    response = response or redirect(url_for("index"))
    throttle.remember_device(response, user.username.lower(), user.password)
    return response


#: How long the code page waits for the code after the right password.
PENDING_SECONDS = 5 * 60
#: The session keys of a login waiting for its second factor: none of them logs anyone in.
PENDING_USER, PENDING_VERSION, PENDING_UNTIL = "pending_user_id", "pending_version", "pending_until"


def wait_for_code(user: User) -> Response:
    """After the right password of an account with a second factor: ask for its code.

    This session is not logged in: it only holds, for PENDING_SECONDS, which account's code
    the code page (second_factor.py) asks for, bound to the account's session version.
    """
    session.clear()
    session[PENDING_USER] = user.id
    session[PENDING_VERSION] = user.session_version
    session[PENDING_UNTIL] = int(time.time()) + PENDING_SECONDS
    return redirect(url_for("second_factor.code"))


@bp.before_app_request
def load_logged_in_user() -> None:
    """Put the logged-in user, or None, on ``g.user`` for every request.

    A session whose user is gone or disabled, or whose version was raised since, is ended here.
    """
    user_id = session.get("user_id")
    user = None
    if isinstance(user_id, int):
        row = first_row(LOAD_USER, {"id": user_id})
        user = LoggedInUser(*row) if row is not None else None
    if user is not None and (
        user.disabled or session.get("session_version") != user.session_version
    ):
        user = None
    if user is None and "user_id" in session:
        session.clear()
    g.user = user


def form_page(template: str, form: FlaskForm, **context: Any) -> tuple[str, int]:
    """The form again with its errors flashed: 400 after a POST."""
    if request.method == "POST":
        flash_errors(form)
    status = 400 if request.method == "POST" else 200
    return render_template(template, form=form, **context), status


def too_many(what: str, wait: int) -> TooManyRequests:
    """A 429 saying when to try again, in its words and in Retry-After."""
    return TooManyRequests(
        f"Too many {what}. Try again in {wait // 60} min {wait % 60} s.", retry_after=wait
    )


def begin_attempt(username: str) -> throttle.Attempt:
    """Count a password check for ``username``; a 429 when a throttle limit refuses it."""
    attempt = throttle.begin(username)
    if attempt.wait is not None:
        raise too_many("failed logins", attempt.wait)
    return attempt


def within_budget(user: User, attempt: throttle.Attempt) -> None:
    """A 429 before a password hash when the account has spent its CPU budget.

    Only the account's own logins with the right password, password changes and writes
    spend it (render_budget.py), so nobody can spend another's. A refused attempt is not a
    guess: the failure throttle forgets it.
    """
    wait = render_budget.wait(user.id)
    if wait is not None:
        throttle.forget(attempt)
        raise too_many("logins and writes on this account lately", wait)


def current_password_checked(user: User, field: Field) -> bool:
    """Whether ``field`` holds ``user``'s password, counted like a login; else says so on it.

    For the pages that change what protects the account (its address, its second factor).
    """
    attempt = begin_attempt(user.username)
    within_budget(user, attempt)
    started = time.thread_time()
    if not accounts.password_matches(user, field.data):
        field.errors = ["Current password is incorrect."]
        return False
    # A hash of CPU, as a login with the right password is: asked for without end, one
    # account used 9.9 s of CPU in 80 requests (the passkeys review).
    render_budget.charge(time.thread_time() - started, user.id)
    throttle.succeeded(attempt)
    return True


def refused_registration(form: FlaskForm, wait: int) -> Response:
    """The 429 of a throttled registration: the form again, as it was filled, with the refusal.

    The person can send it again once the wait is over. A JSON client gets the app's JSON
    error, with the same message and Retry-After.
    """
    refusal = too_many("registrations from this address or on this site", wait)
    if prefers_json():
        raise refusal
    flash(refusal.description or "", "error")
    response = make_response(render_template("auth/register.html", form=form), refusal.code)
    response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/register", methods=("GET", "POST"))
def register() -> tuple[str, int] | Response:
    """Create an account, answering a taken name as a free one.

    Both get the same answer in about the same time (the hash is made either way): the page
    does not tell who has an account. Logging in tells the person who registered, and logins
    are throttled. So are registrations, per address and for the whole site (429).
    """
    form = RegisterForm()
    if not form.validate_on_submit():
        return form_page("auth/register.html", form)
    wait = throttle.begin_registration()  # before the hash: see its docstring for what counts
    if wait is not None:
        return refused_registration(form, wait)
    username = form.username.data
    with contextlib.suppress(accounts.NameTaken):  # answered as a free name: see above
        accounts.create_user(username, form.password.data)
    flash(
        f"Now log in as {username}. If that fails, the name was taken already: register another.",
        "info",
    )
    return redirect(url_for("auth.login"))


@bp.route("/login", methods=("GET", "POST"))
def login() -> tuple[str, int] | Response:
    form = LoginForm()
    if not form.validate_on_submit():
        return form_page("auth/login.html", form)
    attempt = begin_attempt(form.username.data)
    user = accounts.find_user(form.username.data)
    if user is not None:
        within_budget(user, attempt)
    started = time.thread_time()
    if not accounts.password_matches(user, form.password.data) or user is None:
        flash("Incorrect username or password.", "error")
        return render_template("auth/login.html", form=form), 400
    # The right password: not a guess, which the failure throttle counts, but a hash of CPU
    # that one account could ask for without end (0.84 of a core, the fourth review).
    render_budget.charge(time.thread_time() - started, user.id)
    if user.disabled:
        throttle.forget(attempt)  # the password was right: not a guess
        flash("This account has been disabled by an admin.", "error")
        return render_template("auth/login.html", form=form), 403
    throttle.succeeded(attempt)
    if not accounts.hash_is_current(user.password):
        # The tutorial stored pbkdf2:sha256 hashes; replace them while we know the password.
        user.password = accounts.hash_password(form.password.data)
    db.session.commit()
    if accounts.has_second_factor(user):
        return wait_for_code(user)  # logged in, and the device remembered, after the code
    return logged_in(user)


@bp.route("/logout", methods=("GET", "POST"))
def logout() -> tuple[str, int] | Response:
    """Ask on GET; on POST, with its CSRF token, end every session of the user.

    GET only asks: the tutorial's link still leads here, and an image in someone's post must
    not log its readers out.
    """
    form = FlaskForm()
    if g.user is None:
        return redirect(url_for("index"))
    if not form.validate_on_submit():
        return render_template("auth/logout.html", form=form), 200
    accounts.end_sessions(account())
    db.session.commit()
    session.clear()
    return redirect(url_for("index"))


@bp.route("/password", methods=("GET", "POST"))
@login_required
def password() -> tuple[str, int] | Response:
    """Change the password; every other session of the user ends, this one goes on."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return form_page("auth/password.html", form)
    user = account()
    attempt = begin_attempt(user.username)
    within_budget(user, attempt)
    started = time.thread_time()
    if not accounts.password_matches(user, form.current.data):
        form.current.errors = ["Current password is incorrect."]
        return form_page("auth/password.html", form)
    throttle.succeeded(attempt)
    accounts.set_password(user, form.password.data)  # every other session ends
    render_budget.charge(time.thread_time() - started, user.id)
    db.session.commit()
    log_in(user)
    flash("Password changed. Every other session of yours has ended.", "info")
    return redirect(url_for("index"))
