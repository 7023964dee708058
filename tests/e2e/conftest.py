"""The end-to-end suites' hooks and shared fixtures: every test here is marked ``e2e``, each
suite's Debian packages are installed before its first test (toolkit/packages.py lists them),
the Docker suites share one dockerd, and the browser suites (test_browser.py,
test_passkeys.py) their server and Chromium. What the suites import is in toolkit/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright, sync_playwright

from toolkit.browser import ConsoleWatch, Site, chromium, screenshot_dir
from toolkit.docker import DockerDaemon
from toolkit.packages import SUITES, need
from toolkit.postgres import Postgres, postgres
from toolkit.servers import app_env, init_db, serve


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module", autouse=True)
def suite_packages(request: pytest.FixtureRequest) -> None:
    """What SUITES lists for this suite, installed when missing, whatever ran before it."""
    suite = Path(request.path).stem
    if suite not in SUITES:
        pytest.fail(f"{suite} is not in toolkit/packages.py's SUITES")
    need(*SUITES[suite])


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """The suite's own dockerd (see toolkit/docker.py), for the whole session."""
    daemon = DockerDaemon()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


# The browser suites': a server per test, and Chromium pages whose consoles are watched.


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    need("chromium")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A PostgreSQL cluster for a module's tests on PostgreSQL (each uses it once)."""
    with postgres() as cluster:
        yield cluster


@pytest.fixture
def database(request: pytest.FixtureRequest) -> dict[str, str]:
    """The setting that picks a test's database: none, SQLite; or, for a test parametrized
    with ``database`` "postgresql" (indirect), the module's PostgreSQL."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return {}
    return {"FLASKR_DATABASE_URL": request.getfixturevalue("pg").url}


@pytest.fixture
def site(tmp_path: Path, database: dict[str, str]) -> Iterator[Site]:
    """A new database and gunicorn as the README runs it, on a free loopback port (its log:
    ``tmp_path / "gunicorn.log"``); SQLite, unless ``database`` says otherwise."""
    env = app_env(tmp_path / "instance", keep_database_url=not database, **database)
    init_db(env)
    # timeout: three workers booting on a busy CI box
    with serve(env, tmp_path / "gunicorn.log", ready="/hello", timeout=90) as server:
        yield Site(server.base, env)


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("screenshots", numbered=False))


@pytest.fixture
def watch() -> Iterator[list[ConsoleWatch]]:
    """The console watches of the test's pages: any problem they saw fails the test."""
    watches: list[ConsoleWatch] = []
    yield watches
    problems = [p for w in watches for p in w.problems]
    assert not problems, "the browser reported problems:\n" + "\n".join(problems)


@pytest.fixture
def open_page(playwright: Playwright, tmp_path: Path, watch: list[ConsoleWatch]):
    """``with open_page(**context_options) as (page, console):`` a fresh Chromium."""
    count = 0

    @contextmanager
    def opener(**options) -> Iterator[tuple[Page, ConsoleWatch]]:
        nonlocal count
        count += 1
        with chromium(playwright, tmp_path / f"profile-{count}", **options) as page:
            console = ConsoleWatch(page)
            watch.append(console)
            yield page, console

    return opener
