import logging

import pytest
from flask import Flask
from sqlalchemy import func, select

from flaskr.db import db
from flaskr.models import Comment, Post, User
from tests.helpers import AuthActions, give_second_factor


@pytest.fixture
def admin(app: Flask):
    """A client logged in as "other", made an admin with `flask make-admin`, with a second
    factor (FLASKR_REQUIRE_2FA_FOR_ADMINS)."""
    app.test_cli_runner().invoke(args=["make-admin", "other"])
    client = app.test_client()
    AuthActions(client).login("other", "other")
    give_second_factor(app, "other")
    return client


def add_comment(app: Flask, body: str = "spam spam") -> int:
    with app.app_context():
        comment = Comment(post_id=1, author_id=1, body=body)
        db.session.add(comment)
        db.session.commit()
        return comment.id


def count(app: Flask, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_admin_sees_moderation_buttons_others_do_not(app, admin, client, auth) -> None:
    add_comment(app)
    page = admin.get("/1").text
    assert "Remove post" in page and "Remove comment" in page and "Disable test" in page
    for visitor in (client, None):
        if visitor is None:
            auth.login()
            visitor = client
        assert "Remove post" not in visitor.get("/1").text
    # The admin's page never reaches the visitors' cache.
    assert "Remove post" not in app.test_client().get("/1").text


def test_admin_removes_any_post(app, admin, client, caplog) -> None:
    assert b"test title" in client.get("/").data  # stored in the visitors' cache
    with caplog.at_level(logging.WARNING, logger="flaskr"):
        response = admin.post("/admin/post/1/remove")
    assert response.headers["Location"] == "/"
    assert count(app, Post) == 0
    assert b"test title" not in client.get("/").data  # the cache knows at once
    assert client.get("/1").status_code == 404
    record = next(r for r in caplog.records if getattr(r, "moderation", None))
    assert (record.moderation, record.actor, record.target) == (
        "remove-post",
        "other",
        "post 1 by test",
    )


def test_admin_removes_any_comment(app, admin, client) -> None:
    comment = add_comment(app, "buy cheap things")
    assert b"buy cheap things" in client.get("/1").data
    response = admin.post(f"/admin/comment/{comment}/remove")
    assert response.headers["Location"] == "/1#comments"
    assert b"buy cheap things" not in client.get("/1").data
    assert count(app, Comment) == 0


@pytest.mark.parametrize(
    "path", ["/admin/post/1/remove", "/admin/comment/1/remove", "/admin/user/2/disable"]
)
def test_only_admins_moderate(app, client, auth, path) -> None:
    add_comment(app)
    assert client.post(path).status_code == 404
    auth.login()
    assert client.post(path).status_code == 404
    assert count(app, Post) == 1 and count(app, Comment) == 1


@pytest.mark.parametrize(
    "path", ["/admin/post/9/remove", "/admin/comment/9/remove", "/admin/user/9/disable"]
)
def test_moderating_what_is_not_there(admin, path) -> None:
    assert admin.post(path).status_code == 404


def test_disabling_ends_sessions_at_once_and_refuses_login(app, admin, client, auth) -> None:
    auth.login()
    assert client.get("/create").status_code == 200
    assert admin.post("/admin/user/1/disable").headers["Location"] == "/"
    assert client.get("/create").headers["Location"] == "/auth/login"  # its very next request
    response = auth.login()
    assert response.status_code == 403
    assert b"This account has been disabled by an admin." in response.data
    # a wrong password gets the usual answer: the page tells only the account's owner
    assert b"Incorrect username or password." in auth.login("test", "wrong").data
    assert admin.post("/admin/user/1/enable").headers["Location"] == "/"
    assert auth.login().headers["Location"] == "/"


def test_admin_cannot_disable_themself(admin) -> None:
    response = admin.post("/admin/user/2/disable")
    assert response.status_code == 400
    assert b"You cannot disable your own account." in response.data


def test_moderation_from_the_cli(app, runner, client, auth, caplog) -> None:
    comment = add_comment(app)
    auth.login()
    with caplog.at_level(logging.WARNING, logger="flaskr"):
        assert "Removed comment" in runner.invoke(args=["remove-comment", str(comment)]).output
        assert "test is disabled." in runner.invoke(args=["disable-user", "TEST"]).output
        assert "Removed post 1." in runner.invoke(args=["remove-post", "1"]).output
    assert client.get("/create").headers["Location"] == "/auth/login"
    assert auth.login().status_code == 403
    actors = {r.actor for r in caplog.records if getattr(r, "moderation", None)}
    assert len(actors) == 1 and actors.pop().startswith("cli")
    assert "test is enabled." in runner.invoke(args=["disable-user", "test", "--enable"]).output
    with app.app_context():
        assert not db.session.get(User, 1).disabled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["remove-post", "9"], "No post with id 9."),
        (["remove-comment", "9"], "No comment with id 9."),
        (["disable-user", "nobody"], "No user named nobody."),
    ],
)
def test_cli_moderating_what_is_not_there(runner, args, message) -> None:
    result = runner.invoke(args=args)
    assert result.exit_code == 1 and message in result.output
