"""Passkeys (WebAuthn, with py_webauthn): add one, list and remove them, and sign in with one.

A passkey is a key pair an authenticator (the phone, the computer, a security key) makes for
this site and keeps: the site stores only its public key. Adding one takes the password,
like the TOTP pages. Signing in with one works two ways: as the second step after the
password (the code page, second_factor.py), or alone, without a name or password, from the
login page (a discoverable credential, whose user verification, a PIN or a fingerprint,
makes it two factors in itself).

The browser's side is flaskr/static/passkeys.js (no inline script: the CSP stays strict).
These views answer it in JSON, errors too. The challenges, what the browser's answers must
be, and the clone rule: flaskr/ceremony.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import webauthn
from flask import Blueprint, current_app, flash, jsonify, redirect, session, url_for
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from werkzeug.exceptions import BadRequest, Forbidden, HTTPException
from werkzeug.wrappers import Response

from flaskr import accounts, errors, throttle
from flaskr.auth import (
    account,
    begin_attempt,
    current_password_checked,
    form_page,
    log_in,
    logged_in,
    login_required,
)
from flaskr.ceremony import (
    CHALLENGE_SECONDS,
    check_assertion,
    issue,
    relying_party,
    sent_assertion,
    take,
    user_handle,
    verified_registration,
)
from flaskr.db import db
from flaskr.forms import PasskeyAddForm, PasskeyRemoveForm
from flaskr.models import Passkey, User
from flaskr.second_factor import begin_code_attempt, pending_user

bp = Blueprint("passkeys", __name__, url_prefix="/auth/passkeys")

RP_NAME = "Flaskr"
#: The session key of the name a passkey being added will have.
NAMING = "passkey_name"
#: Failed sign-ins with a passkey this site does not know are counted under this prefix.
UNKNOWN = "passkey:"
#: Passkeys an account may have: each is listed in every ceremony's options and its page.
MAX_PASSKEYS = 20
#: The largest public key kept: an RSA-4096 key in COSE form is about 530 bytes.
MAX_PUBLIC_KEY_BYTES = 1024


def json_view(view: Callable[..., Any]) -> Callable[..., Any]:
    """Answer in JSON whatever happens: a refusal is the app's JSON error, with its message."""

    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        try:
            return view(**kwargs)
        except HTTPException as error:
            return errors.handle_http_error(error, as_json=True)

    return wrapped


# Helpers of the views.


def descriptors(user: User) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
        for p in passkeys_of(user)
    ]


def passkeys_of(user: User) -> list[Passkey]:
    return list(db.session.scalars(select(Passkey).where(Passkey.user_id == user.id)))


def options(made: Any) -> Response:
    return current_app.response_class(webauthn.options_to_json(made), mimetype="application/json")


def signed_in(user: User) -> Response:
    """Log ``user`` in; the page goes where the answer says (passkeys.js)."""
    db.session.commit()
    return logged_in(user, jsonify(redirect=url_for("index")))


# The views: the account's passkeys.


def settings_page(user: User, add: PasskeyAddForm, remove: PasskeyRemoveForm) -> tuple[str, int]:
    return form_page("auth/passkeys.html", remove, add=add, passkeys=passkeys_of(user))


def remove_form(user: User) -> PasskeyRemoveForm:
    """The form to remove a passkey, which may name only the account's own."""
    form = PasskeyRemoveForm()
    form.passkey.choices = [(p.id, p.name) for p in passkeys_of(user)]
    return form


@bp.get("")
@login_required
def settings() -> tuple[str, int]:
    """The account's passkeys, with the forms to add one and remove one."""
    user = account()
    return settings_page(user, PasskeyAddForm(), remove_form(user))


@bp.post("/add/options")
@login_required
@json_view
def add_options() -> Response:
    """The first step of adding a passkey: with the password right, the browser's options."""
    user = account()
    form = PasskeyAddForm()
    if not form.validate_on_submit():
        raise BadRequest(" ".join(problems[0] for problems in form.errors.values()))
    refuse_past_the_limit(user)
    if not current_password_checked(user, form.current):
        raise BadRequest("Current password is incorrect.")
    rp_id, _ = relying_party()
    made = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name=RP_NAME,
        user_name=user.username,
        user_id=user_handle(user),
        challenge=issue("add"),
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=descriptors(user),  # an authenticator holds one per account
    )
    session[NAMING] = (form.name.data or "").strip()
    db.session.commit()  # the password check's bookkeeping
    return options(made)


def refuse_past_the_limit(user: User) -> None:
    if len(passkeys_of(user)) >= MAX_PASSKEYS:
        raise BadRequest(f"An account may have {MAX_PASSKEYS} passkeys: remove one first.")


@bp.post("/add")
@login_required
@json_view
def add() -> Response:
    """Keep the passkey the browser made, verified against the challenge; sessions end.

    One passkey per password check: the challenge lives in the session cookie, so a copy of
    that cookie could answer it again. Every session ends in the statement that checks this
    one still stands, so of two answers with one cookie only the first keeps its key.
    """
    user = account()
    challenge, _ = take("add")
    name = session.pop(NAMING, None) or "Passkey"
    made = verified_registration(challenge)
    refuse_past_the_limit(user)
    if len(made.credential_public_key) > MAX_PUBLIC_KEY_BYTES:
        raise BadRequest("This passkey's public key is larger than this site keeps.")
    ended = db.session.execute(
        update(User)
        .where(User.id == user.id, User.session_version == session.get("session_version"))
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    if not ended.rowcount:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
        db.session.rollback()
        raise BadRequest("This session has ended: log in again, then add the passkey.")
    db.session.add(
        Passkey(
            user_id=user.id,
            credential_id=bytes_to_base64url(made.credential_id),
            public_key=made.credential_public_key,
            sign_count=made.sign_count,
            name=name,
        )
    )
    try:
        db.session.commit()
    except IntegrityError:
        raise BadRequest("This passkey was added already.") from None
    log_in(user)  # the session version read again after the commit: this session goes on
    flash(f"Passkey “{name}” added: it logs you in, after your password or instead.", "info")
    return jsonify(redirect=url_for("passkeys.settings"))


@bp.post("/remove")
@login_required
def remove() -> tuple[str, int] | Response:
    """Remove one of the account's passkeys, with the password."""
    user = account()
    form = remove_form(user)
    if not form.validate_on_submit() or not current_password_checked(user, form.password):
        return settings_page(user, PasskeyAddForm(formdata=None), form)
    name = dict(form.passkey.choices)[form.passkey.data]
    removed = db.session.execute(  # by its id and owner: a second click finds it gone
        delete(Passkey).where(Passkey.id == form.passkey.data, Passkey.user_id == user.id)
    )
    # A session signed in with it (a clone's too) ends with it.
    accounts.end_sessions(user)
    db.session.commit()
    log_in(user)
    if removed.rowcount:  # type: ignore[attr-defined]  # a DELETE's CursorResult
        flash(
            f"Passkey “{name}” removed: it no longer logs you in, and every other session "
            "of yours has ended.",
            "info",
        )
    return redirect(url_for("passkeys.settings"))


# The views: signing in with a passkey.


def assertion_options(purpose: str, allowed: list[PublicKeyCredentialDescriptor]) -> Response:
    made = webauthn.generate_authentication_options(
        rp_id=relying_party()[0],
        challenge=issue(purpose),
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options(made)


@bp.post("/sign-in/options")
@json_view
def sign_in_options() -> Response:
    """Options for signing in with any passkey of this site's (the browser lists them)."""
    return assertion_options("sign-in", [])


@bp.post("/sign-in")
@json_view
def sign_in() -> Response:
    """Log in with a passkey alone, throttled like a login with a password."""
    challenge, issued = take("sign-in")
    assertion = sent_assertion()
    credential_id = bytes_to_base64url(assertion.raw_id)
    passkey = db.session.scalar(select(Passkey).where(Passkey.credential_id == credential_id))
    if passkey is None:
        begin_attempt(UNKNOWN + credential_id)  # counted against this address and the site
        raise BadRequest("This site does not know that passkey (was it removed?).")
    user = db.session.get_one(User, passkey.user_id)
    attempt = begin_attempt(user.username)
    handle = assertion.response.user_handle
    if handle is not None and handle != user_handle(user):
        raise BadRequest("That passkey names another account.")
    check_assertion(passkey, assertion, challenge, issued)
    if user.disabled:
        throttle.forget(attempt)  # not a guess
        db.session.commit()
        raise Forbidden("This account has been disabled by an admin.")
    throttle.succeeded(attempt)
    return signed_in(user)


def waiting_user() -> User:
    """The account whose password was right in this session (second_factor.py); else 400."""
    user = pending_user()
    if user is None:
        raise BadRequest("Log in first: the passkey is asked for after the password.")
    return user


@bp.post("/second-step/options")
@json_view
def second_step_options() -> Response:
    """Options for the second step of logging in: the passkeys of the account waiting."""
    user = waiting_user()
    return assertion_options("second-step", descriptors(user))


@bp.post("/second-step")
@json_view
def second_step() -> Response:
    """The second step of logging in, with one of the waiting account's passkeys."""
    user = waiting_user()
    challenge, issued = take("second-step")
    assertion = sent_assertion()
    attempt = begin_code_attempt(user)  # counted with wrong codes (throttle.SECOND_STEP)
    passkey = db.session.scalar(
        select(Passkey).where(
            Passkey.credential_id == bytes_to_base64url(assertion.raw_id),
            Passkey.user_id == user.id,
        )
    )
    if passkey is None:
        raise BadRequest("That passkey is not one of this account's.")
    check_assertion(passkey, assertion, challenge, issued)
    throttle.succeeded(attempt)
    return signed_in(user)
