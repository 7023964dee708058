"""flaskr.isolation.dependencies: requirements read, packages missing, nothing on PATH."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flaskr.isolation import formatting
from flaskr.isolation.dependencies import MAIN_PACKAGES, dependencies


def test_dependencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment\n\nflask==3.1.3 \\\n    --hash=sha256:ab\n"
        "Psycopg[binary]==3.3.9 ; python_version >= '3.11'\nno-such-package-here==1\n"
    )
    deps = dependencies(requirements)
    assert list(deps["packages"]) == ["flask", "psycopg", "no-such-package-here"]
    assert deps["packages"]["flask"] and deps["packages"]["no-such-package-here"] is None
    assert deps["reasons"]["packages.no-such-package-here"] == "not installed"
    assert deps["packages_source"] == str(requirements)
    deps = dependencies(tmp_path / "missing.txt")
    assert list(deps["packages"]) == MAIN_PACKAGES
    assert deps["in_venv"] == (sys.prefix != sys.base_prefix)
    monkeypatch.setenv("PATH", str(tmp_path))
    deps = dependencies()
    assert deps["on_path"]["python"] is None and deps["on_path"]["pip"] is None
    rows = dict(formatting.summary_rows({"dependencies": deps}))
    assert rows["python on PATH"] == "not found"
    assert rows["pip on PATH"] == "not found"
    monkeypatch.setattr(sys, "executable", "")
    assert dependencies()["executable_realpath"] is None
