"""flaskr.isolation.cli: ``flask isolation`` and ``flask isolation compare``, run as the app's
commands and as ``python -m flaskr.isolation``."""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

from flaskr.isolation import probe
from tests.isolation import case
from toolkit.apps import make_app


def save(tmp_path: Path, name: str, report: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def test_cli_report(tmp_path: Path) -> None:
    runner = make_app(tmp_path).test_cli_runner()
    result = runner.invoke(args=["isolation"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Isolation report for pid")
    assert "PID namespace" in result.output
    result = runner.invoke(args=["isolation", "--json"])
    report = json.loads(result.output)
    assert set(report) >= {"platform", "hostname", "collected_at", "dependencies", "privileges"}
    result = runner.invoke(args=["isolation", "--json", "--no-commands"])
    visible = json.loads(result.output)["processes"]["visible"]
    assert {p["pid"] for p in visible if p["command"]} <= {1, os.getpid()}


def test_cli_compare(tmp_path: Path) -> None:
    runner = make_app(tmp_path).test_cli_runner()
    a = save(tmp_path, "container.json", probe.collect(case("docker-v1"), environ={}))
    b = save(tmp_path, "host.json", probe.collect(case("systemd-service"), environ={}))
    result = runner.invoke(args=["isolation", "compare", a, b])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["container", "host"]
    marks = [line.rsplit(None, 1)[-1] for line in lines[2:]]
    assert marks == sorted(marks)  # "differs" rows come before "same" rows
    assert "differs" in marks and "same" in marks
    row = next(line for line in lines if line.startswith("in a container"))
    assert row.split()[3:] == ["yes", "no", "differs"]

    result = runner.invoke(args=["isolation", "compare", "--markdown", "--labels", "A, B", a, b])
    assert result.output.startswith("| | A | B | |\n|---|---|---|---|\n")
    assert "| supervisor | not systemd | systemd (flaskr.service) | differs |" in result.output

    result = runner.invoke(args=["isolation", "compare", "--labels", "A", a, b])
    assert result.exit_code == 2 and "two labels" in result.output


def test_cli_compare_bad_files(tmp_path: Path) -> None:
    runner = make_app(tmp_path).test_cli_runner()
    good = save(tmp_path, "good.json", probe.collect(case("host")))
    listing = save(tmp_path, "list.json", [])  # type: ignore[arg-type]
    result = runner.invoke(args=["isolation", "compare", good, str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "cannot read the report" in result.output
    result = runner.invoke(args=["isolation", "compare", good, listing])
    assert result.exit_code == 1 and "does not hold an isolation report" in result.output


def test_runs_without_the_app(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m flaskr.isolation`, as the image, the host suite and scripts/isolation-report
    run it: no app, no database, no configuration."""
    monkeypatch.setattr(sys, "argv", ["python -m flaskr.isolation", "--json", "--no-commands"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("flaskr.isolation", run_name="__main__")
    assert done.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pid"] == os.getpid()
    visible = report["processes"]["visible"]
    assert {p["pid"] for p in visible if p["command"]} <= {1, os.getpid()}
