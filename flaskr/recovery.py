"""Mail about an account: a forgotten password, and an e-mail address to confirm.

Each view writes its message to the outbox in its own transaction (mail.py); nothing here
talks to an SMTP server. The answers tell nobody whether a name or address exists: asking
for a reset always ends on the login page with the same message. Requests that may send
mail are counted (throttle.begin_mail), so nobody can make the site send mail without bound.
"""

from __future__ import annotations

import functools

from flask import Blueprint, current_app, flash, redirect, render_template, session, url_for
from flask_wtf import FlaskForm
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from flaskr import accounts, mail, throttle
from flaskr.auth import (
    account,
    current_password_checked,
    form_page,
    log_in,
    login_required,
    too_many,
)
from flaskr.db import db
from flaskr.forms import EmailForm, ForgotForm, ResetForm
from flaskr.models import User
from flaskr.urls import on_site_url

bp = Blueprint("recovery", __name__, url_prefix="/auth")

SENT = (
    "If that account has an e-mail address, a link to set a new password is on its way to "
    "it. The link works once, within {minutes} minutes."
)


def link(endpoint: str, token: str) -> str:
    """A link for a message: on SITE_URL (set whenever mail is), never the request's Host."""
    return str(on_site_url(url_for(endpoint, token=token)))


def send(recipient: str, subject: str, template: str, **context: object) -> None:
    """Queue a message rendered from templates/mail/``template``.txt (sent once committed)."""
    mail.queue(recipient, subject, render_template(f"mail/{template}.txt", **context))


def allowed(user: User | None, address: str) -> bool:
    """Count a request that may mail ``address`` for ``user``; 429 past a site or client limit."""
    decision = throttle.begin_mail(str(user.id) if user else "", address)
    if decision.wait is not None:
        raise too_many("requests for mail from this address or on this site", decision.wait)
    return decision.send


@bp.route("/forgot", methods=("GET", "POST"))
def forgot() -> tuple[str, int] | Response:
    """Ask for a link to set a new password; the answer is the same for every name."""
    if not mail.enabled():
        return render_template("auth/forgot.html", form=None), 200
    form = ForgotForm()
    if not form.validate_on_submit():
        return form_page("auth/forgot.html", form)
    minutes = current_app.config["PASSWORD_RESET_SECONDS"] // 60
    user = accounts.find_by_name_or_email(form.name.data.strip())
    address = user.email if user is not None and not user.disabled else None
    if allowed(user if address else None, address or "") and user is not None and address:
        send(
            address,
            "Set a new password",
            "reset",
            user=user,
            link=link("recovery.reset", accounts.reset_token(user)),
            minutes=minutes,
        )
        db.session.commit()
    flash(SENT.format(minutes=minutes), "info")
    return redirect(url_for("auth.login"))


@bp.route("/reset/<token>", methods=("GET", "POST"))
def reset(token: str) -> tuple[str, int] | Response:
    """Set a new password with a mailed link; every session of the account ends."""
    user = accounts.user_for_reset(token)
    if user is None:
        raise BadRequest(
            "This link to set a new password has expired, was used already, or the password "
            "changed since it was sent. Ask for a new one on the Forgot password page."
        )
    form = ResetForm()
    if not form.validate_on_submit():
        return form_page("auth/reset.html", form)
    if not accounts.reset_password(user, form.password.data):  # every session ends, the link too
        raise BadRequest("This link to set a new password was used already.")
    session.clear()
    flash("Password set, and every session of yours ended. Log in with the new one.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/email", methods=("GET", "POST"))
@login_required
def email() -> tuple[str, int] | Response:
    """Ask for a new address (confirmed by a link mailed to it), or remove the address."""
    form = EmailForm()
    user = account()
    page = functools.partial(form_page, "auth/email.html", form, address=user.email)
    if not form.validate_on_submit():
        return page()
    if not current_password_checked(user, form.current):
        return page()
    new = form.email.data
    if not new:
        if user.email and mail.enabled():  # told, as of a change: it may not be the owner
            send(user.email, "Your e-mail address was removed", "removed", user=user)
        accounts.set_email(user, None)
        log_in(user)  # every other session ends with the address, this one goes on
        flash("Your account has no e-mail address now.", "info")
        return redirect(url_for("recovery.email"))
    if not mail.enabled():
        form.email.errors = ["This site sends no mail, so it cannot confirm a new address."]
        return page()
    taken = accounts.find_by_email(new) is not None
    if allowed(user, new) and not taken:  # a taken address is answered as a free one
        send(
            new,
            "Confirm your e-mail address",
            "confirm",
            user=user,
            link=link("recovery.confirm", accounts.email_token(user, new)),
        )
    db.session.commit()
    flash(
        f"A link to confirm {new} is on its way to it: the address changes when it is followed.",
        "info",
    )
    return redirect(url_for("recovery.email"))


@bp.route("/email/confirm/<token>", methods=("GET", "POST"))
@login_required
def confirm(token: str) -> tuple[str, int] | Response:
    """Make the mailed address the account's, with a button: a GET changes nothing.

    Only the account that asked may: whoever else reads the link (a mistyped address, a
    shared mailbox) must not be able to attach their address to it, then reset its password.
    """
    found = accounts.email_to_confirm(token)
    if found is None or found[0].id != account().id:
        raise BadRequest(
            "This link to confirm an e-mail address has expired, was used already, is for "
            "another account, or was asked for before you last logged out or changed your "
            "password: log in as the account that asked for it and ask for a new one on its "
            "e-mail page."
        )
    user, address = found
    form = FlaskForm()
    if not form.validate_on_submit():
        return render_template("auth/confirm.html", form=form, address=address), 200
    if user.email and user.email.lower() != address.lower():  # committed with the change
        send(user.email, "Your e-mail address changed", "changed", user=user, address=address)
    try:
        accounts.set_email(user, address)
    except accounts.EmailTaken as e:
        raise BadRequest(str(e)) from None
    log_in(user)  # every other session ends with the change, this one goes on
    flash(f"Your e-mail address is {address} now.", "info")
    return redirect(url_for("index"))
