"""flaskr.passkeys and flaskr.ceremony: adding a passkey, signing in with one alone or as the
second step, the clone rule, single-use challenges, and refusals answered in JSON.

The authenticator is made here (``Authenticator``): a P-256 key per credential, whose
attestation ("none") and assertions are built and signed with ``cryptography`` and ``cbor2``
as a browser's authenticator would, so py_webauthn verifies them for real."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from webauthn.helpers import bytes_to_base64url

from flaskr.ceremony import CHALLENGE_SECONDS
from flaskr.db import db
from flaskr.models import Passkey
from tests.helpers import AuthActions, at_once, give_second_factor
from tests.test_second_factor import code, logged_in_as

ORIGIN = "http://localhost"  # the test client's requests: the RP ID is "localhost"
UP, UV, AT = 0x01, 0x04, 0x40  # authenticator data flags: present, verified, attested


def b64(data: bytes) -> str:
    return bytes_to_base64url(data)


class Authenticator:
    """One passkey on a software authenticator; ``counts``: whether its counter goes up."""

    def __init__(self, counts: bool = True) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(16)
        self.sign_count = 0
        self.counts = counts
        self.user_handle: str | None = None

    def copy(self) -> Authenticator:
        """A clone: the same key and id, and the counter where it was copied."""
        clone = Authenticator(self.counts)
        clone.__dict__.update(self.__dict__)
        return clone

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: x, -3: y})  # EC2, ES256, P-256

    def _data(self, rp_id: str, flags: int) -> bytes:
        data = hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
        return data + self.sign_count.to_bytes(4, "big")

    def create(self, options: dict[str, Any], origin: str = ORIGIN) -> dict[str, Any]:
        """What navigator.credentials.create() gives the page, as passkeys.js sends it."""
        self.user_handle = options["user"]["id"]
        client = _client_data("webauthn.create", options["challenge"], origin)
        attested = self._data(options["rp"]["id"], UP | UV | AT) + bytes(16)  # no AAGUID
        attested += len(self.credential_id).to_bytes(2, "big") + self.credential_id
        attested += self._cose_key()
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": attested})
        response = {"clientDataJSON": b64(client), "attestationObject": b64(attestation)}
        return self._answer(response)

    def get(self, options: dict[str, Any], origin: str = ORIGIN) -> dict[str, Any]:
        """What navigator.credentials.get() gives the page, as passkeys.js sends it."""
        if self.counts:
            self.sign_count += 1
        client = _client_data("webauthn.get", options["challenge"], origin)
        data = self._data(options["rpId"], UP | UV)
        signature = self.key.sign(data + hashlib.sha256(client).digest(), ec.ECDSA(hashes.SHA256()))
        return self._answer(
            {
                "clientDataJSON": b64(client),
                "authenticatorData": b64(data),
                "signature": b64(signature),
                "userHandle": self.user_handle,
            }
        )

    def _answer(self, response: dict[str, Any]) -> dict[str, Any]:
        credential_id = b64(self.credential_id)
        return {"id": credential_id, "rawId": credential_id, "type": "public-key",
                "response": response, "clientExtensionResults": {}}  # fmt: skip


def _client_data(kind: str, challenge: str, origin: str) -> bytes:
    return json.dumps({"type": kind, "challenge": challenge, "origin": origin}).encode()


def send(client: FlaskClient, path: str, credential: Any) -> Any:
    """Post an answer as passkeys.js does: form data, its JSON in "credential"."""
    text = credential if isinstance(credential, str) else json.dumps(credential)
    return client.post(path, data={"credential": text})


def add_passkey(
    client: FlaskClient, name: str = "Phone", authenticator: Authenticator | None = None
) -> Authenticator:
    """Add a passkey to the logged-in account, from the options to the stored row."""
    authenticator = authenticator or Authenticator()
    options = client.post("/auth/passkeys/add/options", data={"name": name, "current": "test"})
    assert options.status_code == 200, options.text
    added = send(client, "/auth/passkeys/add", authenticator.create(options.json))
    assert added.status_code == 200, added.text
    assert added.json == {"redirect": "/auth/passkeys"}
    return authenticator


def sign_in(client: FlaskClient, authenticator: Authenticator, step: str = "sign-in") -> Any:
    """Ask for a challenge and answer it with ``authenticator``: the server's answer."""
    options = client.post(f"/auth/passkeys/{step}/options")
    assert options.status_code == 200, options.text
    return send(client, f"/auth/passkeys/{step}", authenticator.get(options.json))


def passkeys(app: Flask) -> list[Passkey]:
    with app.app_context():
        rows = list(db.session.scalars(select(Passkey).order_by(Passkey.id)))
        db.session.expunge_all()
        return rows


def test_add_a_passkey_then_sign_in_with_it_alone(client, auth, app) -> None:
    auth.login()
    page = client.get("/auth/passkeys")
    assert page.status_code == 200 and "You have no passkey yet." in page.text
    assert "/static/passkeys.js" in page.text and "<script>" not in page.text  # strict CSP
    assert "data-passkeys-unavailable" in page.text  # said until the script finds WebAuthn
    options = client.post("/auth/passkeys/add/options", data={"name": "Phone", "current": "test"})
    made = options.json
    assert made["rp"] == {"id": "localhost", "name": "Flaskr"}
    assert made["user"]["name"] == "test" and made["excludeCredentials"] == []
    assert made["authenticatorSelection"]["residentKey"] == "required"  # discoverable
    assert made["authenticatorSelection"]["userVerification"] == "required"
    authenticator = Authenticator()
    assert send(client, "/auth/passkeys/add", authenticator.create(made)).status_code == 200
    (row,) = passkeys(app)
    assert (row.user_id, row.name, row.sign_count, row.last_used) == (1, "Phone", 0, None)
    assert row.credential_id == b64(authenticator.credential_id)
    listed = client.get("/auth/passkeys").text
    assert "<td>Phone</td>" in listed and "never" in listed and "Passkey “Phone” added" in listed
    again = client.post("/auth/passkeys/add/options", data={"name": "x", "current": "test"})
    assert again.json["excludeCredentials"][0]["id"] == row.credential_id  # no second one

    auth.logout()
    assert logged_in_as(client) is None
    assert 'data-ceremony="get"' in client.get("/auth/login").text
    options = client.post("/auth/passkeys/sign-in/options").json
    assert options["rpId"] == "localhost" and options["allowCredentials"] == []
    assert options["userVerification"] == "required" and options["timeout"] == 120_000
    signed = send(client, "/auth/passkeys/sign-in", authenticator.get(options))
    assert signed.status_code == 200 and signed.json == {"redirect": "/"}
    assert "flaskr_device" in signed.headers.get("Set-Cookie", "")  # remembered, as a login
    assert logged_in_as(client) == "test"
    (row,) = passkeys(app)
    assert row.sign_count == 1 and row.last_used is not None


def test_adding_needs_the_password_and_a_name(client, auth, app) -> None:
    auth.login()
    wrong = client.post("/auth/passkeys/add/options", data={"name": "Phone", "current": "nope"})
    assert wrong.status_code == 400 and wrong.json["message"] == "Current password is incorrect."
    nameless = client.post("/auth/passkeys/add/options", data={"current": "test"})
    assert nameless.status_code == 400 and nameless.json["message"] == "Name is required."
    # No challenge was given: an answer made up without one is refused.
    made_up = {"rp": {"id": "localhost"}, "user": {"id": "MQ"}, "challenge": b64(bytes(32))}
    refused = send(client, "/auth/passkeys/add", Authenticator().create(made_up))
    assert (
        refused.status_code == 400 and "expired or was answered already" in refused.json["message"]
    )
    assert passkeys(app) == []
    anonymous = client.post("/auth/passkeys/add/options")
    assert anonymous.status_code == 400 or anonymous.headers["Location"] == "/auth/login"


def test_pages_need_a_login(client) -> None:
    assert client.get("/auth/passkeys").headers["Location"] == "/auth/login"
    for path in ("/auth/passkeys/add/options", "/auth/passkeys/add", "/auth/passkeys/remove"):
        assert client.post(path).headers["Location"] == "/auth/login"


def test_a_cloned_passkey_is_refused_and_logged(client, auth, app, caplog) -> None:
    auth.login()
    original = add_passkey(client)
    clone = original.copy()  # copied before its first use: both will say 1
    auth.logout()
    assert sign_in(client, original).status_code == 200
    auth.logout()
    refused = sign_in(client, clone)
    assert refused.status_code == 400
    assert refused.json["message"].startswith("This passkey's signature counter did not go up")
    assert "sign count 1 not above 1, a clone?" in caplog.text
    assert logged_in_as(client) is None
    # An authenticator that never counts (many synced passkeys say 0) is not a clone.
    assert sign_in(client, original).status_code == 200  # 2: the original goes on
    still = add_passkey(client, "Laptop", Authenticator(counts=False))
    auth.logout()
    assert sign_in(client, still).status_code == 200


def test_a_challenge_is_answered_once(client, auth, app) -> None:
    auth.login()
    authenticator = add_passkey(client, authenticator=Authenticator(counts=False))
    auth.logout()
    options = client.post("/auth/passkeys/sign-in/options").json
    answer = authenticator.get(options)
    with client.session_transaction() as session:
        holding_the_challenge = dict(session)
    assert send(client, "/auth/passkeys/sign-in", answer).status_code == 200
    auth.logout()
    again = send(client, "/auth/passkeys/sign-in", answer)
    assert again.status_code == 400
    assert again.json["message"] == (
        "This passkey request expired or was answered already: try again."
    )
    # The session is a cookie: an old one still holds the challenge. The passkey was used
    # after that challenge was issued, so the answer is refused all the same.
    with client.session_transaction() as session:
        session.update(holding_the_challenge)
    replayed = send(client, "/auth/passkeys/sign-in", answer)
    assert replayed.status_code == 400
    assert replayed.json["message"] == "This passkey was used since this page asked: try again."
    assert logged_in_as(client) is None


def test_a_challenge_expires_and_serves_one_purpose(client, auth, app, monkeypatch) -> None:
    auth.login()
    authenticator = add_passkey(client)
    auth.logout()
    options = client.post("/auth/passkeys/sign-in/options").json
    later = __import__("time").time() + CHALLENGE_SECONDS + 1
    monkeypatch.setattr("flaskr.ceremony.time.time", lambda: later)
    late = send(client, "/auth/passkeys/sign-in", authenticator.get(options))
    assert late.status_code == 400 and "expired" in late.json["message"]
    monkeypatch.undo()
    options = client.post("/auth/passkeys/sign-in/options").json
    elsewhere = send(client, "/auth/passkeys/second-step", authenticator.get(options))
    assert elsewhere.status_code == 400  # no login waits for a second step here


def test_a_passkey_as_the_second_step(client, auth, app) -> None:
    auth.login()
    authenticator = add_passkey(client)
    auth.logout()
    assert auth.login().headers["Location"] == "/auth/code"  # the password is not enough now
    page = client.get("/auth/code").text
    assert "Use a passkey" in page and 'name="code"' not in page  # no app, no codes
    assert logged_in_as(client) is None
    allowed = client.post("/auth/passkeys/second-step/options").json["allowCredentials"]
    assert [c["id"] for c in allowed] == [b64(authenticator.credential_id)]
    signed = sign_in(client, authenticator, "second-step")
    assert signed.status_code == 200 and signed.json == {"redirect": "/"}
    assert logged_in_as(client) == "test"


def test_with_totp_too_the_code_page_offers_both(client, auth, app) -> None:
    secret = give_second_factor(app, "test")
    auth.login()
    client.post("/auth/code", data={"code": code(secret)})
    add_passkey(client)
    auth.logout()
    auth.login()
    page = client.get("/auth/code").text
    assert 'name="code"' in page and "Use a passkey" in page


def test_another_accounts_passkey_is_refused(client, auth, app) -> None:
    auth.login()
    mine = add_passkey(client)
    auth.logout()
    theirs = Authenticator()
    with app.app_context():
        db.session.add(Passkey(user_id=2, credential_id=b64(theirs.credential_id),
                               public_key=theirs._cose_key(), sign_count=0, name="x"))  # fmt: skip
        db.session.commit()
    theirs.user_handle = b64(b"2")
    auth.login()  # test's password: the second step waits
    refused = sign_in(client, theirs, "second-step")
    assert refused.status_code == 400
    assert refused.json["message"] == "That passkey is not one of this account's."
    assert logged_in_as(client) is None
    # Alone: a passkey whose answer names another account than its own is refused too.
    mine.user_handle = b64(b"2")
    named_other = sign_in(client, mine)
    assert named_other.status_code == 400
    assert named_other.json["message"] == "That passkey names another account."
    assert logged_in_as(client) is None


@pytest.mark.parametrize(
    ("credential", "message"),
    [
        ("{not json", "The passkey's answer is not JSON."),
        # Python 3.11's parser stops at this depth (not JSON); 3.13's reads it (not an object).
        ("[" * 5000 + "]" * 5000, "The passkey's answer is not "),
        ("[1, 2]", "The passkey's answer is not a JSON object."),
        ("x" * 20_000, "The passkey's answer is too long."),
        ("{}", "The passkey's answer is not one WebAuthn makes"),
        ({"id": "AA", "rawId": "AA", "type": "secret-key", "response": {
            "clientDataJSON": "e30", "authenticatorData": "", "signature": ""}},
         "The passkey's answer is not one WebAuthn makes"),
        ({"id": "AA", "rawId": "!!", "type": "public-key", "response": {
            "clientDataJSON": "e30", "authenticatorData": "", "signature": ""}},
         "This site does not know that passkey"),
    ],
)  # fmt: skip
def test_bad_json_is_a_json_400(client, credential, message) -> None:
    client.post("/auth/passkeys/sign-in/options")
    response = send(client, "/auth/passkeys/sign-in", credential)  # no Accept: JSON all the same
    assert response.status_code == 400 and response.is_json
    assert response.json["message"].startswith(message)


def test_made_up_answers_to_a_real_challenge_are_400s(client, auth) -> None:
    auth.login()
    options = client.post("/auth/passkeys/add/options", data={"name": "x", "current": "test"})
    answer = Authenticator().create(options.json)
    answer["response"]["attestationObject"] = b64(b"\xff" * 40)
    broken = send(client, "/auth/passkeys/add", answer)
    assert broken.status_code == 400 and broken.is_json
    assert broken.json["message"].startswith("The passkey could not be verified")


def test_a_passkey_made_for_another_site_is_refused(client, auth, app) -> None:
    """The RP ID and origin are FLASKR_SITE_URL's when it is set, not the request's Host."""
    app.config["SITE_URL"] = "https://blog.example.com"
    auth.login()
    options = client.post("/auth/passkeys/add/options", data={"name": "x", "current": "test"})
    assert options.json["rp"]["id"] == "blog.example.com"
    refused = send(client, "/auth/passkeys/add", Authenticator().create(options.json))
    assert refused.status_code == 400 and "origin" in refused.json["message"]
    options = client.post("/auth/passkeys/add/options", data={"name": "x", "current": "test"})
    site = Authenticator().create(options.json, origin="https://blog.example.com")
    assert send(client, "/auth/passkeys/add", site).status_code == 200


def test_passkey_sign_ins_are_throttled_like_logins(client, auth, app) -> None:
    auth.login()
    authenticator = add_passkey(client)
    auth.logout()
    forger = authenticator.copy()
    forger.key = ec.generate_private_key(ec.SECP256R1())  # the right id, the wrong key
    limit = app.config["LOGIN_FAILURES_PER_ACCOUNT_ADDRESS"]
    for _ in range(limit):
        assert sign_in(client, forger).status_code == 400
    refused = sign_in(client, forger)
    assert refused.status_code == 429 and refused.is_json
    assert refused.json["message"].startswith("Too many failed logins")
    stranger = Authenticator()
    for _ in range(app.config["LOGIN_FAILURES_PER_ADDRESS"]):
        response = sign_in(client, stranger)
    assert response.status_code == 429  # unknown passkeys count against the address


def test_remove_a_passkey_with_the_password(client, auth, app) -> None:
    auth.login()
    add_passkey(client, "Phone")
    add_passkey(client, "Laptop")
    phone, laptop = passkeys(app)
    wrong = client.post("/auth/passkeys/remove", data={"passkey": phone.id, "password": "no"})
    assert wrong.status_code == 400 and "Current password is incorrect." in wrong.text
    not_mine = client.post("/auth/passkeys/remove", data={"passkey": 999, "password": "test"})
    assert not_mine.status_code == 400 and len(passkeys(app)) == 2
    removed = client.post("/auth/passkeys/remove", data={"passkey": phone.id, "password": "test"})
    assert removed.headers["Location"] == "/auth/passkeys"
    assert [p.name for p in passkeys(app)] == ["Laptop"]
    assert "Passkey “Phone” removed" in client.get("/auth/passkeys").text


def test_adding_a_passkey_ends_the_other_sessions(app, client, auth) -> None:
    other = app.test_client()
    AuthActions(other).login()
    auth.login()
    add_passkey(client)
    assert logged_in_as(other) is None
    assert logged_in_as(client) == "test"


def test_a_passkey_is_an_admins_second_factor(client, auth, app, runner) -> None:
    runner.invoke(args=["make-admin", "test"])
    auth.login()
    asked = client.post("/admin/user/2/disable", follow_redirects=True)
    assert asked.request.path == "/auth/two-factor/enrol"
    assert "codes or a passkey" in asked.text and 'href="/auth/passkeys"' in asked.text
    add_passkey(client)
    assert client.post("/admin/user/2/disable").headers["Location"] == "/"


def test_an_operator_removes_passkeys_with_the_second_factor(client, auth, app, runner) -> None:
    auth.login()
    add_passkey(client)
    auth.logout()
    result = runner.invoke(args=["remove-second-factor", "test"])
    assert "Removed the second factor of test" in result.output
    assert passkeys(app) == []
    assert auth.login().headers["Location"] == "/"  # the password alone again


def test_one_password_check_adds_one_passkey_even_from_copied_cookies(client, auth, app) -> None:
    """The add challenge lives in the session cookie: copies of it taken after the password
    was typed, each answering with its own key at the same moment, add one key in all."""
    auth.login()
    options = client.post("/auth/passkeys/add/options", data={"name": "Phone", "current": "test"})
    copies = []
    for _ in range(4):
        copy = app.test_client()
        for cookie in client._cookies.values():  # the cookie as it is now, challenge and all
            copy.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
        copies.append((copy, Authenticator().create(options.json)))
    statuses = at_once(4, lambda i: send(copies[i][0], "/auth/passkeys/add", copies[i][1]))
    assert sorted(r.status_code for r in statuses).count(200) == 1, [r.text for r in statuses]
    assert len(passkeys(app)) == 1


def test_password_checks_spend_the_accounts_cpu_budget(client, auth, app) -> None:
    """Each right password is a hash of CPU: past the budget, a 429 before any hash."""
    app.config["RENDER_CPU_MS_PER_USER"] = 1
    auth.login()
    statuses = [
        client.post("/auth/passkeys/add/options", data={"name": "x", "current": "test"}).status_code
        for _ in range(5)
    ]
    assert 429 in statuses, statuses


def test_removing_twice_is_no_500_and_ends_other_sessions(client, auth, app) -> None:
    other = app.test_client()
    auth.login()
    key = add_passkey(client, "Phone")
    assert sign_in(other, key).status_code == 200 and logged_in_as(other) == "test"
    (phone,) = passkeys(app)
    form = {"passkey": phone.id, "password": "test"}
    assert client.post("/auth/passkeys/remove", data=form).status_code == 302
    assert logged_in_as(other) is None  # a session the passkey (or a clone) opened ends too
    again = client.post("/auth/passkeys/remove", data=form)
    assert again.status_code == 400 and passkeys(app) == []  # no longer one of the choices


def test_an_account_has_at_most_twenty_passkeys(client, auth, app) -> None:
    auth.login()
    with app.app_context():
        for n in range(20):
            db.session.add(Passkey(user_id=1, credential_id=f"id{n}", public_key=b"k",
                                   sign_count=0, name=f"key {n}"))  # fmt: skip
        db.session.commit()
    refused = client.post("/auth/passkeys/add/options", data={"name": "21st", "current": "test"})
    assert refused.status_code == 400 and "20 passkeys" in refused.json["message"]
