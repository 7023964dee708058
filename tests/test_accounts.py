import pytest
from sqlalchemy import func, select

from flaskr import accounts
from flaskr.db import db
from flaskr.models import User


def users(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(User.username).order_by(User.id)))


@pytest.mark.parametrize(
    ("username", "password"),
    (
        ("bob\n", "a-password"),  # `$` would let it through
        ("\u0430lice", "a-password"),  # a Cyrillic a
        ("has space", "a-password"),
        ("x" * 33, "a-password"),
        ("bob", "1234567"),
        ("bob", "p" * 1025),
    ),
)
def test_the_register_page_and_create_user_refuse_the_same_accounts(
    app, client, runner, username, password
) -> None:
    page = client.post("/auth/register", data={"username": username, "password": password})
    command = runner.invoke(args=["create-user", username, "--password", password])
    assert page.status_code == 400 and command.exit_code == 1
    assert users(app) == ["test", "other"]


@pytest.mark.parametrize(("username", "password"), (("a.b-c_D9", "p" * 8), ("x" * 32, "p" * 1024)))
def test_the_register_page_and_create_user_allow_the_same_accounts(
    app, client, runner, username, password
) -> None:
    command = runner.invoke(args=["create-user", username, "--password", password])
    assert command.exit_code == 0 and users(app) == ["test", "other", username]
    # The page answers a taken name as a free one (a redirect to log in), a refused one with 400.
    page = client.post(
        "/auth/register", data={"username": username.swapcase(), "password": password}
    )
    assert page.headers["Location"] == "/auth/login"


def test_a_new_account_logs_in_with_a_current_hash(app, auth) -> None:
    with app.app_context():
        user = accounts.create_user("newcomer", "a long password")
        assert accounts.hash_is_current(user.password)
        assert not accounts.hash_is_current(accounts.find_user("test").password)  # the tutorial's
    assert auth.login("newcomer", "a long password").headers["Location"] == "/"


def test_a_taken_name_is_refused_whatever_its_case(app) -> None:
    with app.app_context(), pytest.raises(accounts.NameTaken, match="User TEST is already"):
        accounts.create_user("TEST", "a long password")
    assert users(app) == ["test", "other"]


def test_accounts_are_found_whatever_the_case(app) -> None:
    with app.app_context():
        assert accounts.find_user("OTHER").username == "other"
        assert accounts.find_user("nobody") is None
        assert not accounts.password_matches(None, "test")


def test_admin_is_the_flag_only(app, runner) -> None:
    """A name makes nobody an admin; the flag does, unless the account is disabled."""
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "other"))
        assert not accounts.is_admin(user) and not accounts.is_admin(None)
    runner.invoke(args=["make-admin", "OTHER"])  # names are found whatever their case
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "other"))
        assert accounts.is_admin(user)
        user.disabled = True
        assert not accounts.is_admin(user)


def test_disabling_ends_every_session_and_enabling_lets_the_owner_log_in(app, client, auth) -> None:
    auth.login()
    assert client.get("/create").status_code == 200
    with app.app_context():
        accounts.set_disabled(accounts.find_user("test"), True)
    assert client.get("/create").headers["Location"] == "/auth/login"
    assert auth.login().status_code == 403
    with app.app_context():
        accounts.set_disabled(accounts.find_user("test"), False)
    assert auth.login().headers["Location"] == "/"


def test_a_new_password_ends_every_session(app, client, auth) -> None:
    auth.login()
    with app.app_context():
        user = accounts.find_user("test")
        accounts.set_password(user, "another password")
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(User)) == 2
    assert client.get("/create").headers["Location"] == "/auth/login"
    assert auth.login("test", "test").status_code == 400
    assert auth.login("test", "another password").headers["Location"] == "/"
