"""The lint step covers every program, whatever its name ends with."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name]


def first_line(path: Path) -> str:
    with path.open("rb") as file:
        return file.readline().decode(errors="replace").strip()


def test_every_python_program_without_an_extension_is_linted() -> None:
    """Ruff finds *.py by itself; a program systemd runs by name must be listed for it."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())
    included = set(settings["tool"]["ruff"]["extend-include"])
    programs = {
        str(path.relative_to(ROOT))
        for path in tracked()
        if path.is_file()
        and not path.suffix
        and first_line(path).startswith("#!")
        and "python" in first_line(path)
    }
    assert programs, "no Python program without an extension: is the repository listed?"
    assert programs <= included, f"add to [tool.ruff] extend-include: {programs - included}"
