"""SQL statements per request: a fixed number for every listing, whatever the number of posts
in the database or on the page (no N+1 query per post, tag, like, comment or image)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image as PILImage

from flaskr.db import db
from flaskr.models import Comment, Image, Like, Post, Tag

PAGES = {
    "index": "/",
    "search": "/?q=title",
    "tag page": "/tag/python",
    "post page": "/1",
    "feed": "/feed.atom",
}


def count(client: FlaskClient, statements: list[str], path: str) -> int:
    statements.clear()
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return len(statements)


@pytest.fixture
def counted(app: Flask, statements: list[str]) -> tuple[Flask, list[str]]:
    """The tutorial's app (one post) with every statement sent to the database recorded, and
    no page cache: what is counted is what rendering a page costs, every time."""
    app.config["POSTS_PER_PAGE"] = 50  # every post on one page: a per-post query would show
    app.extensions.pop("flaskr.pages")
    return app, statements


def png() -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (4, 3), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


def dress(post: Post, tags: list[Tag], n: int) -> None:
    """Give ``post`` tags, a like from each user, comments and an image."""
    post.tags = tags
    for user_id in (1, 2):
        db.session.add(Like(user_id=user_id, post_id=post.id))
    for k in range(n):
        db.session.add(Comment(post_id=post.id, author_id=1 + k % 2, body=f"comment *{k}*"))
    db.session.add(Image(post_id=post.id, mimetype="image/png", width=4, height=3, data=png()))


def dress_first(app: Flask) -> None:
    """Give the tutorial's post 1 three tags, two likes, a comment and an image."""
    with app.app_context():
        tags = db.session.scalars(db.select(Tag).order_by(Tag.id)).all()
        dress(db.session.get(Post, 1), tags, 1)
        db.session.commit()


def counts(client: FlaskClient, statements: list[str]) -> dict[str, int]:
    return {name: count(client, statements, path) for name, path in PAGES.items()}


@pytest.mark.parametrize("logged_in", [False, True], ids=["anonymous", "logged-in"])
def test_statements_do_not_grow_with_posts(counted, auth, client, logged_in: bool) -> None:
    app, statements = counted
    with app.app_context():
        db.session.add_all(Tag(name=n) for n in ("python", "flask", "gunicorn"))
        db.session.commit()
    if logged_in:
        auth.login()
    bare = counts(client, statements)  # one post, no tags, likes, comments or images
    dress_first(app)
    one = counts(client, statements)  # one post with all of them
    grow_more(app)
    many = counts(client, statements)  # twelve posts with all of them, comments on post 1 too
    print(f"statements per request ({'logged in' if logged_in else 'anonymous'}): {many}")
    assert one == many, f"statements per request grew with the posts: 1 post {one}, 12 {many}"
    # Tags, likes, comments and images cost at most the one extra query for tags.
    for name in PAGES:
        assert one[name] <= bare[name] + 1, (name, bare[name], one[name])
    # And the numbers stay small: these are the budgets (docs/performance.md quotes them),
    # change them only on purpose. A listing: its posts with their counts and tags in one;
    # a tag page looks the tag up first; a post's page reads the post (with its author, tags,
    # likes and image) then its comments; a logged-in user is loaded once more.
    budget = {"index": 1, "search": 1, "tag page": 2, "post page": 2, "feed": 2}
    if logged_in:
        budget = {name: n + 1 for name, n in budget.items()}
    assert many == budget, many


def grow_more(app: Flask) -> None:
    """Eleven more dressed posts, and more comments on post 1 (the post page's list)."""
    with app.app_context():
        tags = db.session.scalars(db.select(Tag).order_by(Tag.id)).all()
        for n in range(2, 13):
            post = Post(
                title=f"test title {n}",
                body=f"body **{n}**",
                author_id=1 + n % 2,
                created=datetime(2018, 1, 1) + timedelta(days=n),
            )
            db.session.add(post)
            db.session.flush()
            dress(post, tags[: 1 + n % 3], n)
        for k in range(10):
            db.session.add(Comment(post_id=1, author_id=2, body=f"more {k}"))
        db.session.commit()


def test_the_pages_list_what_the_counts_cover(counted, client) -> None:
    """The counted pages really render the dressed posts (a page of nothing proves nothing)."""
    app, _statements = counted
    with app.app_context():
        db.session.add_all(Tag(name=n) for n in ("python", "flask", "gunicorn"))
        db.session.commit()
    dress_first(app)
    grow_more(app)
    index = client.get("/").get_data(as_text=True)
    assert index.count('<article class="post">') == 12
    assert "2 likes" in index and 'class="thumb"' in index
    assert client.get("/?q=title").get_data(as_text=True).count('<article class="post">') == 12
    assert client.get("/tag/python").get_data(as_text=True).count('<article class="post">') == 12
    assert client.get("/1").get_data(as_text=True).count('class="comment"') == 11
    assert client.get("/feed.atom").get_data(as_text=True).count("<entry>") == 12
