"""Links built for templates: the same as Flask's, remembered per mount point."""

from __future__ import annotations

from flask import Flask, url_for

from flaskr.urls import cached_url_for


def test_links_are_flasks_own(app: Flask) -> None:
    with app.test_request_context("/"):
        for endpoint, values in (
            ("blog.detail", {"id": 1}),
            ("blog.tag", {"name": "flask"}),
            ("blog.index", {"q": "a b", "page": 2}),
            ("static", {"filename": "style.css"}),
        ):
            assert cached_url_for(endpoint, **values) == url_for(endpoint, **values)
            assert cached_url_for(endpoint, **values) == url_for(endpoint, **values)  # kept


def test_each_mount_point_gets_its_own_links(app: Flask) -> None:
    """A link remembered for the app at / is not handed to the app mounted at /blog."""
    with app.test_request_context("/"):
        assert cached_url_for("blog.detail", id=7) == "/7"
    with app.test_request_context("/", base_url="http://localhost/blog/"):
        assert cached_url_for("blog.detail", id=7) == "/blog/7"


def test_what_is_not_remembered_still_works(app: Flask) -> None:
    with app.test_request_context("/auth/login"):
        assert cached_url_for(".login") == "/auth/login"  # relative to the request's blueprint
        assert cached_url_for("blog.detail", id=1, _external=True) == "http://localhost/1"
        assert cached_url_for("blog.index", q=["a", "b"]) == "/?q=a&q=b"  # not a key
    app.config["SERVER_NAME"] = "example.com"
    with app.app_context():  # no request: Flask's external URL, as before
        assert cached_url_for("blog.detail", id=1) == "http://example.com/1"


def test_pages_use_it(client) -> None:
    page = client.get("/", base_url="http://localhost/blog/").get_data(as_text=True)
    assert 'href="/blog/1"' in page and 'href="/blog/static/style.css"' in page
