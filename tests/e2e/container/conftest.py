"""The container suite's engines, each with its image and its site, for the whole package; the
stages change them in the order the package's docstring states and tests/e2e/scenario.py
enforces, one engine (a lane) after the other."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import scenario
from tests.e2e.container.helpers import Post, Site, start_site
from toolkit.containers import Engine, HiddenPython
from toolkit.docker import DockerDaemon, Registry
from toolkit.images import png
from toolkit.packages import SUITES, need
from toolkit.ports import free_port
from toolkit.visitors import Visitor
from toolkit.wait import wait_for_http

PACKAGE = Path(__file__).resolve().parent


#: The stated order (see __init__.py), kept by tests/e2e/scenario.py.
pytest_itemcollected, pytest_deselected, pytest_collection_modifyitems = scenario.hooks(
    PACKAGE, lambda item: item.callspec.params["engine"]
)


@pytest.fixture(scope="package", autouse=True)
def suite_packages() -> None:
    """tests/e2e/conftest.py's, for the package: its packages (SUITES["test_container"], the
    suite's name before it was split into stages), installed before the first engine starts."""
    need(*SUITES["test_container"])


@pytest.fixture(scope="package", params=["podman", "docker"])
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    docker: DockerDaemon | None = None
    if request.param == "docker":
        docker = request.getfixturevalue("docker_daemon")
    ns = HiddenPython()
    secret_dir = tmp_path_factory.mktemp("container-secret")
    runner = Engine(request.param, ns, secret_dir / "keys" / "flaskr_secret_key", docker)
    try:
        runner.ensure_base_image()
        yield runner
    finally:
        try:
            runner.cleanup()
        finally:
            ns.stop()


@pytest.fixture(scope="package")
def image(engine: Engine) -> str:
    started = time.monotonic()
    engine.script("build", timeout=900)
    print(f"{engine.kind}: scripts/container build in {time.monotonic() - started:.1f}s")
    return engine.image


@pytest.fixture(scope="package")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry to ship images through, as a CI pipeline pushes and a server pulls."""
    served = Registry(tmp_path_factory.mktemp("registry"), free_port())
    try:
        wait_for_http(f"http://{served.address}/v2/", timeout=30)
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="package")
def site(engine: Engine, image: str) -> Iterator[Site]:
    deployed = start_site(engine, f"{engine.prefix}-web", f"{engine.prefix}-data")
    yield deployed
    engine.remove_container(deployed.name)


@pytest.fixture(scope="package")
def post(site: Site) -> Post:
    """A person's whole flow: register, log in, create a post with an image and tags."""
    browser = Visitor(site.base)
    suffix = uuid.uuid4().hex[:8]
    username, password = f"ada{suffix}", f"correct horse {suffix}"
    registered = browser.post_form("/auth/register", {"username": username, "password": password})
    assert registered.status_code == 302, registered.text[:2000]
    assert registered.headers["Location"].endswith("/auth/login")
    logged_in = browser.post_form("/auth/login", {"username": username, "password": password})
    assert logged_in.status_code == 302, logged_in.text[:2000]
    title, tag = f"Shipped in a container {suffix}", f"e2e{suffix}"
    created = browser.post_multipart(
        "/create",
        {
            "title": title,
            "body": "Built from the *unchanged* Dockerfile.",
            "tags": f"{tag}, container",
        },
        {"image": ("dot.png", "image/png", png((200, 40, 90), (40, 30)))},
    )
    assert created.status_code == 302, created.text[:2000]
    tagged = browser.get(f"/tag/{tag}")
    assert tagged.status_code == 200
    ids = set(re.findall(r'href="/(\d+)"', tagged.text))
    assert len(ids) == 1, ids
    return Post(username, password, title, tag, int(ids.pop()), (40, 30), browser)
