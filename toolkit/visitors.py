"""A person's visit over real HTTP, as a browser makes it: cookies kept, redirects not followed
(a 302 is seen as one), and each form posted with the CSRF token read from its page. One
client for every suite: they differ only in where the server runs."""

from __future__ import annotations

import re
from typing import Any

import pyotp
import requests

#: A hidden csrf_token input, its attributes in either order.
TOKEN = re.compile(r'name="csrf_token"[^>]*?value="([^"]+)"|value="([^"]+)"[^>]*?name="csrf_token"')


#: The key of the enrol page, beside its QR code (flaskr/templates/auth/enrol.html).
TOTP_KEY = re.compile(r'<code id="totp-key">([A-Z2-7]+)</code>')


def csrf_token(page: str) -> str | None:
    """The CSRF token of the first form on ``page``, if it has one."""
    found = TOKEN.search(page)
    return (found.group(1) or found.group(2)) if found else None


class Visitor:
    """One browser on ``base``; ``session`` may be shared by visitors of several servers."""

    def __init__(self, base: str, session: requests.Session | None = None) -> None:
        self.base = base.rstrip("/")
        self.http = session or requests.Session()

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.http.get(self.base + path, allow_redirects=False, timeout=30, **kw)

    def csrf(self, path: str) -> str:
        """The token of the form on ``path``: bound to this session, it does not expire."""
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code)
        token = csrf_token(page.text)
        assert token, f"no CSRF token on {path}"
        return token

    def post(
        self,
        path: str,
        data: dict[str, str],
        token: str,
        files: dict | None = None,
        timeout: float = 30,
    ) -> requests.Response:
        """POST a form with a token read beforehand (so that only the POST is timed)."""
        return self.http.post(
            self.base + path,
            data={**data, "csrf_token": token},
            files=files,
            allow_redirects=False,
            timeout=timeout,
        )

    def submit(
        self, form_path: str, data: dict[str, str], files: dict | None = None, action: str = ""
    ) -> requests.Response:
        """GET the page holding the form, then POST it (to ``action``) with its token."""
        return self.post(action or form_path, data, self.csrf(form_path), files)

    def post_form(
        self, path: str, fields: dict[str, str], form_page: str | None = None
    ) -> requests.Response:
        """POST ``fields`` to ``path``, with the token of the form on ``form_page``."""
        return self.submit(form_page or path, fields, action=path)

    def post_multipart(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, str, bytes]]
    ) -> requests.Response:
        """POST a form with files, each given as (filename, content type, bytes)."""
        parts = {
            name: (filename, content, kind) for name, (filename, kind, content) in files.items()
        }
        return self.submit(path, fields, parts)

    def login(self, username: str, password: str) -> None:
        r = self.submit("/auth/login", {"username": username, "password": password})
        assert r.status_code == 302 and r.headers["Location"] == "/", r.text[:500]

    def enrol_second_factor(self, password: str) -> str:
        """Give the logged-in account a TOTP second factor as its page asks: the key read from
        the page, a code computed from it. Return the key, for the codes of later logins."""
        page = self.get("/auth/two-factor/enrol")
        found = TOTP_KEY.search(page.text)
        assert page.status_code == 200 and found, page.text[:500]
        fields = {"code": pyotp.TOTP(found[1]).now(), "current": password}
        done = self.post("/auth/two-factor/enrol", fields, csrf_token(page.text) or "")
        assert done.status_code == 200 and "Your Recovery Codes" in done.text, done.text[:500]
        return found[1]

    def register_and_login(self, username: str, password: str) -> None:
        r = self.submit("/auth/register", {"username": username, "password": password})
        assert r.status_code == 302 and r.headers["Location"] == "/auth/login", r.text[:500]
        self.login(username, password)

    def create_post(
        self, title: str, body: str = "", tags: str = "", image: bytes | None = None
    ) -> requests.Response:
        files = {"image": ("picture.png", image, "image/png")} if image else None
        r = self.submit("/create", {"title": title, "body": body, "tags": tags}, files)
        assert r.status_code == 302, r.text[:500]
        return r

    def post_id(self, title: str) -> int:
        """The id of the newest post called ``title``, found by the search box."""
        page = self.get("/", params={"q": title}).text
        found = re.search(r'<h1><a href="/(\d+)">' + re.escape(title) + "</a></h1>", page)
        assert found, f"post {title!r} not on the index"
        return int(found.group(1))

    def cookie_header(self) -> str:
        """The Cookie header this browser sends, for a request written by hand."""
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
