"""Lighthouse (toolkit/lighthouse.py, the version pinned in toolkit/lighthouse-npm/) scores
100 in performance, accessibility, best practices and SEO on the pages people come to first:
the index, a post with its picture, the login form, and, logged in, the index and the form for
a new post. The site is served as a host serves it: gunicorn behind nginx with the project's
site (deploy/nginx/flaskr.conf, https as install-host --tls-cert sets it up), with a
certificate of the suite's own CA, which the audited Chromium trusts as a browser trusts a
public one. A score under 100 fails with the audits that cost it (id, title, score, value)."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from toolkit import lighthouse
from toolkit.browser import picture
from toolkit.nginx import SiteNginx
from toolkit.ports import free_port
from toolkit.servers import app_env, init_db, serve
from toolkit.tls import issue, make_ca
from toolkit.visitors import Visitor

pytestmark = pytest.mark.e2e

BODY = """An afternoon by the water, written down before it fades.

The tide was out, so we walked **far** along the sand, past the rocks and the old pier,
to the point where the bay opens. Notes for next time:

- take the early train: the beach is empty until ten;
- bring water, there is nothing to buy past the harbour;
- the café by the station does a [good lunch](https://example.com/cafe).

> The sea does not reward those who are too anxious.
"""


@dataclass
class Served:
    base: str
    #: A home folder whose NSS store trusts the suite's CA (Chromium's trust store on Linux).
    home: Path
    #: The writer's session, as their browser would send it.
    cookie: str
    post: int
    cli: Path
    reports: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    started = time.monotonic()
    work = tmp_path_factory.mktemp("lighthouse")
    cli = lighthouse.install()
    print(f"npm ci (or its cache): {time.monotonic() - started:.1f} s")
    ca = make_ca(work / "ca", "lighthouse e2e CA")
    cert, key = issue(ca, "site", ["localhost"])
    tls = work / "tls"  # where install-host --tls-cert keeps them, as it names them
    tls.mkdir()
    shutil.copy(cert, tls / "flaskr.crt")
    shutil.copy(key, tls / "flaskr.key")
    port = free_port()
    base = f"https://localhost:{port}"
    # FLASKR_SITE_URL: pages name their canonical address, which Lighthouse checks too.
    env = app_env(work / "instance", FLASKR_PROXY_FIX="1", FLASKR_SITE_URL=base)
    init_db(env)
    with contextlib.ExitStack() as stack:
        gunicorn = stack.enter_context(serve(env, work / "gunicorn.log"))
        nginx = SiteNginx(gunicorn.port, micro_cache=False, tls_dir=tls, tls_port=port)
        stack.callback(nginx.cleanup)
        nginx.start()
        session = requests.Session()
        session.verify = str(ca)
        # REQUESTS_CA_BUNDLE in the environment would win over session.verify (requests
        # reads it for every request that names no verify of its own).
        session.trust_env = False
        # Over https, the form check wants a Referer from the site, as a browser sends it. The
        # site passes nginx's $host, which has no port (install-host's site is on 443), so the
        # app sees https://localhost: the Referer names that.
        session.headers["Referer"] = "https://localhost/"
        writer = Visitor(base, session)
        writer.register_and_login("lighthouse", "a long enough password")
        writer.create_post("Notes on a slow week", "Nothing much happened.", tags="notes")
        writer.create_post("A day at the sea", BODY, tags="travel, photos", image=picture())
        writer.create_post("The view from the hill", "Up early.", image=picture((900, 1200)))
        cookie = writer.cookie_header()
        yield Served(
            base,
            lighthouse.trusting_home(work / "home", ca),
            cookie,
            writer.post_id("A day at the sea"),
            cli,
            work / "reports",
        )


PAGES = [
    ("index", "/", False),
    ("post", "/{post}", False),
    ("login", "/auth/login", False),
    ("new-post", "/create", True),
    ("writers-index", "/", True),
]


@pytest.mark.parametrize(("name", "path", "logged_in"), PAGES, ids=[p[0] for p in PAGES])
def test_lighthouse_scores_100(served: Served, name: str, path: str, logged_in: bool) -> None:
    url = served.base + path.format(post=served.post)
    reports = lighthouse.audit_settled(
        served.cli,
        url,
        served.home,
        served.reports / f"{name}.json",
        extra_headers={"Cookie": served.cookie} if logged_in else None,
    )
    for report in reports:
        print(f"{report.explain()}\n  ({report.seconds:.1f} s)")
    first = reports[0]
    # The page itself was audited, as the visitor meant: not a redirect to the login form,
    # not an error page, and logged in (its links include Log Out) exactly when meant to be.
    assert first.final_url == url, first.final_url
    assert first.status == 200, first.status
    logout = served.base + "/auth/logout"
    assert (logout in first.links) == logged_in, first.links
    assert lighthouse.settled(reports), "\n".join(r.explain() for r in reports)
