"""The guides name commands that exist: a renamed subcommand, flag or flask command, or a
placeholder left in, fails here rather than in a user's terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flaskr import create_app
from tests.conftest import config_for

ROOT = Path(__file__).resolve().parent.parent
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Words the guides use in place of a command's name.
PLACEHOLDERS = {"COMMAND", "CMD", "…", "...", "--help"}


def guides() -> str:
    return "\n".join(path.read_text() for path in GUIDES)


def test_no_placeholder_for_where_the_code_comes_from() -> None:
    assert "OWNER" not in guides()


def test_commands_that_fail_as_written_are_gone() -> None:
    text = guides()
    # ufw's 'Nginx Full' profile exists only once nginx is installed: step 1 opens ports.
    assert "ufw allow 'Nginx Full'" not in text
    # Debian's docker-compose 1.29 rejects deploy/compose.yaml: commands use Compose v2.
    assert not re.search(r"^\s*docker-compose\s", text, re.M)


def test_scripts_container_subcommands_exist() -> None:
    script = (ROOT / "scripts/container").read_text()
    known = set()
    for names in re.findall(r"^  ([a-z|\- ]+)\)", script[script.index("main() {") :], re.M):
        known |= {name.strip() for name in names.split("|")}
    used = set(re.findall(r"scripts/container ([a-z][a-z-]*)", guides()))
    assert used and used <= known, used - known


def test_install_host_flags_exist() -> None:
    script = (ROOT / "scripts/install-host").read_text()
    known = set(re.findall(r"^\s+(--[a-z-]+)[)=]", script, re.M))
    used = set(re.findall(r"install-host (--[a-z-]+)", guides()))
    assert {"--rollback", "--server-name"} <= used and used <= known, used - known


@pytest.mark.parametrize(
    "pattern",
    [
        r"sudo flaskr (\S+)",
        r"scripts/container flask (\S+)",
        r"flask --app flaskr (?:--debug )?(\S+)",
    ],
)
def test_flask_commands_in_the_guides_exist(tmp_path: Path, pattern: str) -> None:
    app = create_app(config_for(tmp_path))
    known = set(app.cli.commands) | {"run", "shell", "routes", "db"}
    used = {word.strip("`'\".,;:)") for word in re.findall(pattern, guides())} - PLACEHOLDERS
    assert used and used <= known, used - known
