"""What bench/run asks flaskr for: the visitor's pages, and the logged-in pages and forms,
whose session cookie and CSRF token are got once through the real login form and replayed.

Each POST is tried once before it is measured, so a wrong setup fails loudly instead of
measuring error pages.
"""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
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


class Browser:
    """A cookie jar and the CSRF token of the last form read, over plain urllib."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a: Any, **kw: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), NoRedirect
        )

    def token(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as r:
            found = TOKEN.search(r.read().decode())
        if not found:
            raise RuntimeError(f"no CSRF token on {path}")
        return found.group(1)

    def post(self, path: str, data: dict[str, str]) -> int:
        body = urllib.parse.urlencode(data).encode()
        try:
            with self.opener.open(self.base + path, data=body, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def replay(self, page: Page) -> int:
        """The status ``page`` answers when sent as wrk will send it (no cookie jar)."""
        req = urllib.request.Request(
            self.base + page.path,
            data=page.body.encode(),
            headers={"Cookie": page.cookie, "Content-Type": page.content_type},
        )
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar if c.name == "session")


def form_pages(base: str, post_id: int) -> list[Page]:
    """The index and a post's page for a logged-in user (never from the page cache; the post
    page shows the comment form and the like button), the login POST (an
    anonymous session and its token, replayed) and the create POST (a logged-in session and
    its token). Each POST is tried once so a wrong setup fails loudly."""
    anon = Browser(base)
    token = anon.token("/auth/login")
    login = Page(
        "login POST",
        "/auth/login",
        "POST",
        urllib.parse.urlencode({"username": "demo", "password": "demo", "csrf_token": token}),
        anon.cookie(),
        FORM,
        302,
    )
    user = Browser(base)
    status = user.post(
        "/auth/login",
        {"username": "demo", "password": "demo", "csrf_token": user.token("/auth/login")},
    )
    if status != 302:
        raise RuntimeError(f"logging in as demo answered {status}, not 302")
    token = user.token("/create")
    create = Page(
        "create POST",
        "/create",
        "POST",
        urllib.parse.urlencode(
            {"title": "Bench post", "body": "Written by *bench/run*.", "tags": "bench, flask"}
        )
        + "&csrf_token="
        + urllib.parse.quote(token),
        user.cookie(),
        FORM,
        302,
    )
    signed_in = [
        Page("index, logged in (not cached)", "/", cookie=user.cookie()),
        Page("post page, logged in (not cached)", f"/{post_id}", cookie=user.cookie()),
    ]
    for page in (login, create):
        status = Browser(base).replay(page)
        if status != page.expect:
            raise RuntimeError(f"{page.name}: answered {status}, not {page.expect}")
    return [*signed_in, login, create]
