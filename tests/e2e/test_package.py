"""flaskr as an installable project, the way the Flask tutorial's "Make the Project Installable"
and "Deploy to Production" chapters use it: a wheel built from pyproject.toml, installed into a
clean venv in another folder with no checkout on the path, then `flask --app flaskr init-db` and
gunicorn serving `flaskr:create_app()`. Also: the locks install exactly as written on any day,
and every pin has the musllinux wheels the Dockerfile's Alpine base image needs."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from toolkit import ROOT
from toolkit.images import png
from toolkit.servers import serve
from toolkit.visitors import Visitor

PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input"]


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    result = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def clean_env(**extra: str) -> dict[str, str]:
    """No FLASKR_* settings and no PYTHONPATH leaking in from the test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASKR_", "PYTHON"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build --wheel` with the locked build backend (setuptools, no isolation), while
    the README's socket command has left `flaskr.sock` in the package folder."""
    out = tmp_path_factory.mktemp("dist")
    sock = ROOT / "flaskr" / "flaskr.sock"
    with socket.socket(socket.AF_UNIX) as listener:
        made = not sock.exists()
        if made:
            listener.bind(str(sock))
        try:
            run(
                sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", out, ".", cwd=ROOT
            )
        finally:
            if made:
                sock.unlink()
    (built,) = out.glob("flaskr-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean venv outside the checkout with the app's lock installed as the docs install it."""
    path = tmp_path_factory.mktemp("site") / "venv"
    run(sys.executable, "-m", "venv", path, cwd=path.parent)
    run(path / "bin/python", *PIP, "install", "--quiet", "--no-deps", "--require-hashes",
        "-r", ROOT / "requirements.txt", cwd=path.parent)  # fmt: skip
    return path


def test_wheel_holds_exactly_the_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"flaskr", "flaskr-1.0.0.dist-info"}, tops
    for expected in (
        "flaskr/hello.py",
        "flaskr/backup/restore.py",
        "flaskr/isolation/__main__.py",
        "flaskr/isolation/views.py",
        "flaskr/templates/base.html",
        "flaskr/templates/blog/index.html",
        "flaskr/static/style.css",
        "flaskr/static/passkeys.js",
        "flaskr/migrations/alembic.ini",
        "flaskr/migrations/env.py",
        "flaskr/migrations/versions/0001_tutorial.py",
        "flaskr/gunicorn.conf.py",
        "flaskr/serving/hooks.py",
        "flaskr/serving/worker_name.py",
    ):
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert not any("__pycache__" in n or n.endswith((".pyc", ".sock")) for n in names)


def test_installed_wheel_inits_and_serves_outside_the_checkout(wheel: Path, venv: Path) -> None:
    """The tutorial's deploy chapter: install the wheel, init-db, serve with a WSGI server."""
    site = venv.parent
    run(venv / "bin/python", *PIP, "install", "--quiet", "--no-deps", wheel, cwd=site)
    run(venv / "bin/python", *PIP, "check", cwd=site)
    env = clean_env(FLASKR_SECRET_KEY=secrets.token_hex(32))
    where = run(
        venv / "bin/python", "-c", "import flaskr; print(flaskr.__file__)", cwd=site, env=env
    )
    assert where.stdout.strip().startswith(str(venv)), where.stdout

    out = run(venv / "bin/flask", "--app", "flaskr", "init-db", cwd=site, env=env)
    assert "Initialized the database." in out.stdout + out.stderr
    # An installed package's instance folder is the tutorial's: <venv>/var/flaskr-instance.
    assert (venv / "var/flaskr-instance/flaskr.sqlite").is_file()

    with serve(
        env, site / "gunicorn.log", timeout=60, flags=["--workers", "2"],
        app_dir=site, app="flaskr:create_app()", bin_dir=venv / "bin",
    ) as server:  # fmt: skip
        visitor = Visitor(server.base)
        assert visitor.get("/static/style.css").status_code == 200
        visitor.register_and_login("wheel", "installed from a wheel")
        visitor.create_post("From the wheel", "Served from *site-packages*", "", png())
        page = visitor.get(f"/{visitor.post_id('From the wheel')}").text
        assert "<em>site-packages</em>" in page
        assert visitor.get("/readyz").status_code == 200  # migrations found inside the wheel


def test_editable_install_for_development(venv: Path) -> None:
    """`pip install -e .`, as the tutorial does for development: the checkout is what runs."""
    site = venv.parent
    run(venv / "bin/python", *PIP, "install", "--quiet", "--no-deps", "-e", ROOT, cwd=site)
    env = clean_env()
    where = run(
        venv / "bin/python", "-c", "import flaskr; print(flaskr.__file__)", cwd=site, env=env
    )
    assert where.stdout.strip() == str(ROOT / "flaskr/__init__.py")
    out = run(venv / "bin/flask", "--app", "flaskr", "routes", cwd=site, env=env)
    assert "blog.index" in out.stdout


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_every_pin_has_a_musllinux_wheel_for_the_alpine_image(machine: str, tmp_path: Path) -> None:
    """The Dockerfile's python:3.12.4-alpine3.20 has no compiler and the Dockerfile no apk step: each
    pin must come as a wheel for CPython 3.12 on musl, on both architectures."""
    run(sys.executable, *PIP, "download", "--quiet", "--only-binary=:all:", "--no-deps",
        "--platform", f"musllinux_1_2_{machine}", "--python-version", "3.12",
        "--implementation", "cp", "--abi", "cp312", "--require-hashes",
        "-r", ROOT / "requirements.txt", "-d", tmp_path, cwd=tmp_path)  # fmt: skip
    assert len(list(tmp_path.glob("*.whl"))) >= 20
