import pytest
from flask import g, session
from sqlalchemy import select

from flaskr.db import db
from flaskr.models import User
from tests.helpers import AuthActions, form_token
from toolkit.apps import make_app


def test_register(client, app) -> None:
    assert client.get("/auth/register").status_code == 200
    response = client.post("/auth/register", data={"username": "a", "password": "a-password"})
    assert response.headers["Location"] == "/auth/login"
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "a"))
        assert user is not None
        assert user.password.startswith("scrypt:")


@pytest.mark.parametrize(
    ("username", "password", "message"),
    (
        ("", "", b"Username is required."),
        ("a", "", b"Password is required."),
        ("x" * 33, "a-password", b"Username must be at most 32 characters."),
        ("has space", "a-password", b"Username may only hold"),
        ("bob\n", "a-password", b"Username may only hold"),  # `$` would let it through
        ("\u0430lice", "a-password", b"Username may only hold"),  # a Cyrillic a
        ("caf\u00e9", "a-password", b"Username may only hold"),
        ("a", "p" * 1025, b"Password must be 8 to 1024 characters."),
        ("a", "1234567", b"Password must be 8 to 1024 characters."),
    ),
)
def test_register_validate_input(client, username, password, message) -> None:
    response = client.post("/auth/register", data={"username": username, "password": password})
    assert message in response.data
    assert response.status_code == 400


@pytest.mark.parametrize("taken", ["test", "TEST", "Test"])
def test_register_taken_name_changes_nothing(client, app, auth, taken) -> None:
    """Names are one whatever their case; the taken one keeps its owner and password."""
    client.post("/auth/register", data={"username": taken, "password": "new-password"})
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(User)) == 2
    assert auth.login("test", "new-password").status_code == 400
    assert auth.login("test", "test").headers["Location"] == "/"


def test_register_answer_does_not_tell_taken_names(client) -> None:
    """A taken name and a free one get the same redirect and the same words."""
    answers = []
    for name in ("test", "newcomer"):
        response = client.post("/auth/register", data={"username": name, "password": "pw-123456"})
        page = client.get(response.headers["Location"]).text
        answers.append(
            (response.status_code, response.headers["Location"], page.replace(name, "N"))
        )
    assert answers[0] == answers[1]
    assert "If that fails, the name was taken already" in answers[0][2]


def test_unique_index_holds_whatever_the_case(app) -> None:
    """Two writers racing past the form still cannot make Alice and alice."""
    from sqlalchemy.exc import IntegrityError

    with app.app_context():
        db.session.add(User(username="Other", password="x"))
        with pytest.raises(IntegrityError):
            db.session.commit()


def test_login(client, auth) -> None:
    assert client.get("/auth/login").status_code == 200
    response = auth.login()
    assert response.headers["Location"] == "/"
    with client:
        client.get("/")
        assert session["user_id"] == 1
        assert g.user.username == "test"


@pytest.mark.parametrize(
    ("username", "password", "message"),
    # One message for both: the answer must not tell which names exist.
    (
        ("a", "test", b"Incorrect username or password."),
        ("test", "a", b"Incorrect username or password."),
    ),
)
def test_login_validate_input(auth, username, password, message) -> None:
    response = auth.login(username, password)
    assert message in response.data
    assert response.status_code == 400


def test_login_missing_fields(client) -> None:
    response = client.post("/auth/login", data={})
    assert b"Username is required." in response.data


def test_logout(client, auth) -> None:
    auth.login()
    with client:
        auth.logout()
        assert "user_id" not in session


def test_session_cookie_flags(client, auth) -> None:
    response = auth.login()
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_secure_over_https(client, auth) -> None:
    response = client.post(
        "/auth/login",
        data={"username": "test", "password": "test"},
        base_url="https://localhost",
    )
    assert "Secure" in response.headers["Set-Cookie"]


def test_forged_session_is_ignored(client) -> None:
    client.set_cookie("session", "eyJ1c2VyX2lkIjoxfQ.forged.signature")
    assert b"Log In" in client.get("/").data


def test_csrf_is_required_on_every_form(tmp_path) -> None:
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    response = client.post("/auth/register", data={"username": "z", "password": "z-password"})
    assert response.status_code == 400
    assert b"The form expired" in response.data
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "z")) is None
    token = form_token(client, "/auth/register")
    response = client.post(
        "/auth/register", data={"username": "z", "password": "z-password", "csrf_token": token}
    )
    assert response.headers["Location"] == "/auth/login"


def test_login_name_is_case_insensitive(auth) -> None:
    assert auth.login("TEST", "test").headers["Location"] == "/"


def test_names_from_before_the_ascii_rule_still_log_in(app, auth) -> None:
    with app.app_context():
        hashed = db.session.get(User, 1).password
        db.session.add(User(username="\u00c9mile", password=hashed))
        db.session.commit()
    assert auth.login("\u00c9mile", "test").headers["Location"] == "/"


def test_unknown_name_costs_a_password_hash_too(auth, monkeypatch) -> None:
    """The answer for a name nobody has takes as long as for a real one: a scrypt check runs."""
    from flaskr import accounts

    checked = []
    real = accounts.check_password_hash

    def spy(hashed: str, password: str) -> bool:
        checked.append(hashed.split(":")[0])
        return real(hashed, password)

    monkeypatch.setattr(accounts, "check_password_hash", spy)
    assert auth.login("nobody-has-this", "whatever").status_code == 400
    assert checked == ["scrypt"]
    # The tutorial's accounts still hold faster pbkdf2 hashes: a scrypt check pads them.
    checked.clear()
    assert auth.login("test", "wrong").status_code == 400
    assert checked == ["scrypt", "pbkdf2"]


def test_logout_by_get_only_asks(client, auth) -> None:
    """`<img src=/auth/logout>` in someone's post must not log its readers out."""
    auth.login()
    page = client.get("/auth/logout")
    assert page.status_code == 200
    assert b'<form method="post">' in page.data and b"Log Out" in page.data
    assert b"test" in client.get("/create").data  # still logged in
    with client:
        assert auth.logout().headers["Location"] == "/"
        assert "user_id" not in session
    assert client.get("/auth/logout").headers["Location"] == "/"  # nothing left to end


def test_logout_needs_its_csrf_token(tmp_path) -> None:
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    token = form_token(client, "/auth/login")
    client.post("/auth/login", data={"username": "test", "password": "test", "csrf_token": token})
    assert client.post("/auth/logout").status_code == 400  # another site's form
    assert client.get("/create").status_code == 200
    token = form_token(client, "/auth/logout")
    assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/create").status_code == 302


def copy_session(source, target) -> None:
    target.set_cookie("session", source.get_cookie("session").value)


def test_logout_ends_the_session_on_the_server(app, client, auth) -> None:
    """A session cookie copied before logout no longer works after it."""
    auth.login()
    thief = app.test_client()
    copy_session(client, thief)
    assert thief.get("/create").status_code == 200
    auth.logout()
    assert thief.get("/create").headers["Location"] == "/auth/login"
    assert b"Log In" in thief.get("/").data


def test_session_expires_after_the_lifetime(client, auth, monkeypatch) -> None:
    import time

    auth.login()
    assert client.get("/create").status_code == 200
    week = 7 * 24 * 3600
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + week + 60)
    assert client.get("/create").headers["Location"] == "/auth/login"


def change_password(client, current: str, new: str):
    return client.post("/auth/password", data={"current": current, "password": new})


def test_password_change_ends_other_sessions(app, client, auth) -> None:
    auth.login()
    laptop = app.test_client()
    copy_session(client, laptop)
    assert client.get("/auth/password").status_code == 200
    response = change_password(client, "test", "a new long password")
    assert response.headers["Location"] == "/"
    assert b"Every other session of yours has ended." in client.get("/").data
    assert client.get("/create").status_code == 200  # this session goes on
    assert laptop.get("/create").headers["Location"] == "/auth/login"  # the others end
    other = app.test_client()
    assert AuthActions(other).login("test", "test").status_code == 400
    assert AuthActions(other).login("test", "a new long password").status_code == 302


@pytest.mark.parametrize(
    ("current", "new", "message"),
    (
        ("wrong", "a new long password", b"Current password is incorrect."),
        ("test", "short", b"New password must be 8 to 1024 characters."),
        ("", "a new long password", b"Current password is required."),
    ),
)
def test_password_change_refused(client, auth, current, new, message) -> None:
    auth.login()
    response = change_password(client, current, new)
    assert response.status_code == 400
    assert message in response.data
    client.post("/auth/logout")
    assert auth.login("test", "test").status_code == 302  # the old password still holds


def test_password_change_needs_login(client) -> None:
    assert client.get("/auth/password").headers["Location"] == "/auth/login"


def test_registering_a_name_makes_no_admin(tmp_path) -> None:
    """The old FLASKR_ADMINS named admins, so anyone could register one: it is refused now."""
    from flaskr import create_app
    from flaskr.config import ConfigError
    from toolkit.apps import config_for

    with pytest.raises(ConfigError, match="make-admin"):
        create_app(config_for(tmp_path, ADMINS=["admin"]))
