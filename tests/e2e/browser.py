"""A person's visit over real HTTP: cookies kept, the CSRF token read from each form."""

from __future__ import annotations

import io
import re

import requests
from PIL import Image as PILImage

TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def png(color: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (16, 12), color).save(out, "PNG")
    return out.getvalue()


class Visitor:
    def __init__(self, base: str, session: requests.Session | None = None) -> None:
        self.base = base.rstrip("/")
        self.http = session or requests.Session()

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self.base + path, allow_redirects=False, timeout=30, **kw)

    def submit(self, form_path: str, data: dict, files: dict | None = None, action: str = ""):
        """GET the page holding the form, then POST it with its CSRF token."""
        page = self.get(form_path)
        page.raise_for_status()
        token = TOKEN.search(page.text)
        assert token, f"no CSRF token on {form_path}"
        return self.http.post(
            self.base + (action or form_path),
            data={**data, "csrf_token": token.group(1)},
            files=files,
            allow_redirects=False,
            timeout=30,
        )

    def register_and_login(self, username: str, password: str) -> None:
        r = self.submit("/auth/register", {"username": username, "password": password})
        assert r.status_code == 302 and r.headers["Location"] == "/auth/login", r.text[:500]
        r = self.submit("/auth/login", {"username": username, "password": password})
        assert r.status_code == 302 and r.headers["Location"] == "/", r.text[:500]

    def create_post(self, title: str, body: str = "", tags: str = "", image: bytes | None = None):
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
