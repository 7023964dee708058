"""The tests of flaskr/isolation/, one module for each of its modules, and what they share:
the recorded /proc trees in tests/fixtures/isolation/<case>/ and files written into a test's
own tree."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).parent.parent / "fixtures" / "isolation"


def case(name: str) -> str:
    """The root of a recorded tree, as the ``root`` every reader takes."""
    return str(FIXTURES / name)


def write(root: Path, rel: str, text: str) -> None:
    """Write ``root/rel``, its folders too: one file of a made-up /proc tree."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
