"""Listed posts are kept rendered, and a listing still shows every change at once."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.helpers import AuthActions


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
