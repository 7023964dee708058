"""The report's dependencies section: the interpreter, its venv, and the app's package versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

#: Used when no requirements.txt sits beside the package (an installed wheel).
MAIN_PACKAGES = [
    "flask",
    "werkzeug",
    "sqlalchemy",
    "flask-sqlalchemy",
    "alembic",
    "flask-migrate",
    "flask-wtf",
    "gunicorn",
    "pillow",
    "nh3",
    "markdown-it-py",
    "psycopg",
]


#: The lock in the folder that holds the package: a checkout, the image's /, a host install.
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def _which(name: str) -> dict[str, str] | None:
    """Where ``name`` resolves on PATH, and the file behind the symlinks (a venv's python)."""
    found = shutil.which(name)
    return {"path": found, "realpath": os.path.realpath(found)} if found else None


def requirement_names(path: Path) -> list[str]:
    """Distribution names pinned in a requirements file (``name==1.0 \\`` lines)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        for stop in "=<>!~;[ \\":
            line = line.split(stop, 1)[0]
        names.append(line.lower())
    return names


def dependencies(requirements: Path = REQUIREMENTS) -> dict[str, Any]:
    """The interpreter, its venv, python and pip on PATH, and the app's package versions.

    What a container keeps inside: python and pip on its PATH, none on the host's.
    """
    reasons = {}
    if requirements.is_file():
        names, source = requirement_names(requirements), str(requirements)
    else:
        names, source = MAIN_PACKAGES, "built-in list (no requirements.txt beside the package)"
    packages: dict[str, str | None] = {}
    for name in names:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
            reasons[f"packages.{name}"] = "not installed"
    in_venv = sys.prefix != sys.base_prefix
    return {
        "executable": sys.executable,
        "executable_realpath": os.path.realpath(sys.executable) if sys.executable else None,
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "in_venv": in_venv,
        "venv": sys.prefix if in_venv else None,
        "path": os.environ.get("PATH", "").split(os.pathsep),
        "on_path": {name: _which(name) for name in ("python", "python3", "pip", "pip3")},
        "packages": packages,
        "packages_source": source,
        "reasons": reasons,
    }
