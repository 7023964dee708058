"""What bench/run asks flaskr for: the visitor's pages, and the logged-in pages and forms,
whose session cookie and CSRF token are got once through the real login form and replayed.

Each POST is tried once before it is measured, so a wrong setup fails loudly instead of
measuring error pages.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from toolkit.visitors import Visitor

FORM = "application/x-www-form-urlencoded"


@dataclass
class Page:
    name: str
    path: str
    method: str = "GET"
    body: str = ""
    cookie: str = ""
    content_type: str = ""
    expect: int = 200


def read_pages(needle_id: int) -> list[Page]:
    """A visitor's pages (served from flaskr's page cache unless it is turned off)."""
    return [
        Page("index", "/"),
        Page("post page", f"/{needle_id}"),
        Page("search, common word", "/?q=post"),
        Page("search, rare word", "/?q=needle"),
        Page("tag page", "/tag/python"),
        Page("feed", "/feed.atom"),
    ]


def replay(base: str, page: Page) -> int:
    """The status ``page`` answers when sent as wrk sends it: its own cookie, no jar."""
    headers = {"Cookie": page.cookie, "Content-Type": page.content_type}
    r = Visitor(base).http.post(
        base + page.path, data=page.body, headers=headers, allow_redirects=False, timeout=30
    )
    return r.status_code


def form_pages(base: str, post_id: int) -> list[Page]:
    """The index and a post's page for a logged-in user (never from the page cache; the post
    page shows the comment form and the like button), the login POST (an
    anonymous session and its token, replayed) and the writes: the create, comment and like
    POSTs (a logged-in session and its token). Each POST is tried once so a wrong setup fails
    loudly."""
    anon = Visitor(base)
    token = anon.csrf("/auth/login")
    login = Page(
        "login POST",
        "/auth/login",
        "POST",
        urllib.parse.urlencode({"username": "demo", "password": "demo", "csrf_token": token}),
        anon.cookie_header(),
        FORM,
        302,
    )
    user = Visitor(base)
    user.login("demo", "demo")
    create = Page(
        "create POST",
        "/create",
        "POST",
        urllib.parse.urlencode(
            {"title": "Bench post", "body": "Written by *bench/run*.", "tags": "bench, flask"}
        )
        + "&csrf_token="
        + urllib.parse.quote(user.csrf("/create")),
        user.cookie_header(),
        FORM,
        302,
    )
    token = "csrf_token=" + urllib.parse.quote(user.csrf(f"/{post_id}"))
    comment = Page(
        "comment POST",
        f"/{post_id}/comment",
        "POST",
        "body=A+comment+by+%2Abench%2Frun%2A.&" + token,
        user.cookie_header(),
        FORM,
        302,
    )
    # Each like POST likes the post or takes the like back: a row written, then deleted.
    like = Page("like POST", f"/{post_id}/like", "POST", token, user.cookie_header(), FORM, 302)
    signed_in = [
        Page("index, logged in (not cached)", "/", cookie=user.cookie_header()),
        Page("post page, logged in (not cached)", f"/{post_id}", cookie=user.cookie_header()),
    ]
    writes = [create, comment, like]
    for page in (login, *writes):
        status = replay(base, page)
        if status != page.expect:
            raise RuntimeError(f"{page.name}: answered {status}, not {page.expect}")
    return [*signed_in, login, *writes]
