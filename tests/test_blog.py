import html
import io
import re

import pytest
from markupsafe import Markup
from sqlalchemy import func, select

from flaskr import forms
from flaskr.db import db
from flaskr.models import Comment, Image, Like, Post, Tag
from toolkit.hostile import reference_links
from toolkit.images import image_bytes


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_index(client, auth) -> None:
    response = client.get("/")
    assert b"Log In" in response.data
    assert b"Register" in response.data

    auth.login()
    response = client.get("/")
    assert b"Log Out" in response.data
    assert b"test title" in response.data
    assert b"by test on 2018-01-01" in response.data
    assert b"test\nbody" in response.data
    assert b'href="/1/update"' in response.data


@pytest.mark.parametrize("path", ("/create", "/1/update", "/1/delete"))
def test_login_required(client, path) -> None:
    response = client.post(path)
    assert response.headers["Location"] == "/auth/login"


def test_author_required(app, client, auth) -> None:
    with app.app_context():
        db.session.get(Post, 1).author_id = 2
        db.session.commit()
    auth.login()
    assert client.post("/1/update").status_code == 403
    assert client.post("/1/delete").status_code == 403
    assert b'href="/1/update"' not in client.get("/").data


@pytest.mark.parametrize("path", ("/2/update", "/2/delete"))
def test_exists_required(client, auth, path) -> None:
    auth.login()
    assert client.post(path).status_code == 404


def test_create(client, auth, app) -> None:
    auth.login()
    assert client.get("/create").status_code == 200
    response = client.post("/create", data={"title": "created", "body": ""})
    assert response.headers["Location"] == "/"
    assert count(app, Post) == 2


def test_update(client, auth, app) -> None:
    auth.login()
    assert client.get("/1/update").status_code == 200
    client.post("/1/update", data={"title": "updated", "body": ""})
    with app.app_context():
        assert db.session.get(Post, 1).title == "updated"


@pytest.mark.parametrize("path", ("/create", "/1/update"))
def test_create_update_validate(client, auth, path, app) -> None:
    auth.login()
    response = client.post(path, data={"title": "", "body": "kept text"})
    assert response.status_code == 400
    assert b"Title is required." in response.data
    assert b"kept text" in response.data  # the form keeps what was typed
    assert count(app, Post) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    (
        ({"title": "t" * 201}, b"Title must be at most 200 characters."),
        ({"title": "t", "body": "b" * 20_001}, b"Body must be at most 20000 characters."),
        ({"title": "t", "tags": ",".join(f"t{i}" for i in range(11))}, b"At most 10 tags."),
        ({"title": "t", "tags": "ok, not ok"}, b"Tag &#39;not ok&#39; must be"),
        ({"title": "t", "tags": "x" * 33}, b"must be at most 32"),
        ({"title": "bell\x0b\x01"}, b"Title may not contain control characters."),
        ({"title": "t", "body": "a\x1bb"}, b"Body may not contain control characters."),
        ({"title": "t", "tags": "a\x7f"}, b"Tags may not contain control characters."),
        ({"title": "t", "body": reference_links(20_000, 9_000)}, b"more than 128 KB of HTML"),
    ),
)
def test_create_limits(client, auth, app, data, message) -> None:
    auth.login()
    response = client.post("/create", data=data)
    assert response.status_code == 400
    assert message in response.data
    assert count(app, Post) == 1


def test_delete(client, auth, app) -> None:
    auth.login()
    response = client.post("/1/delete")
    assert response.headers["Location"] == "/"
    assert count(app, Post) == 0


def test_delete_removes_likes_comments_tags_and_image(client, auth, app) -> None:
    auth.login()
    client.post(
        "/1/update",
        data={"title": "t", "tags": "a, b", "image": (io.BytesIO(image_bytes()), "i.png")},
    )
    client.post("/1/like")
    client.post("/1/comment", data={"body": "hi"})
    client.post("/1/delete")
    for model in (Post, Like, Comment, Image):
        assert count(app, model) == 0
    assert count(app, Tag) == 2  # tags stay for other posts


def test_detail_page_linked_from_title(client) -> None:
    index = client.get("/").data
    assert b'<a href="/1">test title</a>' in index
    page = client.get("/1")
    assert page.status_code == 200
    assert b"test title" in page.data
    assert b"0 likes" in page.data
    assert client.get("/99").status_code == 404


def description(client, path: str) -> str:
    """The page's one meta description, as a search engine reads it (entities decoded)."""
    page = client.get(path).get_data(as_text=True)
    found = re.findall(r'<meta name="description" content="([^"]*)">', page)
    assert len(found) == 1, (path, found)
    return html.unescape(found[0])


def test_every_page_describes_itself_for_search_engines(client, auth, app) -> None:
    """Search results show a page's meta description under its title: a listing says what it
    lists, a post gives its opening words as plain text, bounded, and never is left without."""
    for path in ("/", "/tag/none", "/99", "/auth/forgot"):
        assert description(client, path).startswith("Flaskr, a blog: "), path
    assert description(client, "/auth/login").startswith("Log in to Flaskr to write posts")
    assert description(client, "/auth/register").startswith("Make a Flaskr account")
    assert description(client, "/1") == "test body"
    auth.login()
    long_body = "**Bold** words & <i>markup</i> in " + "a long story, " * 100
    client.post("/create", data={"title": "Long", "body": long_body, "tags": "Travel"})
    client.post("/create", data={"title": "Empty", "body": ""})
    long = description(client, "/2")
    assert long.startswith("Bold words & markup in a long story, ")
    assert len(long) <= 160 and long.endswith("…") and "<" not in long
    assert description(client, "/3") == "Empty, a post by test on Flaskr."
    assert description(client, "/tag/travel") == "Posts tagged #travel on Flaskr, newest first."
    assert (
        description(client, '/?q="Lo')
        == "Flaskr's posts whose titles contain “\"Lo”, newest first."
    )
    app.config["POSTS_PER_PAGE"] = 1
    assert description(client, "/?page=2").endswith(" Page 2.")
    # A search as long as one may be (200 characters) still makes a short description.
    assert len(description(client, "/?q=" + "x" * 200)) < 160


def test_each_page_names_its_one_address_on_the_sites_own_origin(app, client, auth) -> None:
    """rel=canonical: /01 is /1, ?page=1 is no page, a tag is lowercase; always on SITE_URL,
    never the Host a request (perhaps an attacker's) gave, since pages are cached for all."""
    assert b'rel="canonical"' not in client.get("/1").data  # no SITE_URL: no canonical
    auth.login()
    client.post("/create", data={"title": "tagged", "tags": "travel"})
    auth.logout()
    app.config["SITE_URL"] = "https://blog.example.com/"
    for path, canonical in [
        ("/01", "https://blog.example.com/1"),
        ("/1?comments=1", "https://blog.example.com/1"),
        ("/?page=1", "https://blog.example.com/"),
        ("/?q=test&page=1&utm_source=x", "https://blog.example.com/?q=test"),
        ("/tag/Travel?page=1", "https://blog.example.com/tag/travel"),
    ]:
        page = client.get(path, headers={"Host": "evil.example"}).get_data(as_text=True)
        assert f'<link rel="canonical" href="{canonical}">' in page, path


def test_like_and_unlike(client, auth, app) -> None:
    assert client.post("/1/like").headers["Location"] == "/auth/login"
    auth.login()
    response = client.post("/1/like")
    assert response.headers["Location"] == "/1"
    page = client.get("/1").data
    assert b"1 like<" in page
    assert b"Unlike" in page
    assert b"1 like," in client.get("/").data
    client.post("/1/like")
    assert b"0 likes" in client.get("/1").data
    assert count(app, Like) == 0
    assert client.post("/9/like").status_code == 404


def test_likes_count_every_user(client, auth, app) -> None:
    auth.login()
    client.post("/1/like")
    auth.logout()
    auth.login("other", "other")
    client.post("/1/like")
    assert b"2 likes" in client.get("/1").data


def test_comments(client, auth, app) -> None:
    auth.login("other", "other")
    response = client.post("/1/comment", data={"body": "Nice *post*"})
    assert response.headers["Location"] == "/1#comments"
    page = client.get("/1").data
    assert b"Nice <em>post</em>" in page
    assert b"other on " in page
    assert b"0 likes, 1 comment" in client.get("/").data


def comment_numbers(page: str) -> list[int]:
    return [int(n) for n in re.findall(r"<p>comment (\d+)</p>", page)]


def test_comments_come_a_page_at_a_time(client, app) -> None:
    """However many comments a post has, its page renders twenty: the newest by default,
    oldest first, with links to older and newer pages (each its own page for the cache)."""
    with app.app_context():
        db.session.add_all(Comment(post_id=1, author_id=2, body=f"comment {n}") for n in range(45))
        db.session.commit()
    first = client.get("/1").get_data(as_text=True)
    assert comment_numbers(first) == list(range(25, 45))
    assert 'href="/1?comments=2#comments">&larr; Older comments' in first
    assert "Newer comments" not in first
    second = client.get("/1?comments=2").get_data(as_text=True)
    assert comment_numbers(second) == list(range(5, 25))
    assert 'href="/1?comments=3#comments"' in second and 'href="/1#comments"' in second
    last = client.get("/1?comments=3").get_data(as_text=True)
    assert comment_numbers(last) == list(range(5))
    assert "Older comments" not in last and 'href="/1?comments=2#comments"' in last
    assert comment_numbers(client.get("/1?comments=x").get_data(as_text=True)) == comment_numbers(
        first
    )
    for page in ("4", "0", "-1", "10000001"):
        assert client.get(f"/1?comments={page}").status_code == 404
    assert b"0 likes, 45 comments" in client.get("/").data  # the index counts them all
    assert client.get("/feed.atom").status_code == 200


def test_a_new_comment_shows_on_the_page_it_leads_to(client, auth, app) -> None:
    with app.app_context():
        db.session.add_all(Comment(post_id=1, author_id=2, body=f"comment {n}") for n in range(30))
        db.session.commit()
    auth.login()
    location = client.post("/1/comment", data={"body": "comment 99"}).headers["Location"]
    assert comment_numbers(client.get(location).get_data(as_text=True))[-1] == 99


@pytest.mark.parametrize(
    ("body", "message"), (("  ", b"Comment is required."), ("c" * 2001, b"at most 2000"))
)
def test_comment_validation(client, auth, app, body, message) -> None:
    auth.login()
    response = client.post("/1/comment", data={"body": body})
    assert response.status_code == 400
    assert message in response.data
    assert count(app, Comment) == 0


def test_comment_requires_login_and_post(client, auth) -> None:
    assert client.post("/1/comment", data={"body": "x"}).headers["Location"] == "/auth/login"
    auth.login()
    assert client.post("/5/comment", data={"body": "x"}).status_code == 404


def test_tags(client, auth, app) -> None:
    auth.login()
    client.post("/create", data={"title": "tagged", "tags": "Flask, python ,flask"})
    client.post("/create", data={"title": "other tag", "tags": "python"})
    index = client.get("/").data
    assert b'href="/tag/flask">#flask' in index
    flask_page = client.get("/tag/flask")
    assert b"tagged" in flask_page.data
    assert b"other tag" not in flask_page.data
    assert b"Posts tagged #flask" in flask_page.data
    python_page = client.get("/tag/python").data
    assert b"tagged" in python_page and b"other tag" in python_page
    assert client.get("/tag/FLASK").status_code == 200
    assert client.get("/tag/nothing").status_code == 404
    assert count(app, Tag) == 2


def test_update_replaces_tags(client, auth) -> None:
    auth.login()
    client.post("/1/update", data={"title": "t", "tags": "one, two"})
    assert b'value="one, two"' in client.get("/1/update").data
    client.post("/1/update", data={"title": "t", "tags": "two"})
    assert client.get("/tag/one").status_code == 200  # the tag exists, with no posts
    assert b"No posts yet." in client.get("/tag/one").data


def test_search(client, auth) -> None:
    auth.login()
    client.post("/create", data={"title": "Gunicorn in production"})
    client.post("/create", data={"title": "100% sure_thing"})
    response = client.get("/?q=GUNICORN")
    assert b"Gunicorn in production" in response.data
    assert b"test title" not in response.data
    assert b'value="GUNICORN"' in response.data  # the box keeps the query
    assert b"100% sure" in client.get("/?q=0%25").data
    assert b"100% sure" not in client.get("/?q=sure%25thing").data  # % is literal
    assert b"100% sure" not in client.get("/?q=sure_").data.replace(b"sure_thing", b"")
    assert b'No post title contains "zzz"' in client.get("/?q=zzz").data


def test_pagination(client, auth, app) -> None:
    auth.login()
    for i in range(11):
        client.post("/create", data={"title": f"numbered {i:02}"})
    first = client.get("/").data
    assert first.count(b'<article class="post">') == 5
    assert b"numbered 10" in first and b"numbered 06" in first
    assert b'rel="next" href="/?page=2"' in first
    assert b'rel="prev"' not in first
    second = client.get("/?page=2").data
    assert b"numbered 05" in second and b"numbered 01" in second
    assert b'rel="prev" href="/"' in second
    third = client.get("/?page=3").data
    assert third.count(b'<article class="post">') == 2
    assert b'rel="next"' not in third
    assert client.get("/?page=4").status_code == 404
    assert client.get("/?page=0").status_code == 404
    assert client.get("/?page=abc").status_code == 200  # ignored, like any bad query arg


def test_pagination_keeps_search_and_tag(client, auth) -> None:
    auth.login()
    for i in range(6):
        client.post("/create", data={"title": f"match {i}", "tags": "t"})
    assert b'href="/?q=match&amp;page=2"' in client.get("/?q=match").data
    assert b'href="/tag/t?page=2"' in client.get("/tag/t").data


def test_markdown_is_rendered_and_sanitised(client, auth) -> None:
    auth.login()
    body = (
        "# Heading\n\n**bold** [ok](https://example.com)\n\n"
        "<script>alert(1)</script>\n\n[x](javascript:alert(2))\n\n"
        '<a href="javascript:alert(4)">raw</a>\n\n'
        '<img src="x" onerror="alert(3)">'
    )
    client.post("/create", data={"title": "md", "body": body})
    page = client.get("/2").data
    assert b"<h1>Heading</h1>" in page
    assert b"<strong>bold</strong>" in page
    assert b'href="https://example.com"' in page
    for bad in (b"<script>alert", b'href="javascript:', b"onerror"):
        assert bad not in page


def test_image_upload(client, auth, app) -> None:
    auth.login()
    response = client.post(
        "/create",
        data={"title": "pic", "image": (io.BytesIO(image_bytes("JPEG")), "p.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    page = client.get("/2").data
    assert b'src="/2/image"' in page
    assert b'width="8" height="6"' in page
    # The post's image is its page's largest paint: fetched first, never deferred; a listing's
    # thumbnails wait their turn (and none asks to go first).
    (shown,) = re.findall(rb"<img [^>]*>", page)
    assert b'fetchpriority="high"' in shown and b"loading=" not in shown
    (thumb,) = re.findall(rb"<img [^>]*>", client.get("/").data)
    assert b'loading="lazy"' in thumb and b"fetchpriority" not in thumb
    image = client.get("/2/image")
    assert image.status_code == 200
    assert image.mimetype == "image/jpeg"
    assert b'src="/2/image"' in client.get("/").data


def test_update_replaces_image(client, auth, app) -> None:
    auth.login()
    client.post("/1/update", data={"title": "t", "image": (io.BytesIO(image_bytes()), "a.png")})
    client.post(
        "/1/update",
        data={"title": "t", "image": (io.BytesIO(image_bytes("GIF", (3, 2))), "a.gif")},
    )
    assert count(app, Image) == 1
    assert client.get("/1/image").mimetype == "image/gif"
    # an update without a new image keeps the old one
    client.post("/1/update", data={"title": "t2"})
    assert client.get("/1/image").status_code == 200


def test_bad_image_keeps_everything_typed(client, auth, app) -> None:
    auth.login()
    response = client.post(
        "/create",
        data={"title": "kept title", "image": (io.BytesIO(b"not an image"), "x.png")},
    )
    assert response.status_code == 400
    assert b"not a JPEG, PNG, GIF or WebP image" in response.data
    assert b'value="kept title"' in response.data
    assert count(app, Post) == 1


@pytest.mark.parametrize("path", ("/create", "/1/update"))
def test_preview_renders_markdown_and_saves_nothing(client, auth, app, path) -> None:
    auth.login()
    data = {"title": "Draft", "body": "Some **bold**", "tags": "drafts", "preview": "1"}
    response = client.post(path, data=data)
    assert response.status_code == 200
    assert b'class="preview"' in response.data
    assert b"<strong>bold</strong>" in response.data
    assert b'value="Draft"' in response.data  # the form keeps what was typed
    assert b"Some **bold**" in response.data
    assert count(app, Post) == 1
    with app.app_context():
        assert db.session.get(Post, 1).title == "test title"


def test_preview_shows_errors_too(client, auth, app) -> None:
    auth.login()
    response = client.post("/create", data={"title": "", "body": "*kept*", "preview": "1"})
    assert response.status_code == 400
    assert b"Title is required." in response.data
    assert b"<em>kept</em>" in response.data
    assert count(app, Post) == 1


def test_post_form_has_save_then_preview(client, auth) -> None:
    auth.login()
    page = client.get("/create").text
    assert page.index('value="Save"') < page.index('name="preview"')  # Enter saves


def test_tabs_and_line_breaks_are_not_control_characters_for_bodies(client, auth, app) -> None:
    auth.login()
    client.post("/create", data={"title": "t", "body": "a\tb\r\nc"})
    with app.app_context():
        assert db.session.get(Post, 2).body == "a\tb\r\nc"


def test_costly_comment_is_refused_with_a_form_error(client, auth, app) -> None:
    auth.login()
    response = client.post("/1/comment", data={"body": reference_links(2_000, 1_000)})
    assert response.status_code == 400
    assert b"more than 19 KB of HTML" in response.data
    assert len(response.data) < 20_000
    assert count(app, Comment) == 0


@pytest.mark.parametrize("path", ["/create", "/1/comment"])
def test_an_over_long_body_is_refused_before_it_is_rendered(
    client, auth, app, monkeypatch, path
) -> None:
    """Its length alone refuses it: the Markdown renderer never sees the text."""
    rendered: list[int] = []
    monkeypatch.setattr(forms, "render", lambda text: rendered.append(len(text)) or Markup(""))
    auth.login()
    response = client.post(path, data={"title": "t", "body": "a\n" * 249_000})
    assert response.status_code == 400
    assert b"must be at most" in response.data
    assert rendered == []
    assert (count(app, Post), count(app, Comment)) == (1, 0)


def test_costly_body_is_not_rendered_as_a_preview_either(client, auth) -> None:
    auth.login()
    body = reference_links(20_000, 9_000)
    response = client.post("/create", data={"title": "t", "body": body, "preview": "1"})
    assert response.status_code == 400
    assert b"more than 128 KB of HTML" in response.data
    assert b"Preview, not saved yet" not in response.data
    assert len(response.data) < 60_000  # the form gives back what was typed, no more


def test_a_short_search_looks_through_the_newest_posts_only(client, auth, monkeypatch) -> None:
    """One or two characters use no index: their cost must not grow with the site."""
    from flaskr import blog, listing

    monkeypatch.setattr(listing, "SHORT_SEARCH_SCOPE", 2)
    monkeypatch.setattr(blog, "SHORT_SEARCH_SCOPE", 2)
    listing.page_statement.cache_clear()  # statements are built once, with the scope in them
    try:
        auth.login()
        for title in ("zqa old", "filler", "zqa new"):
            client.post("/create", data={"title": title})
        page = client.get("/?q=zq").text
        assert "zqa new" in page and "zqa old" not in page
        assert "A search of one or two characters looks through the newest 2 posts." in page
        both = client.get("/?q=zqa").text  # three characters: every post, through the index
        assert "zqa new" in both and "zqa old" in both and "looks through" not in both
    finally:
        listing.page_statement.cache_clear()


def test_search_results_stop_after_their_last_page(client, auth, app, monkeypatch) -> None:
    """Deep pages of a search skip more and more of the index: a search has 200 pages."""
    from flaskr import blog

    app.config["POSTS_PER_PAGE"] = 1
    auth.login()
    for i in range(3):
        client.post("/create", data={"title": f"test {i}"})
    assert client.get(f"/?q=test&page={blog.SEARCH_MAX_PAGE + 1}").status_code == 404
    monkeypatch.setattr(blog, "SEARCH_MAX_PAGE", 2)
    second = client.get("/?q=test&page=2")
    assert second.status_code == 200 and 'rel="next"' not in second.text
    assert client.get("/?q=test&page=3").status_code == 404
    assert client.get("/?page=3").status_code == 200  # the index is not a search
