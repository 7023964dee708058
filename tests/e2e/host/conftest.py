"""The host suite's machine, one for the whole package: booted bare, then installed by the
first test of test_1_install.py; every later stage changes it further, in the order the
package's docstring states and tests/e2e/scenario.py enforces."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import scenario
from tests.e2e.host.helpers import SRC, Host
from toolkit import ROOT
from toolkit.debian import rootfs
from toolkit.machines import Machine, copy_checkout, wheelhouse
from toolkit.packages import SUITES, need

PACKAGE = Path(__file__).resolve().parent


#: The stated order (see __init__.py), kept by tests/e2e/scenario.py.
pytest_itemcollected, pytest_deselected, pytest_collection_modifyitems = scenario.hooks(PACKAGE)


@pytest.fixture(scope="package", autouse=True)
def suite_packages() -> None:
    """tests/e2e/conftest.py's, for the package: its packages (SUITES["test_host"], the suite's
    name before it was split into stages), installed before the machine boots."""
    need(*SUITES["test_host"])


@pytest.fixture(scope="package")
def booted(request: pytest.FixtureRequest) -> Iterator[Host]:
    """The bare server, booted: nothing of flaskr's installed yet."""
    if os.geteuid() != 0:
        pytest.fail("the host suite boots a machine with systemd-nspawn: run it as root")
    name = f"flaskr-host-test-{uuid.uuid4().hex[:8]}"
    work = Path("/var/tmp") / name  # noqa: S108 - a unique folder, removed at the end
    src = work / "src"
    wheels = wheelhouse(ROOT / "requirements.txt")
    machine = Machine(name, work / "rootfs", {src: SRC, wheels: "/srv/wheels"}, work / "log")

    def cleanup() -> None:
        machine.kill()
        shutil.rmtree(work, ignore_errors=True)
        atexit.unregister(cleanup)

    def on_sigterm(*_: object) -> None:
        raise KeyboardInterrupt  # pytest stops the session; atexit then cleans up

    # pytest skips fixture teardown on Ctrl-C, and SIGTERM (a cancelled CI job) skips everything:
    # atexit and a SIGTERM handler make sure the machine and its folder go in every case.
    request.addfinalizer(cleanup)
    atexit.register(cleanup)
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    request.addfinalizer(lambda: signal.signal(signal.SIGTERM, previous))
    work.mkdir()
    machine.rootfs.mkdir()
    tarball = rootfs("machine")
    subprocess.run(["tar", "-C", str(machine.rootfs), "-xf", str(tarball)], check=True, timeout=300)
    (machine.rootfs / "etc/hostname").write_text(name + "\n")
    copy_checkout(src / "flaskr")
    machine.boot()
    yield Host(machine, None, src)


@pytest.fixture(scope="package")
def host(booted: Host) -> Host:
    """The server with flaskr installed by the guide's first recipe (the first test,
    test_1_install.py's, installs it; the stated order runs it before any test using this)."""
    if booted.first_install is None:
        pytest.fail("the first install (test_1_install.py's first test) did not succeed")
    return booted


@pytest.fixture(scope="package")
def post(host: Host) -> dict[str, object]:
    """A person's post with an image, made through nginx once and checked again later."""
    return host.machine.client("flow", f"Hello-from-the-host-{uuid.uuid4().hex[:6]}")
