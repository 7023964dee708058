"""tests/e2e/scenario.py, the stated order of the scenario suites (tests/e2e/host/,
tests/e2e/container/), checked on a scenario of its own: pytest collects it in a child process,
with nothing started."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import ROOT

CONFTEST = """
from pathlib import Path

import pytest

from tests.e2e import scenario

PACKAGE = Path(__file__).resolve().parent


pytest_itemcollected, pytest_deselected, pytest_collection_modifyitems = scenario.hooks(
    PACKAGE, lambda item: item.callspec.params["lane"]
)


@pytest.fixture(scope="package", params=["left", "right"])
def lane(request):
    return request.param
"""

STAGES = {
    "test_1_first.py": "def test_one(lane): pass\n\ndef test_two(lane): pass\n",
    "test_2_second.py": "def test_three(lane): pass\n",
    "test_3_third.py": "NEEDS = (1,)\n\ndef test_four(lane): pass\n",
}


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    package = tmp_path / "stages"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "conftest.py").write_text(CONFTEST)
    for name, text in STAGES.items():
        (package / name).write_text(text)
    return package


def collect(package: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-o", "addopts=", "--rootdir", str(package.parent), *args],
        cwd=package.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def order(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stdout + done.stderr
    return [line.split("::")[1] for line in done.stdout.splitlines() if "::" in line]


def test_each_lane_runs_every_stage_in_order(scenario: Path) -> None:
    lane = ["test_one", "test_two", "test_three", "test_four"]
    every = [f"{name}[left]" for name in lane] + [f"{name}[right]" for name in lane]
    assert order(collect(scenario, "stages")) == every


def test_a_selected_test_brings_what_it_needs_in_order(scenario: Path) -> None:
    done = collect(scenario, "stages", "-k", "three and right")
    assert order(done) == ["test_one[right]", "test_two[right]", "test_three[right]"]
    assert "also running the 2 tests the selected ones need" in done.stdout
    assert "3/8 tests collected (5 deselected)" in done.stdout, done.stdout
    # Within a stage, the tests before the selected one.
    assert order(collect(scenario, "stages", "-k", "two")) == [
        "test_one[left]", "test_two[left]", "test_one[right]", "test_two[right]",
    ]  # fmt: skip


def test_a_stage_naming_its_needs_brings_those_only(scenario: Path) -> None:
    assert order(collect(scenario, "stages", "-k", "four and left")) == [
        "test_one[left]", "test_two[left]", "test_four[left]",
    ]  # fmt: skip


def test_a_later_stage_named_alone_stops_collection(scenario: Path) -> None:
    done = collect(scenario, "stages/test_2_second.py")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "need test_1_first.py to run first" in done.stderr, done.stderr
    done = collect(scenario, "stages/test_1_first.py::test_two")
    assert done.returncode == 4 and "need test_1_first.py::test_one" in done.stderr, done.stderr
    assert order(collect(scenario, "stages/test_1_first.py")) == [
        "test_one[left]", "test_two[left]", "test_one[right]", "test_two[right]",
    ]  # fmt: skip


def test_a_test_file_that_is_no_stage_stops_collection(scenario: Path) -> None:
    (scenario / "test_extra.py").write_text("def test_x(lane): pass\n")
    done = collect(scenario, "stages")
    assert done.returncode == 4 and "test_<n>_<stage>.py" in done.stderr, done.stderr
