"""Login throttling kept in the database, shared by every worker and instance.

It holds across every gunicorn worker and every instance sharing the database, and survives
restarts.

Guessing is bounded without handing anyone the power to lock someone else out (OWASP's
device cookies, django-axes' username-and-address lockout):

- A browser that has logged in to an account before holds a signed *device* cookie for it.
  Its attempts are counted on their own (LOGIN_FAILURES_PER_DEVICE) and nothing else stops
  it: strangers failing from elsewhere cannot keep the owner out.
- Every other attempt is counted per account from one address, per address, per account
  from everywhere and for the whole site, each with its own limit within LOGIN_WINDOW_SECONDS.

An attempt is written (and committed) before the password is checked, and the limits are
checked counting it: concurrent guesses see each other, so no more than the limit pass.
A refused attempt is deleted again, so hammering a limit does not prolong it.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import and_, delete, func, select
from sqlalchemy.sql.elements import ColumnElement
from werkzeug.wrappers import Response

from flaskr.db import db
from flaskr.models import LoginFailure

DEVICE_COOKIE = "flaskr_device"
DEVICE_DAYS = 365


def _now() -> datetime:
    """UTC without tzinfo, the way both SQLite and PostgreSQL columns here store times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="flaskr.device")


def trusted_device(account: str) -> str | None:
    """The id of this browser's device cookie when it was issued for ``account``."""
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return None
    try:
        data = _serializer().loads(cookie, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return None
    if isinstance(data, list) and len(data) == 2 and data[0] == account:
        return str(data[1])
    return None


def remember_device(response: Response, account: str) -> None:
    """Mark this browser as one that logged in to ``account`` (after a successful login)."""
    value = _serializer().dumps([account, secrets.token_hex(8)])
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_DAYS * 86400,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
        path=current_app.config.get("APPLICATION_ROOT") or "/",
    )


@dataclass
class Attempt:
    """A login attempt already counted; ``wait`` is set when a limit refused it."""

    id: int
    account: str
    device: str | None
    wait: int | None = None


def _limits(account: str, address: str, device: str | None) -> list[tuple[ColumnElement, int]]:
    """Which rows count against which limit, for this attempt."""
    config = current_app.config
    if device is not None:
        return [(LoginFailure.device == device, config["LOGIN_FAILURES_PER_DEVICE"])]
    untrusted = LoginFailure.device.is_(None)
    by_account = LoginFailure.username == account
    by_address = LoginFailure.remote_addr == address
    return [
        (and_(untrusted, by_account, by_address), config["LOGIN_FAILURES_PER_ACCOUNT_ADDRESS"]),
        (and_(untrusted, by_address), config["LOGIN_FAILURES_PER_ADDRESS"]),
        (and_(untrusted, by_account), config["LOGIN_FAILURES_PER_USER"]),
        (untrusted, config["LOGIN_FAILURES_GLOBAL"]),
    ]


def begin(username: str) -> Attempt:
    """Count a login attempt for ``username`` before its password is checked.

    Refuse it (``wait`` seconds) when this attempt would pass one of its limits.
    """
    account = username.lower()[:64]
    address = (request.remote_addr or "")[:64]
    device = trusted_device(account)
    window = timedelta(seconds=current_app.config["LOGIN_WINDOW_SECONDS"])
    now = _now()
    db.session.execute(delete(LoginFailure).where(LoginFailure.created < now - window))
    row = LoginFailure(username=account, remote_addr=address, device=device, created=now)
    db.session.add(row)
    db.session.commit()
    attempt = Attempt(row.id, account, device)
    limits = _limits(account, address, device)
    columns = []
    for where, _ in limits:
        columns += [func.count().filter(where), func.min(LoginFailure.created).filter(where)]
    counts = db.session.execute(select(*columns).where(LoginFailure.created > now - window)).one()
    waits = [
        math.ceil((counts[2 * i + 1] + window - now).total_seconds())
        for i, (_, limit) in enumerate(limits)
        if counts[2 * i] > limit
    ]
    if waits:
        attempt.wait = max(1, *waits)
        forget(attempt)
    return attempt


def forget(attempt: Attempt) -> None:
    """Take back an attempt that was refused or that turned out not to be a guess."""
    db.session.execute(delete(LoginFailure).where(LoginFailure.id == attempt.id))
    db.session.commit()


def succeeded(attempt: Attempt) -> None:
    """Forget this attempt, the password being right, and earlier mistakes from the same place.

    The same place is this device, or this address; strangers' failures elsewhere stay.
    """
    same_place = (
        LoginFailure.device == attempt.device
        if attempt.device is not None
        else and_(
            LoginFailure.device.is_(None),
            LoginFailure.remote_addr == (request.remote_addr or "")[:64],
        )
    )
    db.session.execute(
        delete(LoginFailure).where(
            (LoginFailure.id == attempt.id)
            | (and_(LoginFailure.username == attempt.account, same_place))
        )
    )
