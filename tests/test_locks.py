"""pyproject.toml and the two locks agree: a dependency or version in one and not the other
fails here in a second, before a fresh clone or an image build meets it (scripts/lock fixes it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked(name: str) -> dict[str, dict]:
    """Each pin of a lock: its version, its hashes and the requirements it is there for."""
    pins: dict[str, dict] = {}
    current: dict | None = None
    for line in (ROOT / name).read_text().splitlines():
        if match := PIN.match(line):
            current = {"version": match[2], "hashes": set(), "via": set()}
            pins[canonicalize_name(match[1])] = current
        elif current is not None and "--hash=" in line:
            current["hashes"].add(line.split("--hash=")[1].rstrip(" \\"))
        elif current is not None and line.strip().startswith("#"):
            current["via"].add(line.strip("# ").removeprefix("via").strip())
    return pins


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def exact(requirement: Requirement) -> str:
    (spec,) = requirement.specifier
    assert spec.operator == "==", f"{requirement} is not pinned with == in pyproject.toml"
    return spec.version


def test_every_dependency_is_locked_at_its_version() -> None:
    lock = locked("requirements.txt")
    for line in project()["project"]["dependencies"]:
        requirement = Requirement(line)
        pin = lock.get(canonicalize_name(requirement.name))
        assert pin, f"{requirement.name} is in pyproject.toml but not in requirements.txt"
        assert pin["version"] == exact(requirement), f"{requirement.name}: run ./scripts/lock"
        assert pin["hashes"], f"{requirement.name} has no hashes in requirements.txt"


def test_nothing_is_locked_for_a_dependency_that_is_gone() -> None:
    declared = {
        canonicalize_name(Requirement(d).name) for d in project()["project"]["dependencies"]
    }
    for name, pin in locked("requirements.txt").items():
        if "flaskr (pyproject.toml)" in pin["via"]:
            assert name in declared, f"requirements.txt locks {name} for flaskr; pyproject.toml not"
        assert pin["via"], f"{name} is in requirements.txt for no reason"


def test_the_dev_lock_holds_the_app_lock_and_the_dev_list() -> None:
    app, dev = locked("requirements.txt"), locked("requirements-dev.txt")
    for name, pin in app.items():
        assert name in dev, f"{name} is in requirements.txt but not in requirements-dev.txt"
        assert (dev[name]["version"], dev[name]["hashes"]) == (pin["version"], pin["hashes"]), name
    for line in (ROOT / "requirements-dev.in").read_text().splitlines():
        if line.strip() and not line.startswith(("#", "-")):
            requirement = Requirement(line)
            pin = dev.get(canonicalize_name(requirement.name))
            assert pin and pin["version"] == exact(requirement), f"{line}: run ./scripts/lock"


def test_the_locked_build_backend_builds_the_project() -> None:
    (backend,) = (Requirement(r) for r in project()["build-system"]["requires"])
    pin = locked("requirements-dev.txt")[canonicalize_name(backend.name)]
    assert backend.specifier.contains(pin["version"]), f"{backend} vs locked {pin['version']}"
