import pytest
from sqlalchemy import func, select

from flaskr.db import db
from flaskr.models import Post, Tag, User, post_tag


def test_create_user(runner, client, app) -> None:
    result = runner.invoke(args=["create-user", "alice", "--password", "pw-alice"])
    assert "Created user alice." in result.output
    response = client.post("/auth/login", data={"username": "alice", "password": "pw-alice"})
    assert response.headers["Location"] == "/"
    again = runner.invoke(args=["create-user", "Alice", "--password", "pw-alice"])
    assert again.exit_code == 1
    assert "already registered" in again.output


@pytest.mark.parametrize(
    ("username", "password", "message"),
    (
        ("bob\n", "pw-bob-bob", "A username is 1 to 32 of"),
        ("\u0430lice", "pw-alice", "A username is 1 to 32 of"),
        ("x" * 33, "pw-long-name", "A username is 1 to 32 of"),
        ("bob", "short", "A password is 8 to 1024 characters."),
    ),
)
def test_create_user_refuses(runner, username, password, message) -> None:
    result = runner.invoke(args=["create-user", username, "--password", password])
    assert result.exit_code == 1 and message in result.output


def test_seed(runner, client, app) -> None:
    result = runner.invoke(args=["seed", "--posts", "12"])
    assert "Added 12 posts by demo." in result.output
    runner.invoke(args=["seed", "--posts", "3"])
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post)) == 16
        assert db.session.scalar(select(func.count()).select_from(post_tag)) == 15
        assert db.session.scalar(select(func.count()).select_from(Tag)) == 5
        assert db.session.scalar(select(func.count()).select_from(User)) == 3
        titles = db.session.scalars(select(Post.title).order_by(Post.id)).all()
    assert titles[-1] == "Post 16"
    assert b"Post 16" in client.get("/").data


def test_make_admin(runner, app) -> None:
    from flaskr.auth import is_admin

    assert "test is an admin." in runner.invoke(args=["make-admin", "test"]).output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "test"))
        assert is_admin(user)
    assert "no longer" in runner.invoke(args=["make-admin", "test", "--revoke"]).output
    with app.app_context():
        assert not db.session.scalar(select(User.is_admin).where(User.username == "test"))
    missing = runner.invoke(args=["make-admin", "nobody"])
    assert missing.exit_code == 1 and "No user named nobody." in missing.output


def test_admin_is_the_flag_only(app, runner) -> None:
    """A name makes nobody an admin; the flag does, unless the account is disabled."""
    from flaskr.auth import is_admin

    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "other"))
        assert not is_admin(user) and not is_admin(None)
    runner.invoke(args=["make-admin", "OTHER"])  # names are found whatever their case
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "other"))
        assert is_admin(user)
        user.disabled = True
        assert not is_admin(user)
