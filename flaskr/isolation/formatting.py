"""Presenting a report: as rows, as text, side by side, and fit to share.

The README's container-and-host comparison as one row per fact, the readable text of
``flask isolation``, two reports side by side, and a report with others' command lines left
out before it is shared. Everything here reads the plain data ``probe.collect`` returns (or a
saved JSON report), so a report from another machine formats the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flaskr.isolation.proc import CAPABILITIES


def _get(report: Mapping[str, Any], section: str, key: str) -> Any:
    """One value of one section, None when either is missing (a partial or older report)."""
    return (report.get(section) or {}).get(key)


def _unknown(report: Mapping[str, Any], section: str, key: str) -> str:
    """ "unknown", with the reason the section gives for the value when it gives one."""
    reason = ((report.get(section) or {}).get("reasons") or {}).get(key)
    return f"unknown ({reason})" if reason else "unknown"


def _yes_no(value: bool | None, report: Mapping[str, Any], section: str, key: str) -> str:
    """A flag as yes or no, or unknown and why."""
    return _unknown(report, section, key) if value is None else "yes" if value else "no"


def _known(found: str | None, absent: str | None, unknown: str) -> str:
    """What was found; else what its absence means, when the check could tell; else unknown."""
    return found or absent or unknown


def describe_capabilities(names: list[str] | None) -> str:
    """A short account of a capability set: "none", "all 41", "40: all but sys_resource"."""
    if names is None:
        return "unknown"
    if not names:
        return "none"
    short = [n.removeprefix("CAP_").lower() for n in names]
    missing = [n.removeprefix("CAP_").lower() for n in CAPABILITIES if n not in names]
    if not missing:
        return f"all {len(names)}"
    if len(missing) <= 3:
        return f"{len(names)}: all but " + ", ".join(missing)
    return f"{len(names)}: " + ", ".join(short)


def _which_row(report: Mapping[str, Any], *names: str) -> str:
    """The first of ``names`` found on PATH."""
    on_path = _get(report, "dependencies", "on_path") or {}
    for name in names:
        if on_path.get(name):
            return str(on_path[name]["path"])
    return "not found"


def summary_rows(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The container-and-host comparison, one (label, value) row per fact, as short strings."""
    deps = report.get("dependencies") or {}
    procs = report.get("processes") or {}
    box = report.get("container") or {}
    sup = report.get("supervisor") or {}
    priv = report.get("privileges") or {}

    packages = deps.get("packages") or {}
    installed = sum(1 for version in packages.values() if version)
    namespace = procs.get("pid_namespace")
    count = procs.get("count")
    cgroup = (
        f"{box['cgroup_version']} {box['cgroup_path']}"
        if box.get("cgroup_path")
        else _unknown(report, "container", "cgroup_path")
    )
    root_fs = box.get("root_fstype") or _unknown(report, "container", "root_fstype")
    supervised = _known(
        f"systemd ({sup.get('unit') or 'INVOCATION_ID set'})" if sup.get("systemd") else None,
        "not systemd" if sup.get("systemd") is False else None,
        _unknown(report, "supervisor", "systemd"),
    )
    if sup.get("parent"):
        parent = sup["parent"]["command"] or f"pid {sup['parent']['pid']} (command left out)"
    else:
        parent = _unknown(report, "supervisor", "parent")
    user = (
        f"{priv.get('user') or '?'} (uid {priv['euid']})"
        if priv.get("euid") is not None
        else _unknown(report, "privileges", "euid")
    )
    runtime_text = _known(
        f"{box['runtime']} (from {box.get('runtime_source')})" if box.get("runtime") else None,
        "none" if box.get("in_container") is False else None,
        _unknown(report, "container", "runtime"),
    )
    return [
        ("python on PATH", _which_row(report, "python", "python3")),
        ("pip on PATH", _which_row(report, "pip", "pip3")),
        ("interpreter", f"{deps.get('executable')} ({deps.get('version')})"),
        ("virtualenv", deps.get("venv") or "none"),
        ("app packages installed", f"{installed} of {len(packages)}"),
        (
            "PID namespace",
            f"{namespace} ({procs.get('ns_pid')})"
            if namespace
            else _unknown(report, "processes", "pid_namespace"),
        ),
        ("NSpid", " ".join(str(p) for p in procs.get("nspid") or []) or "unknown"),
        (
            "processes visible",
            _unknown(report, "processes", "visible")
            if count is None
            else f"{count} (/proc {procs['proc_hidepid']}: other users' are hidden)"
            if procs.get("proc_hidepid")
            else str(count),
        ),
        ("PID 1", procs.get("pid1") or _unknown(report, "processes", "pid1")),
        ("container markers", ", ".join(box.get("markers") or []) or "none"),
        ("in a container", _yes_no(box.get("in_container"), report, "container", "in_container")),
        ("runtime", runtime_text),
        ("cgroup", cgroup),
        ("root filesystem", root_fs),
        ("supervisor", supervised),
        ("parent process", parent),
        ("user", user),
        ("groups", " ".join(str(g) for g in priv.get("groups") or []) or "none"),
        ("capabilities", describe_capabilities(priv.get("capabilities"))),
        ("NoNewPrivs", _yes_no(priv.get("no_new_privs"), report, "privileges", "no_new_privs")),
        ("seccomp", priv.get("seccomp") or _unknown(report, "privileges", "seccomp")),
        ("umask", priv.get("umask") or _unknown(report, "privileges", "umask")),
        (
            "read-only root",
            _yes_no(priv.get("read_only_root"), report, "privileges", "read_only_root"),
        ),
    ]


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: list[list[str]], width: int = 60) -> str:
    """Rows as aligned columns, the first row a header underlined with dashes."""
    rows = [[_clip(cell, width) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def format_report(report: Mapping[str, Any], process_limit: int = 25) -> str:
    """The readable report of ``flask isolation``."""
    head = (
        f"Isolation report for pid {report.get('pid')} on {report.get('hostname')} "
        f"({report.get('platform')} {report.get('kernel')}), {report.get('collected_at')}"
    )
    parts = [head, "", format_table([["", "this process"], *map(list, summary_rows(report))])]
    visible = _get(report, "processes", "visible")
    if visible:
        rows = [[str(p["pid"]), p["user"] or "?", p["command"] or "(left out)"] for p in visible]
        more = len(rows) - process_limit
        parts += ["", "Processes visible (like ps aux):"]
        parts.append(format_table([["PID", "USER", "COMMAND"], *rows[:process_limit]], width=90))
        if more > 0:
            parts.append(f"... and {more} more (--json lists them all)")
    packages = _get(report, "dependencies", "packages")
    if packages:
        parts += ["", "App packages:"]
        rows = [[name, version or "not installed"] for name, version in packages.items()]
        parts.append(format_table([["PACKAGE", "VERSION"], *rows]))
    return "\n".join(parts)


def compare_rows(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, str, str, bool]]:
    """Rows of (label, A's value, B's value, differs), the differences first.

    Each group keeps the README's order.
    """
    rows = [
        (label, value_a, value_b, value_a != value_b)
        for (label, value_a), (_, value_b) in zip(summary_rows(a), summary_rows(b), strict=True)
    ]
    return [row for row in rows if row[3]] + [row for row in rows if not row[3]]


def format_compare(
    a: Mapping[str, Any], b: Mapping[str, Any], labels: tuple[str, str], markdown: bool = False
) -> str:
    """Two reports side by side, as a text table or a Markdown one for the docs."""
    rows = compare_rows(a, b)
    if markdown:

        def cell(text: str) -> str:
            return _clip(text, 70).replace("|", "\\|")

        lines = [f"| | {labels[0]} | {labels[1]} | |", "|---|---|---|---|"]
        for label, value_a, value_b, differs in rows:
            mark = "differs" if differs else "same"
            lines.append(f"| {label} | {cell(value_a)} | {cell(value_b)} | {mark} |")
        return "\n".join(lines)
    table = [["", labels[0], labels[1], ""]]
    table += [[label, x, y, "differs" if d else "same"] for label, x, y, d in rows]
    return format_table(table, width=48)


def without_commands(
    report: dict[str, Any], keep: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """The report with other processes' command lines left out, for sharing it.

    A command line can carry a password or a token. PID 1's and the reporting process's own
    stay, and those of the processes ``keep`` accepts (the app's).
    """
    own = {1, report.get("pid")}
    parent = _get(report, "supervisor", "parent")
    for process in [*(_get(report, "processes", "visible") or []), *([parent] if parent else [])]:
        if process["pid"] not in own and not (keep and keep(process)):
            process["command"] = None
    return report
