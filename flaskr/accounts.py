"""Accounts: what one is and may do, for the views and the commands alike.

Finding one by name or address, the rules a new one follows (the registration form checks
the same ones), how passwords are hashed, admins, disabling, ending sessions, and the links
mailed to reset a password or confirm an address. Callers commit unless a function says it
does.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from typing import Any, Protocol

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from flaskr.db import db
from flaskr.models import Passkey, RecoveryCode, User

USERNAME_MAX = 32
#: What a new username may hold, all of it (``\Z``: ``$`` would let a final newline through).
#: ASCII only, so no name can look like another (a Cyrillic "а" in "аlice").
USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+\Z")
PASSWORD_MIN = 8  # NIST SP 800-63B: a minimum length, no composition rules
PASSWORD_MAX = 1_024  # hashing is deliberately slow: cap what one request can make it do

EMAIL_MAX = 254  # RFC 5321's longest path, less its angle brackets
#: One plain address, all ASCII: a local part of RFC 5322's atom characters and dots, one @,
#: a domain of LDH labels with a dot. Nothing a mail header or an SMTP server could read as
#: another recipient, a display name or a comment (<>,:;"() and spaces), and so an address is
#: stored, compared, counted and mailed as the same string, in one case-folding that SQLite's
#: lower() and PostgreSQL's agree on. The link mailed to it proves the rest.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = re.compile(
    rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~-]+)*"
    rf"@{_LABEL}(?:\.{_LABEL})+\Z"
)
#: How long a link confirming a new address works.
EMAIL_CONFIRM_SECONDS = 24 * 3600

#: werkzeug's current default; hashes made with another method are upgraded at login.
HASH_METHOD = "scrypt"


class Refused(Exception):
    """A new account the rules do not allow; the message says which rule, for a person."""


class NameTaken(Refused):
    """The name belongs to an account already, whatever its case."""


class Flags(Protocol):
    """What deciding whether someone is an admin reads: a ``User`` or ``g.user`` has it."""

    @property
    def is_admin(self) -> bool: ...

    @property
    def disabled(self) -> bool: ...


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot name a new account, to follow "Username", or None."""
    if len(username) > USERNAME_MAX:
        return f"must be at most {USERNAME_MAX} characters"
    if not USERNAME_PATTERN.match(username):
        return "may only hold the letters A-Z and a-z, digits, '.', '-' and '_'"
    return None


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be chosen, to follow its field's name, or None."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        return f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters"
    return None


def email_problem(address: str) -> str | None:
    """Why ``address`` cannot be an account's e-mail address, to follow its field's name."""
    if len(address) > EMAIL_MAX or not EMAIL_PATTERN.match(address):
        return f"must be an address such as name@example.com, at most {EMAIL_MAX} characters"
    return None


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=HASH_METHOD)


def hash_is_current(hashed: str) -> bool:
    """False for the tutorial's pbkdf2 hashes, which are replaced at the next login."""
    return hashed.split(":", 1)[0] == HASH_METHOD.split(":", 1)[0]  # the method, any cost


@functools.cache
def _unknown_user_hash() -> str:
    """A hash to check passwords against when the name is unknown.

    The answer then takes as long as for a real account, so its time does not tell which
    names exist.
    """
    return hash_password(secrets.token_hex(16))


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s, in the same time whether the user exists or not.

    An old hash checks faster than a current one: a check of a current hash pads it.
    """
    hashed = user.password if user is not None else _unknown_user_hash()
    if not hash_is_current(hashed):
        check_password_hash(_unknown_user_hash(), password)
    return check_password_hash(hashed, password) and user is not None


def find_user(username: str) -> User | None:
    """Find the account called ``username``, whatever its case.

    Both sides are lowered by the database, as its unique index is: names from before the
    ASCII rule are found too.
    """
    return db.session.scalar(select(User).where(func.lower(User.username) == func.lower(username)))


def find_by_email(address: str) -> User | None:
    """The account whose address is ``address``, whatever its case."""
    return db.session.scalar(select(User).where(func.lower(User.email) == func.lower(address)))


def find_by_name_or_email(text: str) -> User | None:
    """The account ``text`` names: an address when it holds an @ (no name may), else a name."""
    return find_by_email(text) if "@" in text else find_user(text)


def create_user(username: str, password: str) -> User:
    """Add an account that can log in at once, and commit; ``Refused`` says why not.

    A taken name is found by the unique index after the hash is made, so it costs as long
    as a free one: the registration page does not tell who has an account.
    """
    if username_problem(username) is not None:
        raise Refused(f"A username is 1 to {USERNAME_MAX} of A-Z, a-z, 0-9, '.', '-' and '_'.")
    if password_problem(password) is not None:
        raise Refused(f"A password is {PASSWORD_MIN} to {PASSWORD_MAX} characters.")
    user = User(username=username, password=hash_password(password))
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise NameTaken(f"User {username} is already registered.") from None
    return user


def is_admin(user: Flags | None) -> bool:
    """Admins are made by a decision, ``flask make-admin NAME``, never by a name."""
    return user is not None and user.is_admin and not user.disabled


def set_admin(user: User, admin: bool) -> None:
    """Give the admin right, or take it away, and commit."""
    user.is_admin = admin
    db.session.commit()


def end_sessions(user: User) -> None:
    """Every session of ``user`` ends at its next request."""
    user.session_version += 1


def set_password(user: User, password: str) -> None:
    """A new password; every session of ``user`` ends (log the current one in again)."""
    user.password = hash_password(password)
    end_sessions(user)


def reset_password(user: User, password: str) -> bool:
    """Set a new password through a reset link, and commit.

    False when another use of the same link got there first: of two requests at once, only
    one may set the password.
    """
    done = db.session.execute(
        update(User)
        .where(User.id == user.id, User.session_version == user.session_version)
        .values(password=hash_password(password), session_version=User.session_version + 1)
    )
    db.session.commit()
    return bool(getattr(done, "rowcount", 0))


def set_disabled(user: User, disabled: bool) -> None:
    """Disable an account (its sessions end at once) or enable it again, and commit."""
    user.disabled = disabled
    if disabled:
        end_sessions(user)
    db.session.commit()


def has_passkeys(user: User) -> bool:
    return (
        db.session.scalar(select(Passkey.id).where(Passkey.user_id == user.id).limit(1)) is not None
    )


def has_second_factor(user: User) -> bool:
    """Whether logging in to ``user`` takes more than the password: TOTP or a passkey."""
    return user.totp_secret is not None or has_passkeys(user)


def remove_totp(user: User) -> bool:
    """Take away ``user``'s TOTP secret and recovery codes; false when it had none."""
    had = user.totp_secret is not None
    user.totp_secret = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    return had


def remove_second_factor(user: User) -> bool:
    """Take away ``user``'s TOTP secret, recovery codes and passkeys; false when it had none.

    The password alone logs the account in again: the owner's way back from a lost phone,
    lost codes and lost passkeys, through an operator (``flask remove-second-factor``).
    """
    had_totp = remove_totp(user)
    passkeys = db.session.execute(delete(Passkey).where(Passkey.user_id == user.id))
    return had_totp or bool(passkeys.rowcount)  # type: ignore[attr-defined]  # a DELETE's


class EmailTaken(Refused):
    """Another account has this address, whatever its case."""


def set_email(user: User, address: str | None) -> None:
    """Give ``user`` this address (confirmed by the caller), or none; commit.

    ``EmailTaken`` when another account has it: the unique index decides, so two accounts
    confirming one address at once cannot both have it.
    """
    user.email = address
    end_sessions(user)  # and every link made for the old address, even if it comes back
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise EmailTaken("Another account has this e-mail address.") from None


def _fingerprint(user: User) -> str:
    """What a mailed link is bound to: the password hash, address and sessions' number.

    The link is signed, not secret from its reader: the hash itself never goes in it.
    Changing the password or the address raises the number (end_sessions), which never comes
    back to an earlier value, so every link made before dies for good, even when the address
    or the password later returns to what it was.
    """
    state = f"{user.password}\0{user.email or ''}\0{user.session_version}".encode()
    return hashlib.sha256(state).hexdigest()[:32]


def _signer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(str(current_app.secret_key), salt=f"flaskr.{purpose}")


def _load(purpose: str, token: str, max_age: int) -> Any:
    try:
        return _signer(purpose).loads(token, max_age=max_age)
    except BadSignature:  # expired links too (SignatureExpired is one)
        return None


def reset_token(user: User) -> str:
    """The token of a link that sets a new password for ``user``.

    It expires after PASSWORD_RESET_SECONDS and dies when the password or the address
    changes: using it changes the password, so it works once.
    """
    return str(_signer("password-reset").dumps([user.id, _fingerprint(user)]))


def user_for_reset(token: str) -> User | None:
    """The account a reset token is for, while the token holds; else None."""
    data = _load("password-reset", token, current_app.config["PASSWORD_RESET_SECONDS"])
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
        return None
    user = db.session.get(User, data[0])
    if user is None or user.disabled or data[1] != _fingerprint(user):
        return None
    return user


def email_token(user: User, address: str) -> str:
    """The token of a link that makes ``address`` ``user``'s, once it is followed.

    It expires after EMAIL_CONFIRM_SECONDS and dies when the password or the address
    changes, so it works once.
    """
    return str(_signer("email-confirm").dumps([user.id, address, _fingerprint(user)]))


def email_to_confirm(token: str) -> tuple[User, str] | None:
    """The account and the address a confirmation token is for, while it holds; else None."""
    data = _load("email-confirm", token, EMAIL_CONFIRM_SECONDS)
    if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], int)):
        return None
    user = db.session.get(User, data[0])
    if user is None or user.disabled or data[2] != _fingerprint(user):
        return None
    return user, str(data[1])
