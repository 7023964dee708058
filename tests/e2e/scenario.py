"""Scenario suites: packages of tests/e2e/ whose tests share one machine (tests/e2e/host/) or
one per container engine (tests/e2e/container/) and change it as they go, in a stated order.

The order, and how it is kept:

- A scenario's files are its stages, named ``test_<n>_<stage>.py`` with n = 1, 2, ... (any
  other test file in the package stops collection). Stages run in the order of n; a stage's
  tests in the order they are written. Where the machine fixture is parametrized (a *lane*:
  the container suite's engine), each lane runs the whole order before the next one starts.
  The package's conftest puts its tests in exactly that order after every other plugin has
  sorted or filtered them, whatever they did.
- A stage needs every stage before it, run whole, unless its file says which ones it needs
  (``NEEDS = (1,)``: the machine as stage 1 leaves it); a test of it needs those, and the
  tests before it in its own stage.
- Selecting a test selects what it needs. Tests that ``-k``, ``-m`` or ``--deselect`` left out
  are run anyway, in their places (a line before the run says how many):
  ``pytest -m e2e tests/e2e/host -k reboot`` runs the host suite's stages 1 to 4, then stage 5
  up to the reboot test.
- What the command line did not let pytest collect cannot be added that way: collection stops
  and says what to run instead (``pytest tests/e2e/host/test_5_survive.py`` alone would run on
  a machine nothing installed).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Hashable
from pathlib import Path

import pytest

STAGE = re.compile(r"test_(\d+)_\w+\.py")

_INDEX = pytest.StashKey[dict[str, int]]()
_DESELECTED = pytest.StashKey[list[pytest.Item]]()


def stage_files(package: Path) -> list[Path]:
    """The package's stage files, in order; a test file that is not one is refused."""
    found: dict[int, Path] = {}
    for path in sorted(package.glob("test_*.py")):
        match = STAGE.fullmatch(path.name)
        if not match:
            raise pytest.UsageError(f"{path}: a scenario's test files are test_<n>_<stage>.py")
        found[int(match[1])] = path
    if sorted(found) != list(range(1, len(found) + 1)):
        raise pytest.UsageError(f"{package}: its stages are not numbered 1 to {len(found)}")
    return [found[n] for n in sorted(found)]


def hooks(
    package: Path, lane: Callable[[pytest.Item], Hashable] = lambda item: None
) -> tuple[Callable[..., None], Callable[..., None], Callable[..., None]]:
    """A scenario package's conftest hooks: ``pytest_itemcollected, pytest_deselected,
    pytest_collection_modifyitems = scenario.hooks(PACKAGE)``; ``lane`` names an item's lane."""

    def pytest_itemcollected(item: pytest.Item) -> None:
        collected(item)

    def pytest_deselected(items: list[pytest.Item]) -> None:
        deselected(package, items)

    @pytest.hookimpl(trylast=True)  # after every plugin that filters or sorts
    def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
        run_in_order(package, config, items, lane)

    return pytest_itemcollected, pytest_deselected, pytest_collection_modifyitems


def collected(item: pytest.Item) -> None:
    """Remembers the order pytest collected ``item`` in: files, then each file's tests."""
    index = item.config.stash.setdefault(_INDEX, {})
    index.setdefault(item.nodeid, len(index))


def deselected(package: Path, items: list[pytest.Item]) -> None:
    """Remembers the package's tests a filter (-k, -m, --deselect) left out."""
    for item in items:
        if item.path.parent == package:
            item.config.stash.setdefault(_DESELECTED, []).append(item)


def run_in_order(
    package: Path,
    config: pytest.Config,
    items: list[pytest.Item],
    lane: Callable[[pytest.Item], Hashable] = lambda item: None,
) -> None:
    """Puts the package's selected tests, and the tests each of them needs, in the stated order
    (see the module's docstring), where its first selected test was."""
    ours = [item for item in items if item.path.parent == package]
    if not ours:
        return
    files = stage_files(package)
    index = config.stash[_INDEX]
    left_out = [i for i in config.stash.get(_DESELECTED, []) if i.path.parent == package]
    every = sorted({*ours, *left_out}, key=lambda item: index[item.nodeid])
    lanes = list(dict.fromkeys(lane(item) for item in every))
    modules = {files.index(item.path): item.module for item in every}  # type: ignore

    def stage(item: pytest.Item) -> int:
        return files.index(item.path)

    def place(item: pytest.Item) -> tuple[int, int, int]:
        return lanes.index(lane(item)), stage(item), index[item.nodeid]

    def needs(first: int) -> set[int]:
        """The stages that stage ``first`` needs whole, directly or through another."""
        found, todo = set(), [first]
        while todo:
            at = todo.pop()
            for n in getattr(modules.get(at), "NEEDS", range(1, at + 1)):
                if n - 1 not in found:
                    found.add(n - 1)
                    todo.append(n - 1)
        return found

    chosen, run = set(ours), []
    whole: set[int] = set()
    upto: dict[int, pytest.Item] = {}
    for each in lanes:
        line = sorted((item for item in every if lane(item) == each), key=place)
        last = {stage(item): n for n, item in enumerate(line) if item in chosen}
        full = set().union(*(needs(s) for s in last))
        run += [
            item
            for n, item in enumerate(line)
            if stage(item) in full or n <= last.get(stage(item), -1)
        ]
        whole |= full
        for s, n in last.items():  # the last selected test of a stage not needed whole
            if s not in full and (s not in upto or _line(upto[s]) < _line(line[n])):
                upto[s] = line[n]
    missing = _not_collected(files, every, whole, upto)
    if missing:
        raise pytest.UsageError(
            f"{package.name}'s tests change one machine in a stated order (tests/e2e/scenario.py)"
            f": the selected ones need {', '.join(missing)} to run first, which the command line"
            f" left out. Name the package ({package.relative_to(config.rootpath)}) and pick"
            " tests with -k: the tests they need then run first."
        )
    added = [item for item in run if item not in chosen]
    if added:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:  # and pytest's count of deselected tests no longer has them
            kept = set(added)
            stats = reporter.stats.get("deselected", [])
            reporter.stats["deselected"] = [i for i in stats if i not in kept]
            reporter.write_line(
                f"{package.relative_to(config.rootpath)}: also running the {len(added)} tests"
                " the selected ones need, in the stated order: each test runs on what those"
                " before it leave"
            )
    first = items.index(ours[0])
    others = [item for item in items if item.path.parent != package]
    items[:] = others[:first] + run + others[first:]


def _not_collected(
    files: list[Path], every: list[pytest.Item], whole: set[int], upto: dict[int, pytest.Item]
) -> list[str]:
    """The stage files needed ``whole``, and the tests of the others that come before their
    last selected test (``upto``), that pytest never collected (the command line named a later
    file, or tests by node id)."""
    names: dict[Path, set[str]] = {}
    for item in every:
        names.setdefault(item.path, set()).add(getattr(item, "originalname", item.name))
    missing = []
    for number in sorted({*whole, *upto}):
        path = files[number]
        if path not in names:
            missing.append(path.name)
            continue
        module = next(item for item in every if item.path == path).module  # type: ignore
        last = upto.get(number) if number not in whole else None
        for name, value in vars(module).items():
            if not name.startswith("test") or not inspect.isfunction(value) or name in names[path]:
                continue
            if last is None or inspect.getsourcelines(value)[1] < _line(last):
                missing.append(f"{path.name}::{name}")
    return missing


def _line(item: pytest.Item) -> int:
    """The line its test function starts on."""
    return inspect.getsourcelines(item.obj)[1]  # type: ignore[attr-defined]
