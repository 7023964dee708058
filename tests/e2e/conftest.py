"""The end-to-end suites' hooks and shared fixtures: every test here is marked ``e2e``, and
the Docker suites share one dockerd. What the suites import is in tests/e2e/harness/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.container_docker import DockerDaemon
from tests.e2e.container_docker import install_packages as install_docker
from tests.e2e.harness.packages import apt_install


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """The suite's own dockerd (see tests/e2e/container_docker.py), for the whole session."""
    install_docker(apt_install)
    daemon = DockerDaemon()
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
