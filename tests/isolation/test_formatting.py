"""flaskr.isolation.formatting: the readable report, comparisons and reports without others'
command lines."""

from __future__ import annotations

from flaskr.isolation import formatting, probe, proc
from tests.isolation import case


def test_format_empty_report() -> None:
    text = formatting.format_report({})
    assert "Processes visible" not in text and "App packages" not in text
    assert "processes visible       unknown" in text


def test_format_report_limits_processes() -> None:
    report = probe.collect(case("systemd-service"), environ={})
    text = formatting.format_report(report, process_limit=2)
    assert "supervisor              systemd (flaskr.service)" in text
    assert "... and 3 more (--json lists them all)" in text
    assert "App packages:" in text
    assert "…" in formatting.format_report(probe.collect(case("host")))


def test_describe_capabilities_unknown_and_all() -> None:
    assert formatting.describe_capabilities(None) == "unknown"
    assert formatting.describe_capabilities(proc.CAPABILITIES) == "all 41"


def test_without_commands() -> None:
    report = formatting.without_commands(probe.collect(case("docker-v1")))
    commands = [p["command"] for p in report["processes"]["visible"]]
    assert commands[0] and commands[1:] == [None, None, None, None]
    assert "(left out)" in formatting.format_report(report)


def test_without_commands_keeps_the_apps() -> None:
    """The e2e suites keep gunicorn's command lines, and blank the others and the parent's."""
    report = probe.collect(case("systemd-service"), environ={})
    kept = formatting.without_commands(report, keep=lambda p: "gunicorn" in (p["command"] or ""))
    commands = {p["pid"]: p["command"] for p in kept["processes"]["visible"]}
    assert commands[1] == "/sbin/init splash" and commands[2] is None and commands[812] is None
    assert "gunicorn" in commands[1234] and "gunicorn" in commands[1240]
    assert "gunicorn" in kept["supervisor"]["parent"]["command"]
    report = formatting.without_commands(probe.collect(case("systemd-service"), environ={}))
    assert report["supervisor"]["parent"]["command"] is None
    rows = dict(formatting.summary_rows(report))
    assert rows["parent process"] == "pid 1234 (command left out)"


def test_compare_pipes_in_markdown() -> None:
    a = {"processes": {"pid1": "sh -c 'a | b'"}}
    text = formatting.format_compare(a, {}, ("a", "b"), markdown=True)
    assert "sh -c 'a \\| b'" in text
