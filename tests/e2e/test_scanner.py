"""A web scanner, Debian's wapiti, against flaskr under real gunicorn on a seeded site: once as
an anonymous visitor, once logged in as the author of every post.

Each scan must crawl the site's forms and post to them (a scan that reached nothing cannot
pass), find nothing but the known false positives listed below (each matched narrowly, and
its claim checked again against the same server), and leave no 500 and no traceback in
gunicorn's log. How wapiti is run, and kept off the network: toolkit/scanner.py.
docs/security.md ("Checked in CI: wapiti") says the same for readers; `pytest -s` prints
each scan's time, requests and seconds by module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from toolkit.gunicorn_log import access_log, log_problems
from toolkit.images import png
from toolkit.scanner import Finding, Scan, scan
from toolkit.servers import Gunicorn, app_env, flask, init_db, serve
from toolkit.visitors import Visitor

WRITER, PASSWORD = "writer", "correct horse battery staple"

#: wapiti's attack modules run here: its default set less ssrf and blindsql (below), plus
#: crlf, csrf, methods and htaccess.
MODULES = [
    "sql", "xss", "permanentxss", "exec", "file", "redirect", "crlf",
    "csrf", "methods", "htaccess", "http_headers", "cookieflags", "csp",
]  # fmt: skip
#: Left out, and why:
#: - ssrf and xxe: their payloads make the target call wapiti's public server, which they
#:   then ask whether it was called. This machine reaches no such server, and must not try.
#: - blindsql: its payloads make MySQL, PostgreSQL or SQL Server sleep, and it waits for
#:   that; SQLite, the scanned site's database, has no such function, so it could find
#:   nothing here (218 requests a field). A quote that broke a query would be a database
#:   error, a 500: sql's payloads are quotes, and gunicorn's log is read for any 500.
#: - wapp: fingerprints the server's software with a database it downloads.
#: - nikto: Debian ships it without its database (whose licence forbids that), so it does
#:   nothing; buster and backup: thousands of guessed paths, for files that a Flask app does
#:   not serve (only static/, from the repository).
#: - brute_login_form: guesses passwords, which the login throttle is for
#:   (tests/e2e/test_lockout.py); shellshock: for CGI scripts run by bash.

#: Fields not attacked. Every form's CSRF token: a changed one is refused with 400 before
#: any view runs, so attacking it finds nothing and costs a third of each form's requests.
#: And a password (the login and registration forms'), which is only ever hashed: never
#: queried, shown or stored as sent; each payload there cost a scrypt hash, 20 s a scan.
SKIPPED = ["csrf_token", "password"]

#: Never sent by the logged-in scan: they end the session, change what protects the account,
#: or delete what the scan is there to attack. (No page deletes an account; the admin pages
#: answer 404 to this account, which is no admin.)
DESTRUCTIVE = [
    "/auth/logout",  # ends every session of the account
    "/auth/password",  # changes the password, ending every other session
    "/auth/email",  # changes or removes the address, ending every other session
    "/auth/two-factor/remove",  # removes the second factor
    "/auth/passkeys/remove",  # removes a passkey
    "/*/delete",  # deletes a post
]
#: Attacked by the anonymous scan: the logged-in one leaves them out.
ANONYMOUS_FORMS = ["/auth/login", "/auth/register", "/auth/passkeys/sign-in"]
#: Pages only linked from the password page (excluded above): where the logged-in crawl starts
#: too, with the index.
ACCOUNT_PAGES = ["/auth/two-factor", "/auth/passkeys"]

#: The scanned site's settings: behind one proxy, as deployed (the scans reach gunicorn
#: directly, without X-Forwarded-*), and with the limits that answer 429 before a view runs
#: raised out of reach, so that every payload reaches the code it is aimed at: a scan sends
#: in a minute more guessed passwords, registrations and posts than they allow in an hour
#: (with them, two thirds of the post form's attacks were 429s). Those limits have suites of
#: their own (tests/e2e/test_lockout.py, test_hostile.py).
SITE_SETTINGS = {
    "FLASKR_PROXY_FIX": "1",
    **{
        f"FLASKR_{name}": "1000000"
        for name in (
            "LOGIN_FAILURES_PER_DEVICE",
            "LOGIN_FAILURES_PER_ACCOUNT_ADDRESS",
            "LOGIN_FAILURES_PER_ADDRESS",
            "LOGIN_FAILURES_PER_USER",
            "LOGIN_FAILURES_GLOBAL",
            "REGISTRATIONS_PER_ADDRESS",
            "REGISTRATIONS_PER_NETWORK",
            "REGISTRATIONS_GLOBAL",
            "RENDER_CPU_MS_PER_USER",
            "RENDER_CPU_MS_SITE",
        )
    },
}

#: Bounds: the crawl, each module (checked between two of the URLs or forms it attacks, so
#: it may run over by one), and the whole run. Measured on the project's 2-core machine, no
#: module took over 24 s, and both scans together about a minute (docs/security.md).
CRAWL_SECONDS, MODULE_SECONDS, RUN_SECONDS = 20, 40, 240


@dataclass(frozen=True)
class Known:
    """A false positive: findings of one category on one path and parameter whose message
    matches ``info``, and a check, run against the same server, that their claim is false."""

    category: str
    path: str
    parameter: str
    info: str  # a regular expression, matched whole
    check: Callable[[str], None]

    def matches(self, finding: Finding) -> bool:
        where = (finding.category, finding.path, finding.parameter)
        return where == (self.category, self.path, self.parameter) and bool(
            re.fullmatch(self.info, finding.info)
        )


def no_xss_protection_header(base: str) -> None:
    """X-XSS-Protection is left out on purpose (wapiti wants a "1" in it): browsers dropped
    the filter it turned on, and in those that had it, it could be used to blank parts of a
    page or to tell what a page holds. The Content-Security-Policy forbids inline script."""
    headers = requests.get(base + "/", timeout=10).headers
    assert "X-XSS-Protection" not in headers
    assert "script-src 'self';" in headers["Content-Security-Policy"]


def hsts_on_https_only(base: str) -> None:
    """HSTS comes with https answers (X-Forwarded-Proto, from nginx): the scan is over plain
    http, where browsers ignore the header."""
    plain = requests.get(base + "/", timeout=10)
    https = requests.get(base + "/", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert "Strict-Transport-Security" not in plain.headers
    assert https.headers["Strict-Transport-Security"].startswith("max-age=31536000")


def secure_cookies_on_https_only(base: str) -> None:
    """The session and device cookies are Secure when set over https; over plain http, where
    the scan runs, a browser would never send a Secure cookie back, and no form would work."""
    host = base.split("://", 1)[1]
    for proto, secure in (("http", False), ("https", True)):
        visitor = Visitor(base)
        token = visitor.csrf("/auth/login")  # over http, so that the cookie is sent back
        login = visitor.http.post(
            base + "/auth/login",
            data={"username": WRITER, "password": PASSWORD, "csrf_token": token},
            # Over https, Flask-WTF also wants a Referer of this site, as browsers send.
            headers={"X-Forwarded-Proto": proto, "Referer": f"{proto}://{host}/auth/login"},
            allow_redirects=False,
            timeout=30,
        )
        assert login.status_code == 302, (proto, re.findall(r"<p>([^<]*)</p>", login.text))
        cookies = login.raw.headers.getlist("Set-Cookie")
        assert {c.split("=", 1)[0] for c in cookies} == {"session", "flaskr_device"}, cookies
        assert all(("; Secure" in c) == secure for c in cookies), cookies


KNOWN = [
    Known("HTTP Secure Headers", "/", "", "X-XSS-Protection is not set", no_xss_protection_header),
    Known("HTTP Secure Headers", "/", "", "Strict-Transport-Security is not set", hsts_on_https_only),
    Known(
        "Secure Flag cookie", "/", "", "Secure flag is not set in the cookie : (session|flaskr_device)",
        secure_cookies_on_https_only,
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gunicorn]:
    """gunicorn (three workers, as the README runs it) on a site with two pages of tagged
    posts by WRITER (`flask seed`), the newest with an image, a comment and a like."""
    tmp = tmp_path_factory.mktemp("scanner")
    env = app_env(tmp / "instance", keep_database_url=False, **SITE_SETTINGS)
    init_db(env)
    flask(env, "seed", "--force", "--posts", "6", "--author", WRITER, "--password", PASSWORD)
    with serve(env, tmp / "gunicorn.log", ready="/hello", timeout=90) as server:
        writer = Visitor(server.base)
        writer.login(WRITER, PASSWORD)
        writer.create_post("Sunrise", "A *morning* picture.", "photo, morning", png())
        post = writer.post_id("Sunrise")
        commented = writer.post_form(f"/{post}/comment", {"body": "Lovely."}, f"/{post}")
        liked = writer.post_form(f"/{post}/like", {}, f"/{post}")
        assert commented.status_code == liked.status_code == 302
        yield server


def scan_and_check(
    server: Gunicorn, tmp_path: Path, forms: set[str], **options
) -> tuple[Scan, list[tuple[str, str, int]]]:
    """Scan the site and fail on anything but the known false positives, on a scan that did
    not crawl and post to each of ``forms``, and on a 500 or a traceback meanwhile. Return
    the scan and the requests gunicorn answered meanwhile: (method, path, status)."""
    log_at, requests_before = server.log.stat().st_size, len(access_log(server.log))
    result = scan(
        server.base,
        tmp_path,
        MODULES,
        skipped_parameters=SKIPPED,
        crawl_seconds=CRAWL_SECONDS,
        module_seconds=MODULE_SECONDS,
        timeout=RUN_SECONDS,
        **options,
    )
    sent = access_log(server.log)[requests_before:]
    print(
        f"wapiti: {result.seconds:.1f} s, {len(sent)} requests, seconds by phase "
        f"{result.phases}, stopped by the time limit: {result.modules_cut_short()}"
    )

    crawled = result.crawled()
    assert {("POST", form) for form in forms} <= crawled, sorted(crawled)
    posted: dict[str, int] = {}
    for method, path, _ in sent:
        if method == "POST":
            posted[path] = posted.get(path, 0) + 1
    assert all(posted.get(form, 0) >= 20 for form in forms), posted  # attacked, not just sent

    errors = log_problems(server.log, since=log_at)
    assert not errors, errors

    unknown = [str(f) for f in result.findings() if not any(k.matches(f) for k in KNOWN)]
    assert not unknown, "wapiti found:\n" + "\n".join(unknown)
    for known in KNOWN:
        assert any(known.matches(f) for f in result.findings()), f"no longer found: {known}"
        known.check(server.base)
    return result, sent


def test_anonymous_scan(seeded: Gunicorn, tmp_path: Path) -> None:
    scan_and_check(seeded, tmp_path, {"/auth/login", "/auth/register"})


def test_logged_in_scan(seeded: Gunicorn, tmp_path: Path) -> None:
    post = Visitor(seeded.base).post_id("Sunrise")
    # Every post has the same three forms: the scan attacks the newest post's. Its edit
    # form is the new post form, sent to the same code (save_post) after the author's check:
    # the scan attacks that one only (the two took a third of the scan's time).
    others = [f"/{i}/{form}" for i in range(1, post) for form in ("update", "comment", "like")]
    excluded = DESTRUCTIVE + ANONYMOUS_FORMS + others + ["/create"]
    result, sent = scan_and_check(
        seeded,
        tmp_path,
        {f"/{post}/update", f"/{post}/comment", "/auth/two-factor/enrol", "/auth/passkeys/add"},
        login=("/auth/login", WRITER, PASSWORD),
        excluded=excluded,
        starts=["/", *ACCOUNT_PAGES],
    )
    assert "Login success" in result.output
    # Nothing excluded was asked for (but the login page, which wapiti logs in with).
    pattern = "|".join(re.escape(path).replace(r"\*", "[^?]*") for path in excluded)
    reached = {f"{m} {p}" for m, p, _ in sent if re.fullmatch(f"(?:{pattern})(?:\\?.*)?", p)}
    assert reached <= {"GET /auth/login", "POST /auth/login"}, reached
    # Logged in: the writer's pages were crawled, and the scan's comments were stored.
    assert {("GET", f"/{post}/update"), ("POST", f"/{post}/like")} <= result.crawled()
    page = requests.get(f"{seeded.base}/{post}", timeout=10).text
    assert page.count('<div class="comment">') > 1, page[-2000:]
