from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from flaskr import create_app
from flaskr.db import db
from flaskr.page_cache import content_version
from tests.helpers import insert_post
from toolkit.apps import config_for, make_app


@pytest.mark.parametrize("path", ["/", "/?q=test", "/tag/none", "/1", "/feed.atom"])
def test_visitors_get_a_stored_page_for_one_read(
    client: FlaskClient, statements: list[str], path: str
) -> None:
    first = client.get(path)
    statements.clear()
    again = client.get(path)
    assert (again.status_code, again.data) == (first.status_code, first.data)
    if first.status_code == 200:
        assert statements == [statements[0]] and "content_version" in statements[0]
        assert "Set-Cookie" not in again.headers  # visitors get no session
        assert again.headers["Content-Type"] == first.headers["Content-Type"]


def test_a_write_from_anywhere_shows_at_once(app: Flask, client: FlaskClient, tmp_path) -> None:
    assert b"A new post" not in client.get("/").data
    # Another worker or instance on the same database: this app's cache cannot know of it.
    insert_post(create_app(config_for(tmp_path)), "A new post")
    assert b"A new post" in client.get("/").data
    assert b"A new post" in client.get("/feed.atom").data


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE post SET body = 'changed' WHERE id = 1",
        "INSERT INTO tag (name) VALUES ('new')",
        "INSERT INTO post_tag (post_id, tag_id) SELECT 1, id FROM tag WHERE name = 'seed'",
        "INSERT INTO comment (post_id, author_id, body) VALUES (1, 2, 'hi')",
        "INSERT INTO post_like (user_id, post_id) VALUES (2, 1)",
        "INSERT INTO image (post_id, mimetype, width, height, data) VALUES (1, 'image/png', 1, 1, x'00')",
        "UPDATE user SET username = 'renamed' WHERE id = 1",
        "DELETE FROM post WHERE id = 1",
    ],
)
def test_every_shown_table_raises_the_version(app: Flask, statement: str) -> None:
    with app.app_context():
        db.session.execute(text("INSERT INTO tag (name) VALUES ('seed')"))
        db.session.commit()
        before = content_version()
        db.session.execute(text(statement))
        db.session.commit()
        assert content_version() > before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE user SET session_version = session_version + 1 WHERE id = 1",
        "UPDATE user SET password = 'x', disabled = 1, is_admin = 1 WHERE id = 1",
        "INSERT INTO login_failure (username, remote_addr, created) VALUES ('a', 'b', '2026-01-01')",
    ],
)
def test_logins_and_logouts_keep_the_cache(app: Flask, statement: str) -> None:
    """Nothing a page shows changes when someone logs in or out or changes a password."""
    with app.app_context():
        before = content_version()
        db.session.execute(text(statement))
        db.session.commit()
        assert content_version() == before


def test_logged_in_users_never_share_pages(client: FlaskClient, auth) -> None:
    visitor_page = client.get("/").data
    auth.login()
    mine = client.get("/").data
    assert mine != visitor_page and b"Log Out" in mine and b"Log Out" not in visitor_page
    auth.logout()
    assert b"Log Out" not in client.get("/").data


def test_a_page_with_a_message_is_not_stored(client: FlaskClient) -> None:
    with client.session_transaction() as session:
        session["_flashes"] = [("error", "Only for this visitor.")]
    assert b"Only for this visitor." in client.get("/").data
    stranger = client.application.test_client()
    assert b"Only for this visitor." not in stranger.get("/").data


def test_many_distinct_urls_stay_within_the_bytes(tmp_path: Path) -> None:
    app = make_app(tmp_path, PAGE_CACHE_BYTES=64 * 1024)
    client = app.test_client()
    for i in range(100):
        assert client.get(f"/?q=test&n={i}").status_code == 200
    pages = app.extensions["flaskr.pages"]
    assert 0 < len(pages) < 100 and pages.bytes <= 64 * 1024
    assert client.get("/?q=test&n=99").data == client.get("/?n=99&q=test").data


def test_a_page_too_big_to_keep_is_rendered_every_time(tmp_path: Path) -> None:
    app = make_app(tmp_path, PAGE_CACHE_BYTES=8 * 1024)
    with app.app_context():
        db.session.execute(text("UPDATE post SET body = :body"), {"body": "long " * 1_000})
        db.session.commit()
    client = app.test_client()
    assert b"long long" in client.get("/").data
    assert len(app.extensions["flaskr.pages"]) == 0


@pytest.mark.parametrize("setting", ["PAGE_CACHE_SIZE", "PAGE_CACHE_BYTES"])
def test_zero_turns_it_off(tmp_path: Path, setting: str) -> None:
    app = create_app(config_for(tmp_path, **{setting: 0}))
    assert "flaskr.pages" not in app.extensions


def test_a_version_that_cannot_be_read_is_a_503(app: Flask, client: FlaskClient) -> None:
    """The version is read on the driver's own connection: its errors still make the
    database's 503, not a 500."""
    with app.app_context():
        db.session.execute(text("DROP TABLE content_version"))
        db.session.commit()
    response = client.get("/")
    assert response.status_code == 503
    assert b"database is busy or unavailable" in response.data


def test_a_missing_version_is_never_taken_for_an_unchanged_one(app: Flask) -> None:
    with app.app_context():
        db.session.execute(text("DELETE FROM content_version"))
        db.session.commit()
        with pytest.raises(LookupError, match="init-db"):
            content_version()


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ("/?x=1", "/?x=2"),
        ("/?page=1&x=1", "/?page=1&x=2"),
        ("/?q=test&utm_source=a", "/?utm_source=b&q=test"),
        ("/1?x=1", "/1?x=2&page=9"),
        ("/feed.atom?x=1", "/feed.atom?x=2"),
    ],
)
def test_parameters_a_page_does_not_read_are_not_part_of_its_key(
    client: FlaskClient, statements: list[str], first: str, then: str
) -> None:
    """A counter in a made-up parameter cannot make every request a new, rendered page."""
    stored = client.get(first)
    statements.clear()
    again = client.get(then)
    assert (again.status_code, again.data) == (stored.status_code, stored.data)
    assert len(statements) == 1 and "content_version" in statements[0]


def test_parameters_a_page_reads_are_part_of_its_key(client: FlaskClient, auth) -> None:
    auth.login()
    for i in range(6):
        client.post("/create", data={"title": f"post {i}", "tags": "t"})
    auth.logout()
    for path in ("/", "/tag/t"):
        first, second = client.get(f"{path}?page=1"), client.get(f"{path}?page=2&x=1")
        assert first.status_code == second.status_code == 200
        assert first.data != second.data
        assert client.get(f"{path}?page=2&x=2").data == second.data
    assert b"post 5" in client.get("/?q=post+5").data
    assert b"post 5" not in client.get("/?q=post+0").data
