"""An HTTP client for tests/e2e/host/, run inside the machine's network namespace
(``nsenter -t PID -n python machine_client.py ...``): the machine has a private network, so its
nginx on port 80 is reachable from there only. Prints JSON.

It stands alone, with the standard library only, rather than using the rest of toolkit/: it
is started by path, as a process of its own inside the machine's network namespace, where the
``toolkit`` package is not importable and nothing beyond this file can be counted on (it would
run with the machine's own python3 as well); toolkit/ itself is first on its path, so no
module there may be named like one of the standard library's (tests/test_toolkit.py). So its client, PNG maker and load loop are its
own, kept small.

    [--host NAME] [--cafile FILE] COMMAND ...
                        the site's name (default localhost); with --cafile, https to port 443
                        with that name as SNI, trusting FILE's CA only (the machine has no DNS)

    flow TITLE          register, log in, post with an image, read the post and the image back;
                        returns the redirects' locations and the session cookie's attributes
    feed                the URLs in /feed.atom
    get PATH [HOST]     one request; status, headers and the body's first bytes
    check-post ID TITLE WIDTH HEIGHT   the post page shows TITLE and its image has that size
    upload SIZE [--headers-only]       POST SIZE bytes to /create
    load SECONDS        concurrent GETs until stdin closes (or SECONDS pass), counting failures;
                        prints a progress line {"ok": N, "failed": M} every 0.1 s, then the totals
    isolation USER PASSWORD   log in as USER (an admin), add the second factor admins need,
                        then GET /admin/isolation.json (a visitor's status first); the report
                        as JSON
"""

from __future__ import annotations

import base64
import hmac
import http.client
import io
import json
import re
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
import zlib
from urllib.parse import quote_plus as quote

ADDRESS = ("127.0.0.1", 80)
HOST = "localhost"
#: Set by --cafile: https to 127.0.0.1:443, the certificate checked against that CA.
TLS: ssl.SSLContext | None = None


def connection(host: str) -> http.client.HTTPConnection:
    """To nginx on the machine's loopback, whatever ``host`` resolves to (or not) here."""
    if TLS is None:
        return http.client.HTTPConnection(*ADDRESS, timeout=30)
    conn = http.client.HTTPSConnection(host, 443, timeout=30, context=TLS)
    conn._create_connection = lambda _, *a: socket.create_connection((ADDRESS[0], 443), *a)  # type: ignore[attr-defined]
    return conn


class Session:
    """A tiny browser: one connection per request, cookies kept, redirects not followed."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.cookies: dict[str, str] = {}
        self.cookie_attributes: dict[str, str] = {}
        self.locations: list[str] = []

    def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {"Host": self.host}
        if method == "POST":  # as a browser does; over https Flask-WTF's CSRF check needs it
            headers["Referer"] = f"{'https' if TLS else 'http'}://{self.host}{path}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if content_type:
            headers["Content-Type"] = content_type
        conn = connection(self.host)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key], _, self.cookie_attributes[key] = rest.partition(";")
            if response.getheader("Location"):
                self.locations.append(response.getheader("Location", ""))
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def csrf(self, path: str) -> str:
        status, _, page = self.request("GET", path)
        assert status == 200, (path, status)
        match = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            rb'value="([^"]+)"[^>]*name="csrf_token"', page
        )
        assert match, f"no csrf_token in {path}"
        return match.group(1).decode()

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        fields = {"csrf_token": self.csrf(path), **fields}
        body = "&".join(f"{k}={quote(v)}" for k, v in fields.items()).encode()
        return self.request("POST", path, body, "application/x-www-form-urlencoded")

    def post_multipart(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, str, bytes]]
    ) -> tuple[int, dict[str, str], bytes]:
        fields = {"csrf_token": self.csrf(path), **fields}
        boundary = uuid.uuid4().hex
        out = io.BytesIO()
        for name, value in fields.items():
            out.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            )
            out.write(value.encode() + b"\r\n")
        for name, (filename, mimetype, data) in files.items():
            out.write(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {mimetype}\r\n\r\n'.encode()
            )
            out.write(data + b"\r\n")
        out.write(f"--{boundary}--\r\n".encode())
        return self.request(
            "POST", path, out.getvalue(), f"multipart/form-data; boundary={boundary}"
        )


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG of the given size, made without Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 7 % 256, y * 5 % 256, 128)) for x in range(width))
        for y in range(height)
    )
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def image_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def flow(title: str) -> dict[str, object]:
    """A person's whole visit: register, log in, write a post with an image, read it."""
    s = Session(HOST)
    user = "u" + uuid.uuid4().hex[:10]
    password = "pw-" + uuid.uuid4().hex
    status, headers, _ = s.post_form("/auth/register", {"username": user, "password": password})
    assert status == 302 and headers["location"].endswith("/auth/login"), (status, headers)
    status, headers, _ = s.post_form("/auth/login", {"username": user, "password": password})
    assert status == 302, ("login", status)
    status, _, page = s.request("GET", "/")
    assert status == 200 and user.encode() in page, "the index does not show the logged-in user"
    width, height = 37, 23
    status, headers, page = s.post_multipart(
        "/create",
        {"title": title, "body": "Posted through nginx.", "tags": "e2e, host"},
        {"image": ("pixel.png", "image/png", png(width, height))},
    )
    assert status == 302, ("create", status, page[:500])
    status, _, index = s.request("GET", "/")
    match = re.search(rb'href="/(\d+)"[^>]*>\s*' + re.escape(title.encode()), index)
    assert status == 200 and match, "the new post is not on the index"
    post_id = int(match.group(1))
    check_post(post_id, title, width, height)
    # Read by a visitor who is not logged in, too.
    status, _, page = Session(HOST).request("GET", f"/{post_id}")
    assert status == 200 and title.encode() in page
    return {
        "post_id": post_id,
        "title": title,
        "user": user,
        "width": width,
        "height": height,
        "locations": s.locations,
        "session_cookie": s.cookie_attributes.get("session", ""),
    }


def check_post(post_id: int, title: str, width: int, height: int) -> dict[str, object]:
    s = Session(HOST)
    status, _, page = s.request("GET", f"/{post_id}")
    assert status == 200 and title.encode() in page, ("post page", status)
    assert f"/{post_id}/image".encode() in page, "the post page does not show its image"
    status, headers, data = s.request("GET", f"/{post_id}/image")
    assert status == 200 and headers["content-type"] == "image/png", (status, headers)
    assert image_size(data) == (width, height), image_size(data)
    return {"post_id": post_id, "ok": True}


def get(path: str, host: str = "") -> dict[str, object]:
    try:
        status, headers, body = Session(host or HOST).request("GET", path)
    except (OSError, http.client.HTTPException) as e:  # refused, closed unanswered (444), ...
        return {"error": type(e).__name__}
    return {"status": status, "headers": headers, "body": body[:2000].decode("latin-1")}


def feed() -> dict[str, object]:
    status, headers, body = Session(HOST).request("GET", "/feed.atom")
    assert status == 200, ("feed", status)
    urls = re.findall(rb'href="([^"]+)"|<id>([^<]+)</id>', body)
    return {"urls": [(a or b).decode() for a, b in urls]}


def upload(size: int, body: bool) -> dict[str, object]:
    """POST ``size`` bytes to /create. Without ``body`` only the headers go: nginx refuses an
    oversized request from its Content-Length alone, before any byte of it is sent."""
    conn = connection(HOST)
    try:
        conn.putrequest("POST", "/create", skip_host=True)
        conn.putheader("Host", HOST)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.endheaders(b"x" * size if body else None)
        response = conn.getresponse()
        return {"status": response.status, "body": response.read()[:300].decode("latin-1")}
    finally:
        conn.close()


def load(seconds: float, concurrency: int = 6) -> dict[str, object]:
    """GET a mix of pages from ``concurrency`` threads until stdin closes; count everything."""
    paths = ["/", "/healthz", "/hello", "/static/style.css", "/auth/login"]
    stop = threading.Event()
    lock = threading.Lock()
    counts = {"sent": 0, "ok": 0, "failed": 0}
    errors: list[str] = []

    def worker(n: int) -> None:
        i = n
        while not stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            try:
                status, _, _ = Session(HOST).request("GET", path)
                good = status == 200
                why = f"{path}: HTTP {status}"
            except Exception as e:  # every failure counts
                good, why = False, f"{path}: {type(e).__name__}: {e}"
            with lock:
                counts["sent"] += 1
                counts["ok" if good else "failed"] += 1
                if not good and len(errors) < 20:
                    errors.append(why)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    deadline = time.monotonic() + seconds
    while not stop.wait(0.1):
        with lock:
            print(json.dumps({"ok": counts["ok"], "failed": counts["failed"]}), flush=True)
        if time.monotonic() > deadline:
            stop.set()
    for t in threads:
        t.join()
    return {**counts, "errors": errors, "total": True}


def totp_now(key: str) -> str:
    """The current RFC 6238 code of the base32 ``key`` (30 s steps, 6 digits, SHA-1): what
    an authenticator app shows, without pyotp, which the machine does not have."""
    secret = base64.b32decode(key + "=" * (-len(key) % 8))
    digest = hmac.new(secret, struct.pack(">Q", int(time.time()) // 30), "sha1").digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 10**6:06d}"


def enrol_second_factor(s: Session, password: str) -> None:
    """Add a TOTP factor to the logged-in account, with a code of the key its page shows."""
    status, _, page = s.request("GET", "/auth/two-factor/enrol")
    key = re.search(rb'<code id="totp-key">([A-Z2-7]+)</code>', page)
    assert status == 200 and key, ("enrol", status)
    fields = {"code": totp_now(key[1].decode()), "current": password}
    status, _, page = s.post_form("/auth/two-factor/enrol", fields)
    assert status == 200 and b"Your Recovery Codes" in page, ("enrol", status)


def isolation(user: str, password: str) -> dict[str, object]:
    """The isolation report, collected by the gunicorn worker that serves the request, for
    an admin made with `flask make-admin`."""
    visitor, _, _ = Session(HOST).request("GET", "/admin/isolation.json")
    s = Session(HOST)
    fields = {"username": user, "password": password}
    status, _, _ = s.post_form("/auth/login", fields)
    assert status == 302, ("login", status)
    status, headers, _ = s.request("GET", "/admin/isolation.json")
    if status == 302 and headers["location"].endswith("/auth/two-factor/enrol"):
        enrol_second_factor(s, password)  # FLASKR_REQUIRE_2FA_FOR_ADMINS, on by default
    status, headers, body = s.request("GET", "/admin/isolation.json")
    report = json.loads(body) if status == 200 else body[:2000].decode("latin-1")
    return {"visitor": visitor, "status": status, "headers": headers, "report": report}


def main(argv: list[str]) -> None:
    global HOST, TLS
    while argv[0] in ("--host", "--cafile"):
        if argv[0] == "--host":
            HOST = argv[1]
        else:
            TLS = ssl.create_default_context(cafile=argv[1])
        argv = argv[2:]
    command, args = argv[0], argv[1:]
    if command == "flow":
        result = flow(args[0])
    elif command == "check-post":
        result = check_post(int(args[0]), args[1], int(args[2]), int(args[3]))
    elif command == "get":
        result = get(*args)
    elif command == "feed":
        result = feed()
    elif command == "upload":
        result = upload(int(args[0]), body=args[1:] != ["--headers-only"])
    elif command == "load":
        result = load(float(args[0]))
    elif command == "isolation":
        result = isolation(args[0], args[1])
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
