"""Login and registration throttling kept in the database, shared by every worker and instance.

It holds across every gunicorn worker and every instance sharing the database, and survives
restarts.

Guessing is bounded without handing anyone the power to lock someone else out (OWASP's
device cookies, django-axes' username-and-address lockout):

- A browser that has logged in to an account before holds a signed *device* cookie for it,
  bound to the account's password: a new password ends every such cookie, so whoever knew
  the old one keeps no guesses of their own. Its password attempts are counted on their own
  (LOGIN_FAILURES_PER_DEVICE) and nothing else stops them: strangers failing from elsewhere
  cannot keep the owner out. Its second-factor codes count towards the account's limit too:
  only someone who has the password reaches that step, and cookies are free to collect
  for them.
- Every other attempt is counted per account from one address, per address, per account
  from everywhere and for the whole site, each with its own limit within LOGIN_WINDOW_SECONDS.

An attempt is written (and committed) before the password is checked, and the limits are
checked counting it: concurrent guesses see each other, so no more than the limit pass.
A refused attempt is deleted again, so hammering a limit does not prolong it.

Registrations are counted the same way, per address and for the whole site
(``begin_registration``), so one address cannot make accounts without limit; so are requests
that may send mail (``begin_mail``), so nobody can make the site send mail without bound.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import and_, delete, false, func, select, true, update
from sqlalchemy.sql.elements import ColumnElement
from werkzeug.wrappers import Response

from flaskr.db import db
from flaskr.models import LoginFailure, MailRequest, RegistrationAttempt, User

DEVICE_COOKIE = "flaskr_device"
DEVICE_DAYS = 365


def _now() -> datetime:
    """UTC without tzinfo, the way both SQLite and PostgreSQL columns here store times."""
    return datetime.now(UTC).replace(tzinfo=None)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.secret_key), salt="flaskr.device")


def _password_tag(password_hash: str) -> str:
    """What binds a device cookie to the password it logged in with (not the hash itself)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def trusted_device(account: str) -> str | None:
    """The id of this browser's device cookie, if issued for ``account`` and its password.

    A cookie from before the password changed is nobody's: whoever knew the old password
    keeps no guesses of their own.
    """
    cookie = request.cookies.get(DEVICE_COOKIE)
    if not cookie:
        return None
    try:
        data = _serializer().loads(cookie, max_age=DEVICE_DAYS * 86400)
    except BadSignature:
        return None
    if not (isinstance(data, list) and len(data) == 3 and data[0] == account):
        return None
    password = db.session.scalar(select(User.password).where(func.lower(User.username) == account))
    if password is None or not secrets.compare_digest(str(data[2]), _password_tag(password)):
        return None
    return str(data[1])


def remember_device(response: Response, account: str, password_hash: str) -> None:
    """Mark this browser as one that logged in to ``account`` (after a successful login).

    The cookie is bound to ``password_hash``, the password it logged in with.
    """
    value = _serializer().dumps([account, secrets.token_hex(8), _password_tag(password_hash)])
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


#: Which rows count against a limit, and how many may be counted within the window.
Limits = list[tuple[ColumnElement[bool], int]]


def _ip() -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address, an IPv4 client on an IPv6 socket (``::ffff:a.b.c.d``) as IPv4."""
    try:
        ip = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _address() -> str:
    """The client's address as the limits count it: an IPv6 address by its /64.

    One subscriber is usually given a whole /64 (RFC 6177), so counting each of its 2^64
    addresses on its own would give one person unlimited guesses and registrations.
    """
    ip = _ip()
    if ip is None:
        return (request.remote_addr or "")[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _network() -> str:
    """The network the client's address is in, as the registration limits count it.

    An IPv4 /24 or an IPv6 /48: what one customer of a provider, or one attacker, easily
    holds more of than an address (a home is often given a /56 of 256 /64s, a tunnel a /48).
    """
    ip = _ip()
    if ip is None:
        return (request.remote_addr or "")[:64]
    prefix = 24 if isinstance(ip, ipaddress.IPv4Address) else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _account(username: str) -> str:
    """The name failures are counted under: lower case, as logins find accounts."""
    return username.lower()[:64]


Counted = LoginFailure | RegistrationAttempt | MailRequest


def _count(row: Counted, limits: Limits, seconds: int) -> tuple[int, int | None]:
    """Write ``row`` (committed, rows older than the window deleted first) and count it.

    Return its id, and the seconds to wait when, counting it, one of ``limits`` is passed
    within the last ``seconds``: the row is then taken back. Else the wait is None.
    """
    row_id, waits = _waits(row, limits, seconds)
    passed = [wait for wait in waits if wait is not None]
    if not passed:
        return row_id, None
    _take_back(type(row), row_id)
    return row_id, max(1, *passed)


def _waits(row: Counted, limits: Limits, seconds: int) -> tuple[int, list[int | None]]:
    """Write ``row`` as ``_count`` does; for each limit, the wait if counting it passes it."""
    model = type(row)
    window = timedelta(seconds=seconds)
    now = row.created
    db.session.execute(delete(model).where(model.created < now - window))
    db.session.add(row)
    db.session.flush()
    # Read before the commit: once committed, the row may already be gone (another login of
    # the account from this address succeeded and forgot it), and reading the id of an
    # expired row would load it again (a 500 under the bench's concurrent logins).
    row_id = row.id
    db.session.commit()
    columns: list[ColumnElement[Any]] = []
    for where, _ in limits:
        columns += [func.count().filter(where), func.min(model.created).filter(where)]
    counts = db.session.execute(select(*columns).where(model.created > now - window)).one()
    waits = [
        math.ceil((counts[2 * i + 1] + window - now).total_seconds())
        if counts[2 * i] > limit
        else None
        for i, (_, limit) in enumerate(limits)
    ]
    return row_id, waits


def _take_back(model: type[Counted], row_id: int) -> None:
    db.session.execute(delete(model).where(model.id == row_id))
    db.session.commit()


def _limits(account: str, address: str, device: str | None) -> Limits:
    """Which rows count against which limit, for this attempt."""
    config = current_app.config
    by_account = LoginFailure.username == account
    if device is not None:
        limits = [(LoginFailure.device == device, config["LOGIN_FAILURES_PER_DEVICE"])]
        if account.startswith(SECOND_STEP):  # every code, from every browser
            limits.append((by_account, config["LOGIN_FAILURES_PER_USER"]))
        return limits
    untrusted = LoginFailure.device.is_(None)
    by_address = LoginFailure.remote_addr == address
    return [
        (and_(untrusted, by_account, by_address), config["LOGIN_FAILURES_PER_ACCOUNT_ADDRESS"]),
        (and_(untrusted, by_address), config["LOGIN_FAILURES_PER_ADDRESS"]),
        (and_(untrusted, by_account), config["LOGIN_FAILURES_PER_USER"]),
        (untrusted, config["LOGIN_FAILURES_GLOBAL"]),
    ]


#: What failures of the second step (a code after the right password) are counted under,
#: before the name: apart from the password's, so the right password does not forget them.
SECOND_STEP = "2fa:"


def begin(username: str, step: str = "") -> Attempt:
    """Count a login attempt for ``username`` before its password (or code) is checked.

    Refuse it (``wait`` seconds) when this attempt would pass one of its limits. ``step``
    (SECOND_STEP) counts a second-factor code apart from passwords, with the same limits and
    the same trusted devices.
    """
    address = _address()
    device = trusted_device(_account(username))
    account = _account(step + username)
    row = LoginFailure(username=account, remote_addr=address, device=device, created=_now())
    limits = _limits(account, address, device)
    row_id, wait = _count(row, limits, current_app.config["LOGIN_WINDOW_SECONDS"])
    return Attempt(row_id, account, device, wait)


def forget(attempt: Attempt) -> None:
    """Take back an attempt that turned out not to be a guess."""
    _take_back(LoginFailure, attempt.id)


def succeeded(attempt: Attempt) -> None:
    """Forget this attempt, the password being right, and earlier mistakes from the same place.

    The same place is this device, or this address; strangers' failures elsewhere stay.
    """
    same_place = (
        LoginFailure.device == attempt.device
        if attempt.device is not None
        else and_(
            LoginFailure.device.is_(None),
            LoginFailure.remote_addr == _address(),
        )
    )
    db.session.execute(
        delete(LoginFailure).where(
            (LoginFailure.id == attempt.id)
            | (and_(LoginFailure.username == attempt.account, same_place))
        )
    )


def clear_failures(username: str) -> int:
    """Forget every failed login counted against ``username``, codes too; return how many.

    An admin's way to let an account's owner in from a new browser at once, while strangers'
    guesses hold its limit (``flask clear-login-failures``).
    """
    names = [_account(username), _account(SECOND_STEP + username)]
    result = db.session.execute(delete(LoginFailure).where(LoginFailure.username.in_(names)))
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]  # a DELETE's CursorResult


def begin_registration() -> int | None:
    """Count a registration from this address before its work is done; return a wait if refused.

    The work is a password hash and a row: counted first and committed, concurrent
    registrations see each other, so no more than the limits pass. Refused (the seconds to
    wait returned), the attempt is taken back, so hammering does not prolong the wait.

    Called once the form is valid, so these count: accounts made, and names already taken
    (answered exactly like free ones, so they must cost the same, or the limit would tell
    which names exist). A form refused for its fields (an empty or short password, a name
    with a space) does not: nothing was hashed or made, the page answers in a few
    milliseconds, and a person's typos should not spend their address's allowance.
    """
    config = current_app.config
    address, network = _address(), _network()
    limits: Limits = [
        (RegistrationAttempt.remote_addr == address, config["REGISTRATIONS_PER_ADDRESS"]),
        (RegistrationAttempt.network == network, config["REGISTRATIONS_PER_NETWORK"]),
        (true(), config["REGISTRATIONS_GLOBAL"]),
    ]
    row = RegistrationAttempt(remote_addr=address, network=network, created=_now())
    return _count(row, limits, config["REGISTRATION_WINDOW_SECONDS"])[1]


@dataclass
class MailAllowed:
    """What ``begin_mail`` decided: a 429 after ``wait`` seconds, or whether to ``send``."""

    wait: int | None = None
    send: bool = False


def mailbox(address: str) -> str:
    """The mailbox ``address`` reaches, as the per-recipient limit counts it.

    Lower case, and without a ``+tag``: ``victim+1@x`` and ``victim+2@x`` fill one inbox.
    """
    local, at, domain = address.lower().partition("@")
    return local.partition("+")[0] + at + domain


def begin_mail(account: str, recipient: str) -> MailAllowed:
    """Count a request that may send mail to ``recipient`` for ``account`` (either may be "").

    Past the limit of the client's address or the site's, say the seconds to wait (a 429:
    it tells nothing about any account). Past the account's or the recipient's, say not to
    send: the caller sends nothing and answers as if it had, so the limit tells nobody
    whether a name or address exists. A refused request is taken back.
    """
    config = current_app.config
    recipient = mailbox(recipient)
    per_account = config["MAIL_PER_ACCOUNT"]
    limits: Limits = [
        (MailRequest.remote_addr == _address(), config["MAIL_REQUESTS_PER_ADDRESS"]),
        (true(), config["MAIL_REQUESTS_GLOBAL"]),
        (MailRequest.account == account if account else false(), per_account),
        (MailRequest.recipient == recipient if recipient else false(), per_account),
    ]
    row = MailRequest(account=account, recipient=recipient, remote_addr=_address(), created=_now())
    row_id, waits = _waits(row, limits, config["MAIL_WINDOW_SECONDS"])
    if waits == [None] * len(limits):
        return MailAllowed(send=True)
    refusals = [wait for wait in waits[:2] if wait is not None]
    if refusals:
        _take_back(MailRequest, row_id)
        return MailAllowed(wait=max(1, *refusals))
    # Past the account's or the recipient's limit only: still counted against the address and
    # the site, as a request that sends is (else the address's limit would come sooner for
    # unknown names, and tell them apart), but no longer against the account or recipient,
    # which it would keep refused.
    db.session.execute(
        update(MailRequest).where(MailRequest.id == row_id).values(account="", recipient="")
    )
    db.session.commit()
    return MailAllowed()
