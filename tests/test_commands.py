import re
import sqlite3

import pytest
from sqlalchemy import func, select

from flaskr import create_app
from flaskr.accounts import is_admin
from flaskr.db import db
from flaskr.models import Post, Tag, User, post_tag
from toolkit.apps import config_for


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
    assert "Created" not in result.output


def test_seed(runner, client, app) -> None:
    result = runner.invoke(args=["seed", "--force", "--posts", "12"])
    assert "Added 12 posts by demo." in result.output
    password = re.search(r"Created user demo with password (\S+)", result.output)
    assert password and password[1] != "demo" and len(password[1]) >= 16
    again = runner.invoke(args=["seed", "--force", "--posts", "3", "--password", "other-pw"])
    assert "Created user" not in again.output  # the author exists: its password stays
    response = client.post("/auth/login", data={"username": "demo", "password": password[1]})
    assert response.headers["Location"] == "/"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post)) == 16
        assert db.session.scalar(select(func.count()).select_from(post_tag)) == 15
        assert db.session.scalar(select(func.count()).select_from(Tag)) == 5
        assert db.session.scalar(select(func.count()).select_from(User)) == 3
        titles = db.session.scalars(select(Post.title).order_by(Post.id)).all()
    assert titles[-1] == "Post 16"
    assert b"Post 16" in client.get("/").data


def test_seed_refuses_outside_debug_mode(runner, app, monkeypatch) -> None:
    refused = runner.invoke(args=["seed"])
    assert refused.exit_code == 1 and "debug mode only" in refused.output
    monkeypatch.setenv("FLASK_DEBUG", "1")  # what `flask --debug` sets
    given = runner.invoke(args=["seed", "--posts", "1", "--author", "eve", "--password", "pw"])
    assert "Created user eve with password pw" in given.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post)) == 2


@pytest.mark.parametrize("command", [["create-user", "a", "--password", "p"], ["make-admin", "a"]])
def test_commands_on_a_missing_database_create_none(tmp_path, command) -> None:
    missing = tmp_path / "instance" / "flaskr.sqlite"
    app = create_app(config_for(tmp_path, DATABASE_URL=f"sqlite:///{missing}"))
    result = app.test_cli_runner().invoke(args=command)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"there is no database at {missing}" in result.output
    assert "sudo flaskr COMMAND" in result.output and "init-db" in result.output
    assert not missing.exists()
    # A database file without flaskr's tables (made by hand, or by an old mistake) is named too.
    sqlite3.connect(missing).close()
    result = app.test_cli_runner().invoke(args=["seed", "--force"])
    assert result.exit_code == 1 and "has no flaskr tables yet" in result.output


def test_make_admin(runner, app) -> None:
    assert "test is an admin." in runner.invoke(args=["make-admin", "test"]).output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "test"))
        assert is_admin(user)
    assert "no longer" in runner.invoke(args=["make-admin", "test", "--revoke"]).output
    with app.app_context():
        assert not db.session.scalar(select(User.is_admin).where(User.username == "test"))
    missing = runner.invoke(args=["make-admin", "nobody"])
    assert missing.exit_code == 1 and "No user named nobody." in missing.output


def test_set_password_lets_an_operator_recover_an_account(runner, client, auth) -> None:
    auth.login()
    result = runner.invoke(args=["set-password", "TEST", "--password", "from-the-operator"])
    assert result.exit_code == 0, result.output
    assert "New password set for test; every session of it has ended." in result.output
    assert client.get("/create").status_code == 302  # the session ended
    assert auth.login("test", "from-the-operator").headers["Location"] == "/"
    short = runner.invoke(args=["set-password", "test", "--password", "short"])
    assert short.exit_code == 1
    assert "The password must be 8 to 1024 characters." in short.output
    unknown = runner.invoke(args=["set-password", "nobody", "--password", "long-enough"])
    assert "No user named nobody." in unknown.output
