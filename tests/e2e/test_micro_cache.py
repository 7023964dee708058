"""The micro-cache's freshness rule, with a real nginx serving the host's site
(deploy/nginx/flaskr.conf with the micro-cache on, as install-host --micro-cache writes it) in
front of a real gunicorn: a visitor without cookies may be shown a page at most 2 s old; a
request with a cookie, a POST, a page that sets a cookie, health checks and metrics always
get the app's own answer."""

from __future__ import annotations

import contextlib
import gzip
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from toolkit.nginx import SiteNginx
from toolkit.servers import app_env, init_db, serve
from toolkit.visitors import Visitor
from toolkit.wait import until

pytestmark = pytest.mark.e2e

#: The oldest page a visitor may be shown, in seconds after the write (the rule as stated in
#: docs/deploy-host.md): 1 s of validity on nginx's clock of whole seconds.
BOUND = 2.0
#: Allowance for the two clocks read (this test's and nginx's cached one).
SLACK = 0.2
SECURITY_HEADERS = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteNginx]:
    workdir = tmp_path_factory.mktemp("micro-cache")
    env = app_env(workdir / "instance", FLASKR_PROXY_FIX="1", FLASKR_METRICS="true")
    init_db(env)
    with contextlib.ExitStack() as stack:
        gunicorn = stack.enter_context(serve(env, workdir / "gunicorn.log"))
        nginx = SiteNginx(gunicorn.port, micro_cache=True)
        stack.callback(nginx.cleanup)
        nginx.start()
        yield nginx


@pytest.fixture(scope="module")
def writer(site: SiteNginx) -> Visitor:
    user = Visitor(site.base)
    user.register_and_login("cachewriter", "a long enough password")
    return user


def visitor_get(site: SiteNginx, path: str) -> requests.Response:
    """A GET by a visitor with no cookies at all, as a first visit or a crawler makes it."""
    return requests.get(site.base + path, allow_redirects=False, timeout=30)


def status(response: requests.Response) -> str | None:
    return response.headers.get("X-Cache-Status")


def test_a_visitor_sees_a_write_within_the_bound(site: SiteNginx, writer: Visitor) -> None:
    until(lambda: status(visitor_get(site, "/")) == "HIT", 10, "the index from the cache")
    title = f"Fresh {uuid.uuid4().hex[:8]}"
    created = writer.create_post(title)
    written = time.monotonic()
    assert status(created) is None  # a POST is not even looked up
    # The writer sees their post at once: their session cookie bypasses the cache.
    own = writer.get("/")
    assert title in own.text and status(own) == "BYPASS"
    assert "private" in own.headers["Cache-Control"]

    stale: list[float] = []

    def fresh() -> bool:
        asked = time.monotonic() - written
        r = visitor_get(site, "/")
        assert r.status_code == 200
        if title in r.text:
            return True
        assert status(r) == "HIT", "an old page that did not come from the cache"
        stale.append(asked)
        return False

    until(fresh, BOUND + 5, f"the post on the visitors' index within {BOUND} s")
    # Old pages, from the cache, may be shown for a while, asked up to BOUND s after the write.
    assert all(asked < BOUND + SLACK for asked in stale), stale


def test_a_request_with_a_cookie_never_uses_the_cache(site: SiteNginx, writer: Visitor) -> None:
    # A page only ever asked for by a logged-in user is not kept for the visitors after them.
    path = f"/?q={uuid.uuid4().hex[:8]}"
    for _ in range(2):
        mine = writer.get(path)
        assert status(mine) == "BYPASS" and "Log Out" in mine.text
    # The visitor who fills the cache cannot choose the request id the next ones are shown.
    chosen = "chosen-by-a-visitor"
    theirs = requests.get(site.base + path, headers={"X-Request-ID": chosen}, timeout=30)
    assert status(theirs) == "MISS" and "Log Out" not in theirs.text
    hit = visitor_get(site, path)
    assert status(hit) == "HIT"
    assert hit.headers["X-Request-ID"] == theirs.headers["X-Request-ID"] != chosen
    # nginx adds its security headers only when the app sent none: a kept page has the app's,
    # once each (its own CSP, which lets the page show images; nginx's would not).
    for name in SECURITY_HEADERS:
        assert len(hit.raw.headers.getlist(name)) == 1, name
    assert hit.headers["Content-Security-Policy"] == theirs.headers["Content-Security-Policy"]
    # Any cookie at all, not only flaskr's session: the cache holds one variant per Cookie
    # header (the app sends Vary: Cookie), so a stranger's cookie would only fill it.
    other = requests.get(site.base + path, cookies={"tracker": "x"}, timeout=30)
    assert status(other) == "BYPASS"


def test_a_page_that_sets_a_cookie_is_not_cached(site: SiteNginx) -> None:
    """The login form puts its CSRF token in a new session: each visitor gets their own."""
    first, second = visitor_get(site, "/auth/login"), visitor_get(site, "/auth/login")
    for r in (first, second):
        assert r.status_code == 200 and status(r) == "MISS"
        assert "session" in r.cookies
    assert first.cookies["session"] != second.cookies["session"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_health_checks_and_metrics_always_ask_the_app(site: SiteNginx, path: str) -> None:
    for _ in range(2):
        r = visitor_get(site, path)
        assert r.status_code == 200 and status(r) == "BYPASS"


def test_only_parameters_a_page_reads_make_a_micro_cache_entry(
    site: SiteNginx, writer: Visitor
) -> None:
    """A counter in a made-up parameter is neither stored nor served from the store (the app
    answers it from its own page cache); the parameters pages read are cached as before."""
    writer.create_post("Parameters")
    post = f"/{writer.post_id('Parameters')}"
    until(lambda: status(visitor_get(site, "/?page=1")) == "HIT", 10, "/?page=1 from the cache")
    for path in ("/?page=1&x=1", "/?x=2", f"{post}?utm_source=a", "/?PAGE=1", "/feed.atom?x=1"):
        for _ in range(2):
            r = visitor_get(site, path)
            assert r.status_code == 200 and status(r) == "BYPASS", path
    until(lambda: status(visitor_get(site, "/?q=a&page=1")) == "HIT", 10, "a search")
    until(lambda: status(visitor_get(site, f"{post}?comments=1")) == "HIT", 10, "comments")
    assert status(visitor_get(site, "/?q=a&page=1&q=b")) == "BYPASS"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/feed.atom", "application/atom+xml"),
        ("/static/style.css", "text/css"),
        ("/static/passkeys.js", "application/javascript"),
        ("/", "text/html"),
    ],
)
def test_the_feed_and_styles_are_compressed(site: SiteNginx, path: str, kind: str) -> None:
    plain = requests.get(site.base + path, headers={"Accept-Encoding": "identity"}, timeout=30)
    packed = requests.get(
        site.base + path, headers={"Accept-Encoding": "gzip"}, timeout=30, stream=True
    )
    sent = packed.raw.read(decode_content=False)
    assert packed.headers["Content-Type"].startswith(kind)
    assert packed.headers.get("Content-Encoding") == "gzip", packed.headers
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(sent) == plain.content
    print(f"{path}: {len(plain.content)} B, {len(sent)} B compressed")


def test_no_answer_names_the_nginx_version(site: SiteNginx) -> None:
    """nginx's own pages, and plain http sent to the https port, say "nginx" and no version."""
    missing = requests.get(site.base + "/static/no-such-file.css", timeout=30)
    plain_to_https = requests.get(f"http://127.0.0.1:{site.tls_port}/", timeout=30)
    assert (missing.status_code, plain_to_https.status_code) == (404, 400)
    for answer in (missing, plain_to_https):
        assert answer.headers["Server"] == "nginx"
        assert "nginx/" not in answer.text
