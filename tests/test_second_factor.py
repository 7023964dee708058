"""flaskr.second_factor: enrolling TOTP, the code page after the password, recovery codes,
removing the factor, and admins made to have one. Codes are computed here from the secret."""

from __future__ import annotations

import logging
import re
import time

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from flaskr import accounts
from flaskr.auth import PENDING_UNTIL
from flaskr.db import db
from flaskr.models import LoginFailure, Post, RecoveryCode, User
from flaskr.second_factor import accept_code
from tests.helpers import AuthActions, give_second_factor


def code(secret: str, steps: int = 0) -> str:
    """The code of ``secret`` ``steps`` time steps from now."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps)


def user_row(app: Flask, username: str = "test") -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        assert user is not None
        db.session.expunge(user)
        return user


def enrol(client: FlaskClient) -> tuple[str, list[str]]:
    """Enrol the logged-in "test" from the page: its secret and recovery codes."""
    page = client.get("/auth/two-factor/enrol").text
    secret = re.search(r'<code id="totp-key">([A-Z2-7]+)</code>', page)
    assert secret is not None
    response = client.post(
        "/auth/two-factor/enrol", data={"code": code(secret[1]), "current": "test"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"  # the codes are shown once
    codes = re.findall(r"<li><code>([A-Z2-7-]+)</code></li>", response.text)
    return secret[1], codes


def logged_in_as(client: FlaskClient) -> str | None:
    """Whose session this is, as the navigation says: None when it is not logged in."""
    page = client.get("/").text
    found = re.search(r'title="Change your password">([^<]+)</a>', page)
    return found[1] if found else None


def test_enrol_shows_a_qr_code_and_the_key_and_needs_a_code(client, auth, app) -> None:
    auth.login()
    page = client.get("/auth/two-factor/enrol")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"  # the secret: in no cache, the browser's
    assert '<svg role="img"' in page.text and "<title>QR code of the secret</title>" in page.text
    assert 'autocomplete="one-time-code"' in page.text and 'inputmode="numeric"' in page.text
    assert 'for="code"' in page.text  # labelled
    secret = re.search(r'<code id="totp-key">([A-Z2-7]+)</code>', page.text)
    assert secret is not None and len(secret[1]) == 32
    # The same secret until it is confirmed: a reload does not break a scan already made.
    assert secret[1] in client.get("/auth/two-factor/enrol").text
    wrong_password = client.post(
        "/auth/two-factor/enrol", data={"code": code(secret[1]), "current": "nope"}
    )
    assert wrong_password.status_code == 400 and "Current password is incorrect." in (
        wrong_password.text
    )
    wrong_code = client.post("/auth/two-factor/enrol", data={"code": "000000", "current": "test"})
    assert wrong_code.status_code == 400 and "That code is not right" in wrong_code.text
    assert user_row(app).totp_secret is None
    empty = client.post("/auth/two-factor/enrol", data={})
    assert empty.status_code == 400 and "Code is required." in empty.text


def test_enrol_then_ten_codes_shown_once_and_stored_hashed(client, auth, app) -> None:
    other = app.test_client()
    AuthActions(other).login()
    auth.login()
    secret, codes = enrol(client)
    assert len(codes) == len(set(codes)) == 10
    user = user_row(app)
    assert user.totp_secret == secret
    with app.app_context():
        stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10 and not set(stored) & {c.replace("-", "") for c in codes}
    assert logged_in_as(client) == "test"  # this session goes on
    assert logged_in_as(other) is None  # every other one ended
    # Enrolled: the page now offers removal, and enrolling again leads there.
    assert "10</strong> unused recovery codes" in client.get("/auth/two-factor").text
    assert client.get("/auth/two-factor/enrol").headers["Location"] == "/auth/two-factor"


def test_login_asks_for_the_code_and_logs_in_only_then(client, auth, app) -> None:
    secret = give_second_factor(app, "test")
    response = auth.login()
    assert response.headers["Location"] == "/auth/code"
    assert logged_in_as(client) is None
    # A pending login reaches no logged-in page.
    assert client.get("/auth/password").headers["Location"] == "/auth/login"
    assert client.get("/create").headers["Location"] == "/auth/login"
    page = client.get("/auth/code")
    assert page.status_code == 200
    assert 'autocomplete="one-time-code"' in page.text and 'inputmode="numeric"' in page.text
    assert client.post("/auth/code", data={}).status_code == 400  # neither code
    for wrong in ("١٢٣٤٥٦", "x" * 33, "AAAA-AAAA"):  # other digits, too long, not a code
        assert client.post("/auth/code", data={"code": wrong, "recovery": wrong}).status_code == 400
    response = client.post("/auth/code", data={"code": code(secret)})
    assert response.headers["Location"] == "/"
    assert logged_in_as(client) == "test"
    assert "flaskr_device" in response.headers.get("Set-Cookie", "")


def test_accounts_without_a_factor_log_in_as_before(client, auth) -> None:
    assert auth.login().headers["Location"] == "/"
    assert logged_in_as(client) == "test"


def test_a_code_is_not_accepted_twice(client, auth, app) -> None:
    secret = give_second_factor(app, "test")
    used = code(secret)
    auth.login()
    assert client.post("/auth/code", data={"code": used}).headers["Location"] == "/"
    auth.logout()
    auth.login()
    replayed = client.post("/auth/code", data={"code": used})
    assert replayed.status_code == 400 and "used already" in replayed.text
    assert logged_in_as(client) is None
    # The next step's code (what the app shows 30 s later) works.
    assert client.post("/auth/code", data={"code": code(secret, 1)}).headers["Location"] == "/"


def test_a_recovery_code_works_once(client, auth, app) -> None:
    auth.login()
    _, codes = enrol(client)
    auth.logout()
    auth.login()
    spent = codes[3].lower().replace("-", " ")  # typed in any case, with spaces
    response = client.post("/auth/code", data={"recovery": spent}, follow_redirects=True)
    assert "Recovery code used" in response.text and "9 left" in response.text
    assert logged_in_as(client) == "test"
    auth.logout()
    auth.login()
    again = client.post("/auth/code", data={"recovery": codes[3]})
    assert again.status_code == 400
    assert logged_in_as(client) is None
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 9


def test_wrong_codes_are_throttled_per_account_and_the_password_forgets_none(
    client, auth, app
) -> None:
    secret = give_second_factor(app, "test")
    app.config["LOGIN_FAILURES_PER_ACCOUNT_ADDRESS"] = 3
    auth.login()
    for _ in range(2):
        wrong = client.post("/auth/code", data={"code": "000000"})
        assert wrong.status_code == 400
        # Told on the field itself, as other forms do (aria-invalid, the error under it).
        assert 'aria-invalid="true"' in wrong.text and "That code is not right" in wrong.text
    auth.login()  # the right password again forgets no wrong code
    assert client.post("/auth/code", data={"code": "000000"}).status_code == 400
    refused = client.post("/auth/code", data={"code": code(secret)})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert logged_in_as(client) is None
    # Not for ever: an operator's clear-login-failures forgets them, as the window would.
    assert "Forgot 3" in app.test_cli_runner().invoke(args=["clear-login-failures", "test"]).output
    assert client.post("/auth/code", data={"code": code(secret)}).headers["Location"] == "/"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginFailure)) == 0


def test_the_pending_login_is_this_browsers_and_expires(client, auth, app) -> None:
    secret = give_second_factor(app, "test")
    assert app.test_client().get("/auth/code").headers["Location"] == "/auth/login"
    auth.login()
    stranger = app.test_client()
    assert stranger.post("/auth/code", data={"code": code(secret)}).status_code == 302
    assert logged_in_as(stranger) is None
    with client.session_transaction() as session:
        session[PENDING_UNTIL] = int(time.time()) - 1
    response = client.post("/auth/code", data={"code": code(secret)}, follow_redirects=True)
    assert "Log in first" in response.text
    assert logged_in_as(client) is None


def test_a_pending_login_ends_when_the_account_changes(client, auth, app) -> None:
    secret = give_second_factor(app, "test")
    auth.login()
    app.test_cli_runner().invoke(args=["disable-user", "test"])
    assert client.post("/auth/code", data={"code": code(secret)}).status_code == 302
    assert logged_in_as(client) is None


def test_removing_needs_the_password_and_a_code(client, auth, app) -> None:
    auth.login()
    secret, codes = enrol(client)
    wrong = client.post("/auth/two-factor/remove", data={"code": "000000", "current": "test"})
    assert wrong.status_code == 400 and "not right" in wrong.text
    no_password = client.post(
        "/auth/two-factor/remove", data={"code": code(secret, 1), "current": "x"}
    )
    assert no_password.status_code == 400
    assert user_row(app).totp_secret == secret
    removed = client.post(
        "/auth/two-factor/remove", data={"code": code(secret, 1), "current": "test"}
    )
    assert removed.headers["Location"] == "/auth/two-factor"
    assert user_row(app).totp_secret is None
    assert "Add a second factor" in client.get("/auth/two-factor").text
    # Nothing left to remove; the password alone logs in again.
    again = client.post("/auth/two-factor/remove", data={"code": codes[0], "current": "test"})
    assert again.headers["Location"] == "/auth/two-factor"
    auth.logout()
    assert auth.login().headers["Location"] == "/"


def test_a_recovery_code_removes_the_factor_too(client, auth, app) -> None:
    auth.login()
    _, codes = enrol(client)
    removed = client.post("/auth/two-factor/remove", data={"code": codes[0], "current": "test"})
    assert removed.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RecoveryCode)) == 0


def test_operator_removes_a_lost_factor(client, auth, app, caplog) -> None:
    runner = app.test_cli_runner()
    give_second_factor(app, "test")
    with caplog.at_level(logging.WARNING, logger="flaskr"):
        result = runner.invoke(args=["remove-second-factor", "TEST"])
    assert "Removed the second factor of test" in result.output
    (logged,) = [r for r in caplog.records if getattr(r, "moderation", None)]
    assert (logged.moderation, logged.target) == ("remove-second-factor", "test")
    assert logged.actor.startswith("cli:")
    assert user_row(app).totp_secret is None
    assert auth.login().headers["Location"] == "/"
    assert "had no second factor" in runner.invoke(args=["remove-second-factor", "test"]).output
    missing = runner.invoke(args=["remove-second-factor", "nobody"])
    assert missing.exit_code != 0


@pytest.mark.parametrize("path", ["/admin/post/1/remove", "/admin/user/2/disable"])
def test_admins_enrol_before_any_admin_page(client, auth, app, path) -> None:
    app.test_cli_runner().invoke(args=["make-admin", "test"])
    auth.login()
    response = client.post(path, follow_redirects=True)
    assert response.request.path == "/auth/two-factor/enrol"
    assert "Admin pages need a second factor" in response.text
    assert moderated(app) == (False, False)  # neither done
    enrol(client)
    assert client.post(path).status_code == 302
    assert True in moderated(app)


def moderated(app: Flask) -> tuple[bool, bool]:
    """Whether post 1 is gone, and whether "other" is disabled."""
    with app.app_context():
        return db.session.get(Post, 1) is None, user_row(app, "other").disabled


def test_admins_need_no_factor_when_the_setting_is_off(client, auth, app) -> None:
    app.config["REQUIRE_2FA_FOR_ADMINS"] = False
    app.test_cli_runner().invoke(args=["make-admin", "test"])
    auth.login()
    assert client.post("/admin/user/2/disable").headers["Location"] == "/"


def test_pages_need_a_login(client) -> None:
    for path in ("/auth/two-factor", "/auth/two-factor/enrol"):
        assert client.get(path).headers["Location"] == "/auth/login"
    assert client.post("/auth/two-factor/remove").headers["Location"] == "/auth/login"


def test_an_account_without_a_secret_accepts_no_code(app) -> None:
    with app.app_context():
        user = db.session.get_one(User, 1)
        assert not accept_code(user, "000000")


def test_of_two_requests_racing_with_one_code_one_wins(app) -> None:
    """The other read the account before the winner marked the step: its UPDATE finds it."""
    secret = give_second_factor(app, "test")
    with app.app_context():
        user = db.session.get_one(User, 1)  # read before the winner's mark
        winner = update(User).values(totp_last_step=int(time.time()) // 30 + 1)
        db.session.execute(winner.execution_options(synchronize_session=False))
        assert not accept_code(user, code(secret))


def test_a_password_reset_leaves_the_factor(client, auth, app) -> None:
    """Whoever reads the owner's mail sets a password, and is still asked for the code."""
    give_second_factor(app, "test")
    with app.app_context():
        token = accounts.reset_token(db.session.get_one(User, 1))
    reset = client.post(f"/auth/reset/{token}", data={"password": "a new password"})
    assert reset.headers["Location"] == "/auth/login"
    assert auth.login("test", "a new password").headers["Location"] == "/auth/code"
    assert logged_in_as(client) is None
