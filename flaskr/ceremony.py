"""The rules of a WebAuthn ceremony, for passkeys.py: bindings, challenges, answers.

Where passkeys are bound (the RP ID and origin), the challenge each ceremony answers, and
checking what the browser sends back.

The challenge is kept in the session (a signed cookie) for CHALLENGE_SECONDS and popped when
an answer comes, so it works once; as an old cookie could bring a popped one back, an answer
to a challenge issued before the passkey was last used is refused as well
(``passkey.last_used``). A passkey whose signature counter did not go up since its last use
is refused as a likely clone, and logged.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import webauthn
from flask import current_app, request, session
from sqlalchemy import or_, update
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import AuthenticationCredential
from webauthn.registration.verify_registration_response import VerifiedRegistration
from werkzeug.exceptions import BadRequest

from flaskr.db import db
from flaskr.models import Passkey, User

#: How long a challenge waits for the authenticator's answer (also the browser's timeout).
CHALLENGE_SECONDS = 120
#: Characters of the answer a browser sends: a real one is 1 to 2 KB.
CREDENTIAL_MAX = 16_384
#: The most bytes a credential id may have (WebAuthn Level 3).
CREDENTIAL_ID_MAX = 1023
#: The session keys of a ceremony under way.
CHALLENGE, PURPOSE, ISSUED = "passkey_challenge", "passkey_for", "passkey_at"
#: What a failed check of the passkey's answer raises (library, CBOR, base64 and key errors).
UNVERIFIABLE = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, OverflowError)
CLONE = (
    "This passkey's signature counter did not go up since it was last used, so it may be a "
    "copy: it was refused. If it is yours, log in another way, remove it and add it again."
)


def relying_party() -> tuple[str, str]:
    """The RP ID and origin passkeys are made for: FLASKR_SITE_URL's, else this request's.

    Behind a proxy the request's are right only with FLASKR_PROXY_FIX (scheme and host);
    http is a secure context only on localhost, so elsewhere the site must be on https.
    """
    address = urlsplit(current_app.config["SITE_URL"] or request.host_url)
    return address.hostname or "", f"{address.scheme}://{address.netloc.lower()}"


def issue(purpose: str) -> bytes:
    """A new challenge for ``purpose``, kept in this session until answered."""
    challenge = secrets.token_bytes(32)
    session[CHALLENGE] = bytes_to_base64url(challenge)
    session[PURPOSE] = purpose
    session[ISSUED] = time.time()
    return challenge


def take(purpose: str) -> tuple[bytes, datetime]:
    """The challenge this session was given for ``purpose``, forgotten now: it works once.

    With it, when it was issued. A 400 when there is none, it was for something else, or it
    is too old.
    """
    value, kind, issued = (session.pop(key, None) for key in (CHALLENGE, PURPOSE, ISSUED))
    if (
        not isinstance(value, str)
        or kind != purpose
        or not isinstance(issued, int | float)
        or not 0 <= time.time() - issued <= CHALLENGE_SECONDS
    ):
        raise BadRequest("This passkey request expired or was answered already: try again.")
    return base64url_to_bytes(value), datetime.fromtimestamp(issued, UTC).replace(tzinfo=None)


def sent_credential() -> dict[str, Any]:
    """The browser's answer, the form's ``credential`` field: a JSON object, else a 400."""
    text = request.form.get("credential", "")
    if len(text) > CREDENTIAL_MAX:
        raise BadRequest("The passkey's answer is too long.")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise BadRequest("The passkey's answer is not JSON.") from None
    if not isinstance(value, dict):
        raise BadRequest("The passkey's answer is not a JSON object.")
    return value


def user_handle(user: User) -> bytes:
    """The account as its passkeys name it: its id, which tells nothing about the person."""
    return str(user.id).encode()


def verified_registration(challenge: bytes) -> VerifiedRegistration:
    """The new passkey the browser sent, made for this site against ``challenge``; else 400."""
    rp_id, origin = relying_party()
    try:
        made = webauthn.verify_registration_response(
            credential=sent_credential(),
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except UNVERIFIABLE as error:
        raise BadRequest(f"The passkey could not be verified: {error}") from None
    if len(made.credential_id) > CREDENTIAL_ID_MAX:
        raise BadRequest("The passkey's id is longer than WebAuthn allows.")
    return made


def sent_assertion() -> AuthenticationCredential:
    """The browser's answer to a sign-in challenge, parsed; else a 400."""
    try:
        return parse_authentication_credential_json(sent_credential())
    except UNVERIFIABLE as error:
        raise BadRequest(f"The passkey's answer is not one WebAuthn makes: {error}") from None


def check_assertion(
    passkey: Passkey, assertion: AuthenticationCredential, challenge: bytes, issued: datetime
) -> None:
    """Verify ``assertion`` is ``passkey``'s signature of ``challenge``; record its use.

    Refused (400): a bad signature or origin, no user verification, a counter that did not
    go up (a clone: logged), or a passkey used since the challenge was issued (an old
    cookie brought it back). The record is an UPDATE that only passes from the state just
    read: of two requests racing with one answer, one wins.
    """
    rp_id, origin = relying_party()
    try:
        verified = webauthn.verify_authentication_response(
            credential=assertion,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,  # the counter is checked below, with its message
            require_user_verification=True,
        )
    except UNVERIFIABLE as error:
        raise BadRequest(f"The passkey could not be verified: {error}") from None
    count = verified.new_sign_count
    if (count or passkey.sign_count) and count <= passkey.sign_count:
        current_app.logger.warning(
            "passkey %d of user %d refused: sign count %d not above %d, a clone?",
            passkey.id,
            passkey.user_id,
            count,
            passkey.sign_count,
        )
        raise BadRequest(CLONE)
    used = db.session.execute(
        update(Passkey)
        .where(Passkey.id == passkey.id, Passkey.sign_count == passkey.sign_count)
        .where(or_(Passkey.last_used.is_(None), Passkey.last_used < issued))
        .values(sign_count=count, last_used=datetime.now(UTC).replace(tzinfo=None))
        .execution_options(synchronize_session=False)
    )
    if not used.rowcount:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
        raise BadRequest("This passkey was used since this page asked: try again.")
