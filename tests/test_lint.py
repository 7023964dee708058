"""The lint step covers every program, whatever its name ends with."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Folders that hold no program of ours: made by tools, or another project's.
NOT_OURS = {".git", ".venv", "build", "dist", "instance", "node_modules", "__pycache__"}


def programs_without_an_extension(folder: Path = ROOT) -> Iterator[Path]:
    """Files (no symbolic links) with no suffix whose first line runs Python; no git needed:
    the suite also runs in a bare checkout copy (test_pythons.py)."""
    for path in folder.iterdir():
        if path.is_symlink() or path.name in NOT_OURS or path.name.endswith("_cache"):
            continue
        if path.is_dir():
            yield from programs_without_an_extension(path)
        elif not path.suffix and "python" in first_line(path) and first_line(path)[:2] == "#!":
            yield path


def first_line(path: Path) -> str:
    with path.open("rb") as file:
        return file.readline().decode(errors="replace").strip()


def test_every_python_program_without_an_extension_is_linted() -> None:
    """Ruff finds *.py by itself; a program systemd runs by name must be listed for it."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = set(settings["tool"]["ruff"]["extend-include"])
    programs = {str(path.relative_to(ROOT)) for path in programs_without_an_extension()}
    assert programs, "no Python program without an extension found: is ROOT the checkout?"
    assert programs <= included, f"add to [tool.ruff] extend-include: {programs - included}"
