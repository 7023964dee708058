"""A second factor: TOTP codes (RFC 6238) and ten single-use recovery codes.

Enrolling shows a secret made here, as a QR code drawn here (inline SVG: no other service
sees it, and the strict CSP stays) and as text; it is kept only once the person types a
code it makes, with their password. Ten recovery codes are then shown once and stored as
their sha256 (each is 80 random bits: a slow hash adds nothing).

Logging in to an account with a second factor takes two steps: the right password leaves
the session *pending* (auth.wait_for_code: bound to this browser's session, expiring after
PENDING_SECONDS) and not logged in; the code page logs it in. Wrong codes are throttled like
passwords (throttle.SECOND_STEP), counted per account. A code's time step is marked used:
the same code is never accepted twice. ``flask remove-second-factor`` removes a lost factor.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from base64 import b32encode
from typing import Any

import pyotp
import segno
from flask import Blueprint, flash, redirect, render_template, session, url_for
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select, update
from werkzeug.wrappers import Response

from flaskr import accounts, throttle
from flaskr.auth import (
    PENDING_UNTIL,
    PENDING_USER,
    PENDING_VERSION,
    account,
    current_password_checked,
    form_page,
    log_in,
    logged_in,
    login_required,
    too_many,
)
from flaskr.db import db
from flaskr.forms import SecondFactorForm, SecondStepForm
from flaskr.models import RecoveryCode, User

bp = Blueprint("second_factor", __name__, url_prefix="/auth")

ISSUER = "Flaskr"
RECOVERY_CODES = 10
#: Codes of the step before and after the current one are accepted too (clock drift).
DRIFT_STEPS = 1
#: The session key of a secret being enrolled, until a code of it is typed.
ENROLLING = "totp_enrolling"


# The rules: secrets, codes and recovery codes.


def new_secret() -> str:
    """A new TOTP secret: 160 random bits in base32, as RFC 4226 recommends."""
    return pyotp.random_base32(32)


def code_step(secret: str, code: str, after: int | None = None) -> int | None:
    """The time step whose code ``code`` is, within DRIFT_STEPS of now and after ``after``."""
    totp = pyotp.TOTP(secret)
    now = int(time.time()) // totp.interval
    code = code.strip().replace(" ", "")
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        # Bytes: compare_digest refuses str holding other than ASCII (a 500, not a 400).
        if (after is None or step > after) and hmac.compare_digest(
            totp.generate_otp(step).encode(), code.encode()
        ):
            return step
    return None


def accept_code(user: User, code: str) -> bool:
    """Whether ``code`` is ``user``'s current code, not accepted before; mark its step used.

    The step is marked by an UPDATE that only moves it forward: of two requests racing with
    one code, one wins.
    """
    if user.totp_secret is None:
        return False
    step = code_step(user.totp_secret, code, user.totp_last_step)
    if step is None:
        return False
    marked = db.session.execute(
        update(User)
        .where(User.id == user.id)
        .where(or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if not marked.rowcount:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
        return False  # another request took this step, or a later one, first
    user.totp_last_step = step
    return True


def _digest(code: str) -> str:
    """A recovery code's stored form: the sha256 of its letters, whatever case or dashes."""
    letters = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(letters.encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace ``user``'s recovery codes with ten new ones; return them, to show once."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODES):
        letters = b32encode(secrets.token_bytes(10)).decode()  # 16 letters, 80 bits
        codes.append("-".join(letters[i : i + 4] for i in range(0, 16, 4)))
        db.session.add(RecoveryCode(user_id=user.id, code_hash=_digest(codes[-1])))
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one of ``user``'s recovery codes: true when it was unused (it is deleted)."""
    spent = db.session.execute(
        delete(RecoveryCode).where(
            RecoveryCode.user_id == user.id, RecoveryCode.code_hash == _digest(code)
        )
    )
    return bool(spent.rowcount)  # type: ignore[attr-defined]  # a DELETE's CursorResult


def recovery_codes_left(user: User) -> int:
    return int(
        db.session.scalar(
            select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user.id)
        )
        or 0
    )


def enable(user: User, secret: str, step: int) -> list[str]:
    """Give ``user`` this TOTP secret (its code of ``step`` just typed) and recovery codes.

    Every other session of the user ends: the caller logs this one in again.
    """
    user.totp_secret = secret
    user.totp_last_step = step
    accounts.end_sessions(user)
    return new_recovery_codes(user)


def qr_svg(secret: str, username: str) -> Markup:
    """The otpauth:// URI of ``secret`` as an inline SVG QR code, drawn here, no script."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)
    svg = segno.make(uri, error="m").svg_inline(
        scale=4, title="QR code of the secret", svgclass="qr", lineclass=None, light="#fff"
    )
    # segno's own SVG of a URI it encoded, nothing a person typed: safe to mark as markup.
    return Markup(svg.replace("<svg ", '<svg role="img" ', 1))  # noqa: S704  # nosec B704


# The views.


def pending_user() -> User | None:
    """The account whose password was right in this session and waits for its code.

    None when none waits, when the wait is over, or when the account changed since (disabled,
    its sessions ended, its factor removed): the pending state is then forgotten.
    """
    user_id, until = session.get(PENDING_USER), session.get(PENDING_UNTIL)
    if not isinstance(user_id, int) or not isinstance(until, int):
        return None
    user = db.session.get(User, user_id)
    if (
        time.time() > until
        or user is None
        or user.disabled
        or not accounts.has_second_factor(user)
        or session.get(PENDING_VERSION) != user.session_version
    ):
        for key in (PENDING_USER, PENDING_VERSION, PENDING_UNTIL):
            session.pop(key, None)
        return None
    return user


def begin_code_attempt(user: User) -> throttle.Attempt:
    """Count a code typed for ``user`` (throttle.SECOND_STEP); a 429 past a limit."""
    attempt = throttle.begin(user.username, throttle.SECOND_STEP)
    if attempt.wait is not None:
        raise too_many("wrong codes", attempt.wait)
    return attempt


def second_factor_matches(user: User, form: SecondStepForm) -> str | None:
    """Which of ``form``'s codes is right for ``user`` ("code" or "recovery"), or None."""
    if form.code.data and accept_code(user, form.code.data):
        return "code"
    if form.recovery.data and use_recovery_code(user, form.recovery.data):
        return "recovery"
    return None


@bp.route("/code", methods=("GET", "POST"))
def code() -> tuple[str, int] | Response:
    """The second step of logging in: a code from the app, a recovery code, or a passkey."""
    user = pending_user()
    if user is None:
        flash("Log in first: the code is asked for after the password, for a few minutes.", "info")
        return redirect(url_for("auth.login"))
    form = SecondStepForm()
    page = {
        "codes": user.totp_secret is not None or recovery_codes_left(user) > 0,
        "passkeys": user.totp_secret is None or accounts.has_passkeys(user),
    }
    if not form.validate_on_submit():
        return form_page("auth/code.html", form, **page)
    attempt = begin_code_attempt(user)
    used = second_factor_matches(user, form)
    if used is None:
        db.session.rollback()
        fresh = SecondStepForm(formdata=None)  # not what was typed: the field tells why
        fresh.code.errors = ["That code is not right, or was used already. Try the next one."]
        return form_page("auth/code.html", fresh, **page)
    throttle.succeeded(attempt)
    db.session.commit()
    response = logged_in(user)
    if used == "recovery":
        flash(
            f"Recovery code used: it will not work again. {recovery_codes_left(user)} left.",
            "info",
        )
    return response


@bp.get("/two-factor")
@login_required
def settings() -> tuple[str, int]:
    """Whether the account has a second factor, with the way to add or remove it."""
    user = account()
    return render_template(
        "auth/two_factor.html",
        user=user,
        left=recovery_codes_left(user),
        form=SecondFactorForm(),
    ), 200


@bp.after_request
def not_stored(response: Response) -> Response:
    """Keep these pages out of every cache, the browser's own too.

    The enrol page shows the secret, the recovery codes page the codes; guards.py marks the
    site's other pages for a session ``private`` only.
    """
    response.cache_control.no_store = True
    return response


@bp.route("/two-factor/enrol", methods=("GET", "POST"))
@login_required
def enrol() -> tuple[str, int] | Response:
    """Add a TOTP factor: scan the code, type a code it makes and the password; codes shown."""
    user = account()
    if user.totp_secret is not None:
        return redirect(url_for("second_factor.settings"))
    secret = session.get(ENROLLING)
    if not isinstance(secret, str):
        secret = session[ENROLLING] = new_secret()
    form = SecondFactorForm()
    page: dict[str, Any] = {"secret": secret, "qr": qr_svg(secret, user.username)}
    if not form.validate_on_submit():
        return form_page("auth/enrol.html", form, **page)
    if not current_password_checked(user, form.current):
        return form_page("auth/enrol.html", form, **page)
    step = code_step(secret, form.code.data or "")
    if step is None:
        form.code.errors = ["That code is not right: type the one the app shows now."]
        db.session.commit()
        return form_page("auth/enrol.html", form, **page)
    codes = enable(user, secret, step)
    db.session.commit()
    log_in(user)  # the others ended; ENROLLING goes with the old session
    return render_template("auth/recovery_codes.html", codes=codes), 200


@bp.post("/two-factor/remove")
@login_required
def remove() -> tuple[str, int] | Response:
    """Remove the factor, with the password and a current code (or a recovery code)."""
    user = account()
    form = SecondFactorForm()
    page = {"user": user, "left": recovery_codes_left(user)}
    if user.totp_secret is None:
        return redirect(url_for("second_factor.settings"))
    if not form.validate_on_submit() or not current_password_checked(user, form.current):
        return form_page("auth/two_factor.html", form, **page)
    attempt = begin_code_attempt(user)
    code = form.code.data or ""
    if not (accept_code(user, code) or use_recovery_code(user, code)):
        db.session.commit()  # the password check's bookkeeping
        form.code.errors = ["That code is not right, or was used already."]
        return form_page("auth/two_factor.html", form, **page)
    throttle.succeeded(attempt)
    accounts.remove_totp(user)
    db.session.commit()
    flash("Second factor removed: your password alone logs you in now.", "info")
    return redirect(url_for("second_factor.settings"))
