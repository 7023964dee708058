"""Bodies are rendered once, when written; pages show the stored HTML and never render."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from markdown_it import MarkdownIt
from sqlalchemy import text

from flaskr.db import db
from flaskr.models import Comment, Post
from flaskr.rendering import RENDERER
from toolkit.hostile import reference_links


def stored_row(app: Flask, model: type[Post] | type[Comment], id: int) -> tuple[str, str, str]:
    """The row's body, its HTML, and the renderer that made it (without the write's mark)."""
    with app.app_context():
        row = db.session.get(model, id)
        assert row is not None
        renderer = row.rendered_with and row.rendered_with.rsplit(" #", 1)[0]
        return row.body, row.body_html, renderer


def no_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, any Markdown parse fails the request that asks for it."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a page rendered Markdown")

    monkeypatch.setattr(MarkdownIt, "parse", refuse)


def test_a_post_and_a_comment_keep_the_html_they_were_rendered_to(client, auth, app) -> None:
    auth.login()
    client.post("/create", data={"title": "md", "body": "Some **bold**"})
    client.post("/2/comment", data={"body": "*nice*"})
    assert stored_row(app, Post, 2) == (
        "Some **bold**",
        "<p>Some <strong>bold</strong></p>\n",
        RENDERER,
    )
    assert stored_row(app, Comment, 1) == ("*nice*", "<p><em>nice</em></p>\n", RENDERER)
    client.post("/2/update", data={"title": "md", "body": "Now _edited_"})
    assert stored_row(app, Post, 2)[1] == "<p>Now <em>edited</em></p>\n"


@pytest.mark.parametrize("logged_in", [False, True])
def test_pages_show_stored_html_and_never_render(
    client: FlaskClient, auth, monkeypatch: pytest.MonkeyPatch, logged_in: bool
) -> None:
    auth.login()
    client.post("/create", data={"title": "md", "body": "Some **bold**", "tags": "t"})
    client.post("/2/comment", data={"body": "*nice*"})
    if not logged_in:
        auth.logout()
    no_rendering(monkeypatch)
    for path in ("/", "/?q=md", "/tag/t", "/2"):
        page = client.get(path)
        assert page.status_code == 200 and b"Some <strong>bold</strong>" in page.data, path
    assert b"<em>nice</em>" in client.get("/2").data
    assert b"Some &lt;strong&gt;bold&lt;/strong&gt;" in client.get("/feed.atom").data


def test_a_body_stored_without_html_is_shown_as_plain_text(client, app) -> None:
    """Written by other means (plain SQL, an older release): escaped, never rendered."""
    with app.app_context():
        db.session.execute(
            text("UPDATE post SET body = '**raw** <b>x</b>', body_html = NULL WHERE id = 1")
        )
        db.session.commit()
    for path in ("/", "/1"):
        assert b"<p>**raw** &lt;b&gt;x&lt;/b&gt;</p>" in client.get(path).data


def test_init_db_renders_what_another_renderer_made(runner: FlaskCliRunner, app, client) -> None:
    with app.app_context():
        db.session.execute(
            text("UPDATE post SET body = '*new*', body_html = '<p>old</p>', rendered_with = '0'")
        )
        db.session.execute(
            text("INSERT INTO comment (post_id, author_id, body) VALUES (1, 1, '**c**')")
        )
        db.session.commit()
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert f"Rendered 1 posts and 1 comments with {RENDERER}" in result.output
    assert stored_row(app, Post, 1)[1:] == ("<p><em>new</em></p>\n", RENDERER)
    assert stored_row(app, Comment, 1)[1:] == ("<p><strong>c</strong></p>\n", RENDERER)
    assert b"<em>new</em>" in client.get("/1").data
    again = runner.invoke(args=["init-db"])
    assert f"Every post and comment is rendered by {RENDERER}." in again.output


def test_a_body_this_renderer_refuses_is_shown_as_plain_text(runner, app, client) -> None:
    bomb = reference_links(20_000, 9_000)  # 16.6 MB of HTML if rendered
    with app.app_context():
        db.session.execute(text("UPDATE post SET body = :bomb"), {"bomb": bomb})
        db.session.commit()
    result = runner.invoke(args=["init-db"])
    assert "1 too costly for it are shown as plain text" in result.output
    html = stored_row(app, Post, 1)[1]
    assert html.startswith("<p>[a][a][a]") and len(html) < 2 * len(bomb)
    assert len(client.get("/1").data) < 3 * len(bomb)


def test_a_body_changed_by_plain_sql_shows_its_new_text_at_once(client, auth, app, runner):
    """A moderator's redaction in SQL, or an older release's edit: never hidden behind the
    HTML of the old text. It shows as plain text until `flask init-db` renders it."""
    auth.login()
    client.post("/create", data={"title": "md", "body": "Secret **address**"})
    client.post("/2/comment", data={"body": "*nice*"})
    auth.logout()
    assert b"Secret <strong>address</strong>" in client.get("/2").data
    with app.app_context():
        db.session.execute(text("UPDATE post SET body = 'REDACTED *by SQL*' WHERE id = 2"))
        db.session.execute(text("UPDATE comment SET body = 'gone' WHERE id = 1"))
        db.session.commit()
    page = client.get("/2").data
    assert b"Secret" not in page and b"<p>REDACTED *by SQL*</p>" in page
    assert b"nice" not in page and b"<p>gone</p>" in page
    assert b"Secret" not in client.get("/feed.atom").data
    runner.invoke(args=["init-db"])
    assert b"REDACTED <em>by SQL</em>" in client.get("/2").data
    assert stored_row(app, Comment, 1)[1:] == ("<p>gone</p>\n", RENDERER)


def test_an_edit_whose_html_is_the_same_keeps_its_html(client, auth, app) -> None:
    """The app marks each write anew: the trigger leaves its own edits alone."""
    auth.login()
    client.post("/create", data={"title": "md", "body": "Some **bold**"})
    client.post("/2/update", data={"title": "md", "body": "Some **bold**\r\n\r\n"})
    assert stored_row(app, Post, 2) == (
        "Some **bold**\r\n\r\n",
        "<p>Some <strong>bold</strong></p>\n",
        RENDERER,
    )
