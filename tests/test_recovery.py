"""flaskr/recovery.py: forgotten passwords and e-mail addresses, by links in the outbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from flaskr import accounts
from flaskr.db import db
from flaskr.models import MailRequest, User
from tests.helpers import AuthActions, form_token, outbox
from toolkit.apps import make_app

MAIL = {
    "MAIL_URL": "smtp://mail.example.com:587",
    "MAIL_FROM": "blog@example.com",
    "SITE_URL": "https://blog.example.com",
}
SENT = b"If that account has an e-mail address, a link to set a new password is on its way"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = make_app(tmp_path, **MAIL)
    with app.app_context():
        db.session.get_one(User, 1).email = "Test@Example.com"
        db.session.commit()
    yield app
    with app.app_context():
        db.engine.dispose()


def mailed_link(app: Flask, path: str) -> str:
    """The path of the link in the newest message, which must lead under ``path``."""
    body = outbox(app)[-1].body
    found = re.search(r"https://blog\.example\.com(/\S+)", body)
    assert found is not None, body
    assert found[1].startswith(path), body
    return found[1]


def test_login_page_links_to_forgot(client: FlaskClient) -> None:
    assert b'href="/auth/forgot"' in client.get("/auth/login").data


def test_without_mail_the_page_says_so(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    for response in (client.get("/auth/forgot"), client.post("/auth/forgot", data={"name": "x"})):
        assert response.status_code == 200
        assert b"This site sends no e-mail" in response.data
        assert b"flask set-password" in response.data


@pytest.mark.parametrize("name", ("test", "TEST", "test@example.com", "TEST@example.COM"))
def test_a_reset_is_mailed_by_name_or_address(app, client, name) -> None:
    response = client.post("/auth/forgot", data={"name": name})
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    (message,) = outbox(app)
    assert message.recipient == "Test@Example.com"
    assert message.subject == "Set a new password"
    assert "https://blog.example.com/auth/reset/" in message.body


@pytest.mark.parametrize("name", ("other", "nobody", "nobody@example.com"))
def test_the_answer_is_the_same_for_any_name(app, client, name) -> None:
    """No address, no account: the same redirect and message, and nothing mailed."""
    response = client.post("/auth/forgot", data={"name": name}, follow_redirects=True)
    assert response.status_code == 200
    assert SENT in response.data
    assert outbox(app) == []


def test_an_empty_name_is_refused(client) -> None:
    response = client.post("/auth/forgot", data={"name": ""})
    assert response.status_code == 400
    assert b"Username or e-mail address is required." in response.data


def test_the_link_sets_a_password_once_and_ends_every_session(app, client) -> None:
    other = app.test_client()
    AuthActions(other).login()
    client.post("/auth/forgot", data={"name": "test"})
    path = mailed_link(app, "/auth/reset/")
    form = client.get(path)
    assert form.status_code == 200 and b"Set a New Password" in form.data
    short = client.post(path, data={"password": "short"})
    assert short.status_code == 400
    done = client.post(path, data={"password": "a-new-password"})
    assert done.headers["Location"] == "/auth/login"
    assert other.get("/create").status_code == 302  # the other session ended
    assert AuthActions(client).login("test", "a-new-password").headers["Location"] == "/"
    again = client.post(path, data={"password": "yet-another-one"})
    assert again.status_code == 400
    assert b"has expired, was used already" in again.data


def test_the_link_dies_when_the_password_changes(app, client, auth) -> None:
    client.post("/auth/forgot", data={"name": "test"})
    path = mailed_link(app, "/auth/reset/")
    auth.login()
    client.post("/auth/password", data={"current": "test", "password": "changed-pw"})
    assert client.get(path).status_code == 400


def test_the_link_expires(app, client, monkeypatch) -> None:
    client.post("/auth/forgot", data={"name": "test"})
    path = mailed_link(app, "/auth/reset/")
    app.config["PASSWORD_RESET_SECONDS"] = -1
    assert client.get(path).status_code == 400


@pytest.mark.parametrize("token", ("x", "a" * 300, "WzEsICJ4Il0.aaaa.bbbb"))
def test_a_bad_link_is_a_clear_400(client, token) -> None:
    response = client.get(f"/auth/reset/{token}")
    assert response.status_code == 400
    assert b"Ask for a new one" in response.data


def test_a_token_for_another_purpose_is_refused(app) -> None:
    with app.test_request_context():
        user = db.session.get_one(User, 1)
        confirm = accounts.email_token(user, "new@example.com")
        assert accounts.user_for_reset(confirm) is None
        assert accounts.email_to_confirm(accounts.reset_token(user)) is None


def test_disabled_accounts_get_no_mail(app, client) -> None:
    with app.app_context():
        accounts.set_disabled(db.session.get_one(User, 1), True)
    client.post("/auth/forgot", data={"name": "test"})
    assert outbox(app) == []


def test_mail_per_account_is_bounded_silently(app, client) -> None:
    """Past the account's limit, nothing more is mailed and the answer stays the same."""
    for _ in range(5):
        response = client.post("/auth/forgot", data={"name": "test"}, follow_redirects=True)
        assert response.status_code == 200 and SENT in response.data
    assert len(outbox(app)) == app.config["MAIL_PER_ACCOUNT"]


def test_requests_per_client_address_are_throttled(app, client) -> None:
    app.config["MAIL_REQUESTS_PER_ADDRESS"] = 2
    for _ in range(2):
        assert client.post("/auth/forgot", data={"name": "nobody"}).status_code == 302
    refused = client.post("/auth/forgot", data={"name": "nobody"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    with app.app_context():  # the refused one is taken back: hammering does not prolong it
        assert db.session.scalar(select(func.count()).select_from(MailRequest)) == 2


def test_the_site_wide_limit_holds(app, client) -> None:
    app.config["MAIL_REQUESTS_GLOBAL"] = 1
    client.post("/auth/forgot", data={"name": "test"})
    elsewhere = {"REMOTE_ADDR": "192.0.2.9"}
    refused = client.post("/auth/forgot", data={"name": "test"}, environ_base=elsewhere)
    assert refused.status_code == 429


def test_forgot_and_reset_need_their_csrf_token(tmp_path) -> None:
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True, **MAIL)
    client = app.test_client()
    assert client.post("/auth/forgot", data={"name": "test"}).status_code == 400
    token = form_token(client, "/auth/forgot")
    sent = client.post("/auth/forgot", data={"name": "test", "csrf_token": token})
    assert sent.status_code == 302


# The e-mail address page.


def test_email_page_needs_login(client) -> None:
    assert client.get("/auth/email").headers["Location"] == "/auth/login"


def test_email_page_shows_the_address(client, auth) -> None:
    auth.login()
    page = client.get("/auth/email")
    assert page.status_code == 200
    assert b"Test@Example.com" in page.data
    assert b'for="email"' in page.data and b'for="current"' in page.data
    assert b'href="/auth/email"' in client.get("/auth/password").data


def test_a_new_address_is_confirmed_by_a_link_mailed_to_it(app, client, auth) -> None:
    auth.login("other", "other")
    response = client.post("/auth/email", data={"email": " new@example.com ", "current": "other"})
    assert response.headers["Location"] == "/auth/email"
    (message,) = outbox(app)
    assert message.recipient == "new@example.com"
    path = mailed_link(app, "/auth/email/confirm/")
    with app.app_context():
        assert db.session.get_one(User, 2).email is None  # not before the link is followed
    page = client.get(path)
    assert page.status_code == 200 and b"new@example.com" in page.data
    assert client.post(path).headers["Location"] == "/"
    with app.app_context():
        assert db.session.get_one(User, 2).email == "new@example.com"
    assert client.post(path).status_code == 400  # once


def test_a_changed_address_tells_the_old_one(app, client, auth) -> None:
    auth.login()
    client.post("/auth/email", data={"email": "moved@example.com", "current": "test"})
    client.post(mailed_link(app, "/auth/email/confirm/"))
    notice = outbox(app)[-1]
    assert notice.recipient == "Test@Example.com"
    assert "moved@example.com" in notice.body


def test_a_taken_address_is_answered_as_a_free_one(app, client, auth) -> None:
    auth.login("other", "other")
    response = client.post("/auth/email", data={"email": "TEST@example.com", "current": "other"})
    assert response.headers["Location"] == "/auth/email"
    assert outbox(app) == []


def test_an_address_taken_meanwhile_is_refused_at_confirmation(app, client, auth) -> None:
    auth.login("other", "other")
    client.post("/auth/email", data={"email": "late@example.com", "current": "other"})
    path = mailed_link(app, "/auth/email/confirm/")
    with app.app_context():
        db.session.get_one(User, 1).email = "LATE@example.com"
        db.session.commit()
    refused = client.post(path)
    assert refused.status_code == 400
    assert b"Another account has this e-mail address." in refused.data


@pytest.mark.parametrize(
    ("data", "message"),
    (
        ({"email": "not-an-address", "current": "test"}, b"must be an address such as"),
        ({"email": "a@b.c\r\nBcc: x@y.z", "current": "test"}, b"must be an address such as"),
        # Each of these names a recipient other than the string stored, or several.
        ({"email": "me<test@example.com>", "current": "test"}, b"must be an address such as"),
        ({"email": '"test@example.com', "current": "test"}, b"must be an address such as"),
        ({"email": "root,postmaster,me@evil.test", "current": "test"}, b"must be an address"),
        ({"email": "x:test@example.com", "current": "test"}, b"must be an address such as"),
        ({"email": "a@(b.c", "current": "test"}, b"must be an address such as"),
        ({"email": "älice@example.com", "current": "test"}, b"must be an address such as"),
        ({"email": "new@example.com", "current": "wrong"}, b"Current password is incorrect."),
        ({"email": "new@example.com", "current": ""}, b"Current password is required."),
    ),
)
def test_email_change_refused(app, client, auth, data, message) -> None:
    auth.login()
    response = client.post("/auth/email", data=data)
    assert response.status_code == 400
    assert message in response.data
    assert b'aria-invalid="true"' in response.data
    assert outbox(app) == []


def test_an_address_is_removed_without_a_link(app, client, auth) -> None:
    auth.login()
    response = client.post("/auth/email", data={"email": "", "current": "test"})
    assert response.headers["Location"] == "/auth/email"
    with app.app_context():
        assert db.session.get_one(User, 1).email is None
    (notice,) = outbox(app)  # the address removed is told: it may not be its owner asking
    assert notice.recipient == "Test@Example.com"
    assert notice.subject == "Your e-mail address was removed"


def test_without_mail_no_address_can_be_added(tmp_path) -> None:
    app = make_app(tmp_path)
    client = app.test_client()
    AuthActions(client).login()
    assert b"This site sends no e-mail" in client.get("/auth/email").data
    response = client.post("/auth/email", data={"email": "new@example.com", "current": "test"})
    assert response.status_code == 400
    assert b"cannot confirm a new address" in response.data


def test_a_bad_confirmation_link_is_a_clear_400(client, auth) -> None:
    auth.login()
    response = client.get("/auth/email/confirm/nonsense")
    assert response.status_code == 400
    assert b"ask for a new one" in response.data


def test_only_the_account_that_asked_may_confirm(app, client, auth) -> None:
    """Whoever reads the link at the address (mistyped, or a stranger's) cannot attach it to
    the account, and so cannot then reset its password through it."""
    auth.login("other", "other")
    client.post("/auth/email", data={"email": "typo@evil.test", "current": "other"})
    path = mailed_link(app, "/auth/email/confirm/")
    stranger = app.test_client()
    assert stranger.get(path).headers["Location"] == "/auth/login"
    assert stranger.post(path).headers["Location"] == "/auth/login"
    AuthActions(stranger).login()  # logged in, but as another account
    assert stranger.post(path, data={"csrf_token": "x"}).status_code == 400
    with app.app_context():
        assert db.session.get_one(User, 2).email is None
    assert client.post(path).headers["Location"] == "/"  # the owner still may


def test_a_dead_confirmation_link_stays_dead_when_the_address_comes_back(app, client, auth) -> None:
    """A link made before any change never works again, even once the account is back at
    the address it had when the link was made."""
    auth.login("other", "other")
    client.post("/auth/email", data={"email": "typo@evil.test", "current": "other"})
    stale = mailed_link(app, "/auth/email/confirm/")
    client.post("/auth/email", data={"email": "right@example.com", "current": "other"})
    client.post(mailed_link(app, "/auth/email/confirm/"))
    client.post("/auth/email", data={"email": "", "current": "other"})  # back to no address
    with app.app_context():
        assert db.session.get_one(User, 2).email is None
    assert client.post(stale).status_code == 400
    with app.app_context():
        assert db.session.get_one(User, 2).email is None


def test_a_reset_link_sets_the_password_once_even_when_used_twice_at_once(app) -> None:
    """Two requests with the same link, both past the check: only the first sets it."""
    with app.app_context():
        user = db.session.get_one(User, 1)
        as_read = SimpleNamespace(id=user.id, session_version=user.session_version)
        assert accounts.reset_password(user, "first-password")
        assert not accounts.reset_password(as_read, "second-password")  # read before the first
        db.session.expire_all()
        assert accounts.password_matches(db.session.get_one(User, 1), "first-password")


def test_mail_links_use_the_site_url_not_the_host_header(app) -> None:
    client = app.test_client()
    client.post("/auth/forgot", data={"name": "test"}, headers={"Host": "evil.example"})
    assert "evil.example" not in outbox(app)[0].body


def test_requests_past_an_accounts_limit_count_for_the_address_like_any(app, client) -> None:
    """Known names and unknown ones meet the client address's limit after as many requests:
    a request past the account's own limit, which mails nothing, still counts for it."""
    app.config["MAIL_REQUESTS_PER_ADDRESS"] = 6
    for name, address in (("test", "10.7.0.1"), ("nobody", "10.7.0.2")):
        at = {"REMOTE_ADDR": address}
        statuses = [
            client.post("/auth/forgot", data={"name": name}, environ_base=at).status_code
            for _ in range(8)
        ]
        assert statuses == [302] * 6 + [429] * 2, (name, statuses)
    assert len(outbox(app)) == app.config["MAIL_PER_ACCOUNT"]


def test_tagged_addresses_share_their_mailboxs_limit(app) -> None:
    """victim+1@ and victim+2@ reach one inbox: one recipient limit, whatever the tag, for
    requests from two accounts (each within its own limit)."""
    for name in ("test", "other"):
        client = app.test_client()
        AuthActions(client).login(name, name)
        for n in range(2):
            data = {"email": f"Victim+{name}{n}@example.org", "current": name}
            assert client.post("/auth/email", data=data).status_code == 302
    assert len(outbox(app)) == app.config["MAIL_PER_ACCOUNT"]  # 3 of the 4
