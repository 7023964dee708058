"""The guides' recipes, read from the guides themselves, so that a test runs what a reader types.

A recipe is a fenced ```sh block in one of RECIPE_GUIDES. Each belongs to the section (the
nearest heading above it) it sits in; a test runs it with ``recipe(GUIDE, SECTION, BLOCK)`` and
is named after that section (``test_name(GUIDE, SECTION)``, optionally followed by more words).
tests/test_docs.py checks that every recipe has such a test, so a guide cannot drift from the
code: an edited command is run as edited, and a removed or renamed one fails its test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from toolkit import ROOT

#: The guides an operator follows, command by command.
RECIPE_GUIDES = (
    "docs/deploy-host.md",
    "docs/deploy-container.md",
    "docs/operating.md",
    "docs/backup.md",
    "docs/scale-out.md",
)

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass(frozen=True)
class Recipe:
    """One ```sh block: where it is, and its lines as written (indentation removed)."""

    guide: str
    section: str
    block: int
    lines: tuple[str, ...]


class RecipeError(LookupError):
    """A recipe a test asked for is not in the guide as the test expects: the guide changed."""


def recipes(guide: str) -> list[Recipe]:
    """Every ```sh block of GUIDE (a path from the checkout's root), in order."""
    found: list[Recipe] = []
    section, counts = "", dict[str, int]()
    block: list[str] | None = None
    indent = ""
    for line in (ROOT / guide).read_text().splitlines():
        fence = _FENCE.match(line)
        if block is not None:
            if fence and fence.group(2) == "":
                number = counts.get(section, 0)
                counts[section] = number + 1
                found.append(Recipe(guide, section, number, tuple(block)))
                block = None
            else:
                block.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            continue
        if fence and fence.group(2) == "sh":
            block, indent = [], fence.group(1)
            continue
        heading = _HEADING.match(line)
        if heading:
            section = re.sub(r"`", "", heading.group(2))
    return found


def test_name(guide: str, section: str) -> str:
    """The name a recipe's test starts with: test_<guide>_<section>, in lower case and ``_``."""
    words = re.sub(r"[^a-z0-9]+", "_", f"{Path(guide).stem} {section}".lower()).strip("_")
    return f"test_{words}"


def commands(lines: tuple[str, ...] | list[str]) -> list[str]:
    """The shell commands of a block: continued lines joined, comments and blank lines gone."""
    out: list[str] = []
    pending = ""
    for raw in lines:
        line = _strip_comment(raw).rstrip()
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line = (pending + line.strip()).strip()
        pending = ""
        if line:
            out.append(line)
    if pending.strip():
        out.append(pending.strip())
    return out


def _strip_comment(line: str) -> str:
    """LINE without a ``# comment`` outside quotes (a ``#`` inside a word is kept)."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def recipe(
    guide: str, section: str, block: int = 0, replace: dict[str, str] | None = None
) -> list[str]:
    """The commands of the BLOCK-th recipe in SECTION of GUIDE, with REPLACE's words replaced.

    Every word in REPLACE must occur in the recipe (a placeholder the guide no longer uses is
    a test that no longer tests what it says), and so must the section and the block.
    """
    chosen = [r for r in recipes(guide) if r.section == section]
    if block >= len(chosen):
        raise RecipeError(f"{guide}: no recipe {block} in the section {section!r}")
    text = "\n".join(commands(chosen[block].lines))
    for old, new in (replace or {}).items():
        if old not in text:
            raise RecipeError(f"{guide}, {section!r}: {old!r} is not in the recipe any more")
        text = text.replace(old, new)
    return text.splitlines()
