"""Each account's renders (posts, edits, previews, comments) share a CPU budget in the database:
past it, a 429 that keeps what was typed, for that account only."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import func, select

from flaskr import create_app
from flaskr.db import db
from flaskr.models import Comment, Post, RenderCost
from flaskr.render_budget import _now
from tests.helpers import AuthActions
from toolkit.apps import config_for
from toolkit.hostile import jpeg_after_fill_bytes
from toolkit.images import image_bytes

TABLE = "|a|b|\n|-|-|\n" + "|1|2|\n" * 400  # a few milliseconds to render


def spent(app: Flask, user_id: int) -> int:
    with app.app_context():
        total = db.session.scalar(
            select(func.sum(RenderCost.cpu_ms)).where(RenderCost.user_id == user_id)
        )
        return int(total or 0)


def spend(app: Flask, user_id: int, cpu_ms: int, ago: float = 0.0) -> None:
    """Charge ``user_id`` for renders that took ``cpu_ms``, ``ago`` seconds ago."""
    with app.app_context():
        when = _now() - timedelta(seconds=ago)
        db.session.add(RenderCost(user_id=user_id, created=when, cpu_ms=cpu_ms))
        db.session.commit()


def count(app: Flask, model: type) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_renders_are_charged_to_their_author(client, auth, app) -> None:
    auth.login()
    client.post("/create", data={"title": "t", "body": TABLE, "preview": "1"})
    previewed = spent(app, 1)
    assert previewed >= 1
    client.post("/create", data={"title": "t", "body": TABLE})
    assert spent(app, 1) > previewed
    before = spent(app, 1)
    client.post("/create", data={"title": "t", "body": "short"})  # well under a millisecond
    assert spent(app, 1) == before
    assert spent(app, 2) == 0


@pytest.mark.parametrize(
    ("path", "data", "template"),
    [
        ("/create", {"title": "kept", "body": "typed *text*"}, 'value="kept"'),
        ("/create", {"title": "kept", "body": "typed *text*", "preview": "1"}, 'value="kept"'),
        ("/1/update", {"title": "kept", "body": "typed *text*"}, 'value="kept"'),
        ("/1/comment", {"body": "typed *text*"}, "test title"),
    ],
)
def test_past_the_budget_writes_and_previews_get_429_and_keep_the_text(
    client, auth, app, path, data, template
) -> None:
    auth.login()
    spend(app, 1, app.config["RENDER_CPU_MS_PER_USER"], ago=10)
    response = client.post(path, data=data)
    assert response.status_code == 429
    wait = int(response.headers["Retry-After"])
    assert 40 <= wait <= 50  # the window is 60 s; the spending was 10 s ago
    assert "You have written or previewed a lot lately. Try again in" in response.text
    assert "typed *text*" in response.text and template in response.text
    assert "<em>text</em>" not in response.text  # not rendered either
    assert (count(app, Post), count(app, Comment)) == (1, 0)
    with app.app_context():
        assert db.session.get(Post, 1).title == "test title"


def test_the_budget_is_each_accounts_own_and_comes_back(client, auth, app) -> None:
    other = app.test_client()
    AuthActions(other).login("other", "other")
    auth.login()
    spend(app, 1, app.config["RENDER_CPU_MS_PER_USER"], ago=50)
    assert other.post("/create", data={"title": "other's"}).status_code == 302
    assert client.post("/create", data={"title": "t"}).status_code == 429
    with app.app_context():  # the window moves on
        db.session.execute(
            RenderCost.__table__.update().values(created=_now() - timedelta(seconds=61))
        )
        db.session.commit()
    assert client.post("/create", data={"title": "t"}).status_code == 302


def test_instances_on_one_database_share_the_budget(tmp_path, app) -> None:
    other = create_app(config_for(tmp_path, DATABASE_URL=app.config["DATABASE_URL"]))
    client = app.test_client()
    AuthActions(client).login()
    spend(other, 1, app.config["RENDER_CPU_MS_PER_USER"])
    assert client.post("/create", data={"title": "t"}).status_code == 429


def test_all_accounts_together_have_a_ceiling_that_stops_only_heavy_ones(client, auth, app):
    """Registering is free: many accounts, each within its own budget, must not add up. Nor
    may they stop everyone else writing (a third review did, with eight accounts)."""
    per_user = app.config["RENDER_CPU_MS_PER_USER"]
    auth.login()  # its password hash is charged: a few hundred milliseconds at most
    spend(app, 2, app.config["RENDER_CPU_MS_SITE"], ago=30)  # the site's budget is spent
    assert client.post("/create", data={"title": "an ordinary writer"}).status_code == 302
    spend(app, 1, per_user // 4 - 1 - spent(app, 1))
    assert client.post("/create", data={"title": "still light"}).status_code == 302
    spend(app, 1, 1)  # a quarter of its own budget: heavy, while the site's is spent
    response = client.post("/create", data={"title": "t"})
    assert response.status_code == 429 and 25 <= int(response.headers["Retry-After"]) <= 31


def test_an_image_is_charged_with_its_re_encoding(client, auth, app) -> None:
    """An image dear to decode costs the re-encoder's CPU (up to 1 s): charged, kept or not."""
    auth.login()
    image = (io.BytesIO(image_bytes("PNG", (400, 300))), "a.png")
    response = client.post("/create", data={"title": "pic", "image": image})
    assert response.status_code == 302
    charged = spent(app, 1)
    assert charged >= 10  # the child's start alone takes tens of milliseconds
    bad = (io.BytesIO(jpeg_after_fill_bytes()), "x.jpg")
    refused = client.post("/create", data={"title": "dear", "image": bad})
    refused.request.environ["wsgi.input"].close()  # the test client leaves its file open
    assert refused.status_code == 400 and spent(app, 1) > charged


def test_logins_with_the_right_password_spend_the_accounts_budget(client, auth, app) -> None:
    """Each costs a password hash (about 0.2 s): the fourth review logged in 148 times in 20 s
    from one account, 0.84 of a core. Wrong passwords are counted by the login throttle."""
    assert auth.login().status_code == 302
    after_one = spent(app, 1)
    assert after_one >= 10
    spend(app, 1, app.config["RENDER_CPU_MS_PER_USER"])
    refused = auth.login()
    assert refused.status_code == 429 and "logins and writes on this account" in refused.text
    assert spent(app, 1) == after_one + app.config["RENDER_CPU_MS_PER_USER"]  # no hash ran
    assert auth.login("other", "other").status_code == 302  # another account is not held


def test_password_changes_spend_the_accounts_budget(client, auth, app) -> None:
    auth.login()
    before = spent(app, 1)
    data = {"current": "test", "password": "a new long password"}
    assert client.post("/auth/password", data=data).status_code == 302
    assert spent(app, 1) > before
    spend(app, 1, app.config["RENDER_CPU_MS_PER_USER"])
    again = {"current": "a new long password", "password": "yet another password"}
    assert client.post("/auth/password", data=again).status_code == 429
