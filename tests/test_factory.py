import subprocess
import sys
from pathlib import Path

import pytest

from flaskr import create_app
from tests.helpers import AuthActions
from toolkit.apps import config_for, make_app

ROOT = Path(__file__).resolve().parent.parent


def test_config_testing(tmp_path: Path) -> None:
    assert not create_app({"SECRET_KEY": "x-9f86d081884c7d65a2f0e3b1c4d7e6f8"}).testing
    assert create_app(config_for(tmp_path)).testing


def test_hello(client) -> None:
    response = client.get("/hello")
    assert response.data == b"Hello, World!"


def test_proxy_fix_trusts_one_proxy(tmp_path: Path) -> None:
    app = create_app(config_for(tmp_path, PROXY_FIX=1))

    @app.get("/whoami")
    def whoami() -> str:
        from flask import request

        return f"{request.remote_addr} {request.scheme}"

    response = app.test_client().get(
        "/whoami",
        headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9", "X-Forwarded-Proto": "https"},
    )
    assert response.text == "203.0.113.9 https"


def test_forwarded_headers_ignored_without_proxy_fix(client, app) -> None:
    @app.get("/whoami")
    def whoami() -> str:
        from flask import request

        return f"{request.remote_addr} {request.scheme}"

    response = client.get("/whoami", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.text == "127.0.0.1 http"


def test_serving_workers_load_neither_alembic_nor_pillow(tmp_path: Path) -> None:
    """Migrations and uploads load them where they run: a worker serving pages, /readyz
    included, stays without them and the memory they take (docs/performance.md, from
    ``python -m bench.in_process --imports``)."""
    make_app(tmp_path)  # the database, migrated here rather than in the worker below
    code = f"""
import sys
from flaskr import create_app
app = create_app({{"SECRET_KEY": "s-9f86d081884c7d65a2f0e3b1c4d7e6f8", "DATABASE_URL": "sqlite:///{tmp_path}/test.sqlite"}})
for path in ("/", "/1", "/?q=test", "/feed.atom", "/readyz", "/1/image"):
    app.test_client().get(path)
print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"alembic", "flask_migrate", "PIL"}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_async_views_still_get_flasks_answer(app, client) -> None:
    """Plain views and hooks skip Flask's async check; an async one still reaches Flask,
    which says what it needs (asgiref, not installed here) instead of running it wrongly."""

    async def later() -> str:
        return "later"

    def now() -> str:
        return "now"

    assert app.ensure_sync(now) is now
    assert app.ensure_sync(app.make_response) == app.make_response  # a bound method
    with pytest.raises(RuntimeError, match="async"):
        app.ensure_sync(later)
    app.add_url_rule("/now", view_func=now)
    assert client.get("/now").text == "now"


#: What each app keeps between requests, each made by create_app and bounded by a setting.
CACHES = ("flaskr.pages", "flaskr.cookies", "flaskr.links", "flaskr.posts")


def test_each_app_starts_with_empty_caches_of_its_own(tmp_path: Path) -> None:
    """A worker's app, or a test's, never sees what another app in the process kept."""
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = make_app(tmp_path / "first")
    client = first.test_client()
    client.get("/")  # a visitor: the page is kept
    AuthActions(client).login()
    client.get("/")  # logged in: the cookie, the links and the listed post are kept
    assert all(len(first.extensions[name]) for name in CACHES)
    second = make_app(tmp_path / "second")
    assert not any(len(second.extensions[name]) for name in CACHES)


def test_caches_of_no_bytes_keep_nothing_and_pages_stay_the_same(tmp_path: Path) -> None:
    app = make_app(tmp_path, COOKIE_CACHE_BYTES=0, URL_CACHE_BYTES=0, POST_CACHE_BYTES=0)
    client = app.test_client()
    AuthActions(client).login()
    for _ in range(2):
        page = client.get("/").get_data(as_text=True)
        assert "Log Out" in page and 'href="/1/update"' in page and "test title" in page
    assert not any(len(app.extensions[name]) for name in CACHES[1:])
