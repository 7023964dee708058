import pytest
from flask import g, session
from sqlalchemy import select

from flaskr.db import db
from flaskr.models import User
from tests.conftest import make_app


def test_register(client, app) -> None:
    assert client.get("/auth/register").status_code == 200
    response = client.post("/auth/register", data={"username": "a", "password": "a"})
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
        ("test", "test", b"already registered"),
        ("x" * 33, "a", b"Username must be at most 32 characters."),
        ("has space", "a", b"Username may only hold letters"),
        ("a", "p" * 1025, b"Password must be at most 1024 characters."),
    ),
)
def test_register_validate_input(client, username, password, message) -> None:
    response = client.post("/auth/register", data={"username": username, "password": password})
    assert message in response.data
    assert response.status_code == 400


def test_register_taken_name_changes_nothing(client, app) -> None:
    client.post("/auth/register", data={"username": "test", "password": "new"})
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(User)) == 2


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
    (("a", "test", b"Incorrect username."), ("test", "a", b"Incorrect password.")),
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
    response = client.post("/auth/register", data={"username": "z", "password": "z"})
    assert response.status_code == 400
    assert b"The form expired" in response.data
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "z")) is None
    page = client.get("/auth/register").text
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = client.post(
        "/auth/register", data={"username": "z", "password": "z", "csrf_token": token}
    )
    assert response.headers["Location"] == "/auth/login"
