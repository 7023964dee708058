import html
import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from flaskr.db import db
from flaskr.listing import Listing, has_title_index, page_of, titles_containing
from flaskr.models import Post

TITLES = ["Gunicorn in production", 'She said "ship it"', "Café notes", "x_y", "50% off"]


@pytest.fixture(params=["index", "scan"])
def search(
    request: pytest.FixtureRequest, app: Flask, client: FlaskClient, auth
) -> Iterator[FlaskClient]:
    """A client whose searches use the FTS5 title index, or scan titles as an SQLite without
    FTS5 (or a short search) does: both must find the same posts."""
    with app.app_context():
        assert has_title_index()
    if request.param == "scan":
        app.extensions["flaskr.title_index"] = False
    auth.login()
    for title in TITLES:
        client.post("/create", data={"title": title})
    yield client


def titles(client: FlaskClient, query: str) -> list[str]:
    """The titles a search lists, in page order."""
    page = client.get("/", query_string={"q": query}).get_data(as_text=True)
    return [html.unescape(t) for t in re.findall(r'<h1><a href="/\d+">(.*?)</a></h1>', page)]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("gunicorn", ["Gunicorn in production"]),
        ("PRODUCTION", ["Gunicorn in production"]),
        ("in", ["Gunicorn in production"]),  # short: scans
        ('"ship', ['She said "ship it"']),
        ("caf", ["Café notes"]),
        ("x_y", ["x_y"]),
        ("xy", []),
        ("_", ["x_y"]),
        ("0%", ["50% off"]),
        ("5 off", []),
        ("title", ["test title"]),
        ("e", ["Café notes", 'She said "ship it"', "test title"]),
        ("zzz", []),
    ],
)
def test_search_finds_titles_containing(search: FlaskClient, query: str, found: list[str]) -> None:
    assert titles(search, query) == found


def test_search_follows_edits_and_deletes(search: FlaskClient) -> None:
    search.post("/2/update", data={"title": "Renamed: uwsgi"})
    assert titles(search, "gunicorn") == []
    assert b"Renamed: uwsgi" in search.get("/?q=uwsgi").data
    search.post("/2/delete")
    assert b"Renamed: uwsgi" not in search.get("/?q=uwsgi").data


def test_listings_are_newest_first_by_id_and_page(app: Flask, client: FlaskClient, auth) -> None:
    auth.login()
    for i in range(7):
        client.post("/create", data={"title": f"Paged {i}", "tags": "p"})
    with app.app_context():
        for listing in (titles_containing("paged"), titles_containing("Pa")):
            first, more = page_of(listing, 1, 5)
            assert [p.title for p in first] == [f"Paged {i}" for i in (6, 5, 4, 3, 2)]
            assert more
            second, more = page_of(listing, 2, 5)
            assert [p.title for p in second] == ["Paged 1", "Paged 0"]
            assert not more
        everything, _ = page_of(Listing("index", {}), 2, 5)
        assert [p.id for p in everything] == [3, 2, 1]
        newest = db.session.scalar(select(Post).order_by(Post.id.desc()))
        listed = page_of(Listing("index", {}), 1, 1)[0][0]
        assert (listed.title, listed.author.username, listed.tags) == (
            newest.title,
            "test",
            [("p",)],
        )
