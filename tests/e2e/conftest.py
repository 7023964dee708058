"""The end-to-end suites' hooks and shared fixtures: every test here is marked ``e2e``, each
suite's Debian packages are installed before its first test (toolkit/packages.py lists them),
and the Docker suites share one dockerd. What the suites import is in toolkit/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit.docker import DockerDaemon
from toolkit.packages import SUITES, need


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
