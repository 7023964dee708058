"""The Pythons around the image's: it runs CPython 3.12, this machine 3.11, and Debian 13
("trixie") 3.13. A trixie root filesystem made by mmdebstrap runs the unit suite on 3.13 with the
dev lock installed as scripts/lib/venv.sh installs it, and, imported as a stand-in base, builds
and serves the unchanged Dockerfile; so 3.12 is bracketed from both sides."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from toolkit import ROOT, debian
from toolkit.containers import PYTHON_IMAGE_CHANGES, Engine, HiddenPython
from toolkit.ports import free_port
from toolkit.visitors import Visitor
from toolkit.wait import wait_for_http

SUITE = "trixie"
STAND_IN = f"localhost/flaskr-e2e-stand-in:{SUITE}"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def tarball() -> Path:
    return debian.rootfs(f"python-{SUITE}")


@pytest.fixture
def rootfs(tarball: Path) -> Iterator[Path]:
    """The root filesystem unpacked (with its device nodes) in a folder removed afterwards."""
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="flaskr-trixie-") as tmp:  # noqa: S108
        root = Path(tmp) / "root"
        root.mkdir()
        subprocess.run(["tar", "-xf", tarball, "-C", root, "--numeric-owner"], check=True)
        yield root


def copy_tree(dest: Path) -> None:
    """The checkout as a clone has it: no venv, caches or instance data."""
    ignore = shutil.ignore_patterns(
        ".git",
        ".venv",
        "instance",
        "__pycache__",
        "*.pyc",
        ".*_cache",
        "out",
        "*.sock",
        "build",
        "dist",
        "*.egg-info",
    )
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)


def test_unit_suite_passes_on_python_3_13(rootfs: Path) -> None:
    copy_tree(rootfs / "src")
    # The host's CA bundle (a TLS-inspecting proxy's CA among them) and resolver, for pip only.
    if CA_BUNDLE.exists():
        shutil.copy(CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    inside = "\n".join(
        [
            "set -eu",
            "python3 --version",
            "python3 -m venv /venv",
            "/venv/bin/pip install --quiet --no-deps --require-hashes -r /src/requirements-dev.txt",
            "/venv/bin/pip check",
            "cd /src",
            # As scripts/test runs it, a process per core (pytest-xdist, in the dev lock).
            "exec /venv/bin/python -m pytest -m 'not e2e' -q -p no:cacheprovider -n auto",
        ]
    )
    # A PID and mount namespace of its own: /proc inside shows only the suite's processes, and
    # every mount disappears with the namespace.
    outside = (
        f"mount -t proc proc {rootfs}/proc && mount -t tmpfs tmpfs {rootfs}/tmp && "
        f'mount -t tmpfs tmpfs {rootfs}/dev/shm && exec chroot {rootfs} /bin/sh -c "$0"'
    )
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_CERT": str(CA_BUNDLE),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    done = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "sh", "-c", outside, inside],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    out = done.stdout + done.stderr
    print(out[-1500:])
    assert done.returncode == 0, out[-5000:]
    assert "Python 3.13." in out
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "skipped" not in summary, summary


def test_dockerfile_builds_and_serves_on_a_trixie_stand_in(tarball: Path, tmp_path: Path) -> None:
    """The unchanged Dockerfile, with FROM replaced by the trixie stand-in (`build --from`)."""
    ns = HiddenPython()
    prefix = f"flaskr-e2e-{SUITE}-{uuid.uuid4().hex[:8]}"
    runner = Engine("podman", ns, tmp_path / "keys" / "flaskr_secret_key", prefix=prefix)
    try:
        if runner.script("engine", "image", "exists", STAND_IN, check=False).returncode != 0:
            runner.cli("import", *PYTHON_IMAGE_CHANGES, str(tarball), STAND_IN, timeout=600)
        runner.script("build", "--from", STAND_IN, timeout=900)
        port = free_port()
        name = f"{runner.prefix}-web"
        runner.script("run", **runner.container_settings(name, f"{runner.prefix}-data", port))
        base = f"http://127.0.0.1:{port}"
        wait_for_http(base + "/healthz", timeout=90)
        version = runner.exec(name, "python", "--version").stdout
        assert version.startswith("Python 3.13."), version
        browser = Visitor(base)
        account = {"username": "trixie", "password": f"three thirteen {os.getpid()}"}
        assert browser.post_form("/auth/register", account).status_code == 302
        assert browser.post_form("/auth/login", account).status_code == 302
        created = browser.post_form("/create", {"title": "On 3.13", "body": "*trixie*"})
        assert created.status_code == 302, created.text[:1000]
        assert "<em>trixie</em>" in browser.get("/").text
    finally:
        try:
            runner.cleanup()
        finally:
            ns.stop()
