"""Listed posts and a post's page are kept rendered, and still show every change at once,
with what is each viewer's own."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import AuthActions, give_second_factor


def article(client: FlaskClient, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    return page[page.index('<article class="post">') : page.index("</article>")]


def test_a_listing_shows_changes_to_a_kept_post(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()  # logged in: the page cache never serves the page, only the posts are kept
    assert "0 likes, 0 comments" in article(client)
    client.post("/1/like")
    client.post("/1/comment", data={"body": "first"})
    assert "1 like, 1 comment" in article(client)
    client.post("/1/update", data={"title": "renamed", "body": "new *body*", "tags": "Flask, web"})
    shown = article(client)
    assert "renamed" in shown and "<em>body</em>" in shown
    assert ">#flask<" in shown and ">#web<" in shown


def test_only_the_author_gets_the_edit_link(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()  # "test" wrote post 1
    assert 'href="/1/update"' in article(client)
    auth.logout()
    auth.login("other", "other")
    assert 'href="/1/update"' not in article(client)
    auth.logout()
    assert 'href="/1/update"' not in article(client)


def test_each_mount_point_gets_its_own_links(client: FlaskClient) -> None:
    assert 'href="/1"' in article(client)
    mounted = client.get("/", base_url="http://localhost/blog/").get_data(as_text=True)
    assert 'href="/blog/1"' in mounted and 'href="/1"' not in mounted


def test_a_post_page_shows_each_viewer_their_own_like_and_edit_link(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    """The post and its comments are kept rendered; the like and the edit link are each
    viewer's own, whoever saw the page first."""
    auth.login()  # "test" wrote post 1
    client.post("/1/like")
    mine = client.get("/1").text
    assert 'href="/1/update"' in mine and ">Unlike<" in mine and "1 like" in mine
    other = app.test_client()
    AuthActions(other).login("other", "other")
    theirs = other.get("/1").text
    assert 'href="/1/update"' not in theirs and ">Like<" in theirs and "1 like" in theirs
    assert 'href="/1/update"' in client.get("/1").text


def test_a_kept_post_page_shows_changes_at_once(client: FlaskClient, auth: AuthActions) -> None:
    auth.login()
    assert "No comments yet." in client.get("/1").text
    client.post("/1/comment", data={"body": "first *one*"})
    client.post("/1/update", data={"title": "renamed", "body": "new *body*", "tags": "web"})
    page = client.get("/1").text
    assert "<em>one</em>" in page and "No comments yet." not in page
    assert "renamed" in page and "<em>body</em>" in page and ">#web<" in page


def test_the_comment_box_is_empty_again_after_a_refused_comment(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.login()
    client.get("/1")
    refused = client.post("/1/comment", data={"body": "x" * 2001})
    assert refused.status_code == 400 and "x" * 2001 in refused.text
    assert "xxxx" not in client.get("/1").text


def test_only_admins_get_moderation_buttons_whoever_came_first(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    auth.login()
    client.post("/1/comment", data={"body": "spam"})
    assert "Remove post" not in client.get("/1").text
    app.test_cli_runner().invoke(args=["make-admin", "other"])
    admin = app.test_client()
    AuthActions(admin).login("other", "other")
    give_second_factor(app, "other")
    page = admin.get("/1").text
    assert "Remove post" in page and "Remove comment" in page
    assert "Remove" not in client.get("/1").text
