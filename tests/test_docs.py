"""The guides name commands that exist: a renamed subcommand, flag or flask command, or a
placeholder left in, fails here rather than in a user's terminal."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from flaskr import create_app
from flaskr.config import SETTINGS
from flaskr.settings_table import settings_table, with_settings_table
from toolkit.apps import config_for
from toolkit.recipes import RECIPE_GUIDES, commands, recipes
from toolkit.recipes import test_name as recipe_test_name

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


#: Commands that need root on a host: shown without sudo, they fail with "access denied" or
#: show less (journalctl shows a user's own journal only).
ROOT_ONLY = re.compile(
    r"(?:systemctl (?:start|stop|restart|reload|edit|daemon-reload)\b|journalctl\b"
    r"|apt-get install\b|(?:\./)?scripts/install-host\b|nginx -t\b|certbot\b|flaskr [a-z])"
)


def shell_commands() -> list[str]:
    """The commands in the guides' shell blocks (fenced ```sh ones and indented ones), one per
    `&&`, `;` or `|`, without leading VAR=value; blocks opening with "# as root" are skipped."""
    commands = []
    for path in GUIDES:
        fenced = skipped = False
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                fenced = line.strip() in ("```sh", "```bash") and not fenced
                skipped = False
                continue
            skipped = skipped or (fenced and line.startswith("# as root"))
            if (fenced and not skipped) or line.startswith("    ") and line[4:5] not in "-|":
                for part in re.split(r"&&|\|\||;|\|", line.split(" #", 1)[0]):
                    command = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", part.strip())
                    commands.append(f"{path.name}: {command}")
    return commands


def test_root_only_commands_in_shell_blocks_have_sudo() -> None:
    missing = [c for c in shell_commands() if ROOT_ONLY.match(c.split(": ", 1)[1])]
    assert not missing, "\n".join(missing)
    assert "deploy-host.md: sudo flaskr create-user admin" in shell_commands()


def test_git_ignores_the_compose_backups() -> None:
    # They hold password hashes: `git add -A` must not pick them up.
    assert "deploy/backups/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.parametrize("guide", ["README.md", "docs/security.md"])
def test_the_settings_tables_are_the_declarations(guide: str) -> None:
    """Each setting is declared once (flaskr/config.py); its guide's table is rendered from it."""
    text = (ROOT / guide).read_text()
    assert text == with_settings_table(text, guide), f"run scripts/settings-table: {guide}"


def test_every_setting_is_in_a_table_that_scripts_settings_table_rewrites() -> None:
    rewritten = re.findall(
        r"^for guide in (.*); do$", (ROOT / "scripts/settings-table").read_text(), re.M
    )
    assert {setting.guide for setting in SETTINGS} == set(rewritten[0].split())
    readme = settings_table("README.md")
    assert "| `FLASKR_SECRET_KEY` | none |" in readme
    # Read by gunicorn before instance/config.py: the table says to set it in the environment.
    assert "| `FLASKR_LOG_FORMAT` (environment only) | `json` |" in readme


#: Recipes no test can run on these machines, each with the reason.
RECIPES_NOT_RUN = {
    ("docs/scale-out.md", "Kubernetes", 0): "no Kubernetes runs here; test_manifests.py "
    "validates the manifests the recipe applies",
}


def recipe_calls(function: ast.FunctionDef) -> set[tuple[str, str, int]]:
    """The (guide, section, block) of each ``recipe(...)`` call with literal arguments."""
    calls = set()
    for node in ast.walk(function):
        if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "recipe"):
            continue
        values = [a.value for a in node.args if isinstance(a, ast.Constant)]
        values += [
            k.value.value
            for k in node.keywords
            if k.arg == "block" and isinstance(k.value, ast.Constant)
        ]
        if len(values) >= 2:
            calls.add((values[0], values[1], values[2] if len(values) > 2 else 0))
    return calls


def e2e_tests() -> dict[str, set[tuple[str, str, int]]]:
    """Every end-to-end test function's name, with the recipes it runs."""
    found: dict[str, set[tuple[str, str, int]]] = {}
    for path in sorted((ROOT / "tests/e2e").rglob("test_*.py")):  # the scenarios' stages too
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                found[node.name] = recipe_calls(node)
    return found


def test_every_recipe_in_the_guides_is_run_by_a_test_named_after_its_section() -> None:
    tests = e2e_tests()
    missing = []
    for guide in RECIPE_GUIDES:
        for found in recipes(guide):
            key = (found.guide, found.section, found.block)
            if key in RECIPES_NOT_RUN:
                continue
            prefix = recipe_test_name(found.guide, found.section)
            if not any(
                (name == prefix or name.startswith(prefix + "_")) and key in calls
                for name, calls in tests.items()
            ):
                missing.append(f"{prefix} (recipe {found.block}: {found.lines[0]!r})")
    assert not missing, "recipes no e2e test runs:\n" + "\n".join(missing)


def test_the_recipe_reader_sees_every_block(tmp_path: Path) -> None:
    for guide in RECIPE_GUIDES:
        fenced = len(re.findall(r"^\s*```sh\s*$", (ROOT / guide).read_text(), re.M))
        assert len(recipes(guide)) == fenced, guide
    assert commands(["a \\", "  b  # note", "# only a comment", "", "echo '#x' # y"]) == [
        "a b",
        "echo '#x'",
    ]


#: A test cited in a guide: `a.py::x`, then `::y` for the same file in the sentence that follows.
CITED = re.compile(r"((?:\w+/)*test_\w+\.py)((?:::\w+[`,\s]*(?:and\s*)?`?)+)")


def test_the_tests_the_guides_name_exist() -> None:
    """A test renamed or removed leaves no guide pointing at it (``file.py::name``, or with the
    file's folders: ``host/test_1_install.py::name``, ``tests/e2e/host/...``)."""
    functions: dict[str, set[str]] = {}
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        parts = path.relative_to(ROOT).parts
        for start in range(len(parts)):
            functions.setdefault("/".join(parts[start:]), set()).update(names)
    missing = []
    for path in GUIDES:
        for match in CITED.finditer(path.read_text()):
            for name in re.findall(r"::(\w+)", match.group(2)):
                known = functions.get(match.group(1), set())
                if not any(f == name or f.startswith(name) for f in known):
                    missing.append(f"{path.name}: {match.group(1)}::{name}")
    assert not missing, "guides name tests that do not exist:\n" + "\n".join(missing)
