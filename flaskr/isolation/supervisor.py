"""The report's supervisor section: whether systemd supervises this process, and its parent."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flaskr.isolation.proc import (
    cgroup_path,
    int_fields,
    parse_cgroup,
    read_cmdline,
    read_status,
    read_text,
)


def supervisor(root: str = "/", environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Whether systemd supervises this process, as in the host deployment (systemd behind nginx).

    systemd sets INVOCATION_ID for a service and puts it in a cgroup named after its unit.
    """
    environ = os.environ if environ is None else environ
    reasons: dict[str, str] = {}
    text, why = read_text(root, "proc/self/cgroup")
    path = cgroup_path(parse_cgroup(text)) if text is not None else None
    unit = None
    if path:
        last = path.rstrip("/").rsplit("/", 1)[-1]
        unit = last if last.endswith((".service", ".scope")) else None
    invocation_id = environ.get("INVOCATION_ID")
    evidence = []
    if invocation_id:
        evidence.append("INVOCATION_ID is set")
    if unit and unit.endswith(".service"):
        evidence.append(f"cgroup {path}")
    if evidence:
        systemd: bool | None = True
    elif text is not None:
        systemd = False
    else:
        systemd = None
        reasons["systemd"] = str(why)
    parent, parent_why = _parent(root)
    if parent_why:
        reasons["parent"] = parent_why
    pid1_status, pid1_why = read_status(root, "1")
    if pid1_status is None:
        reasons["pid1_name"] = str(pid1_why)
    return {
        "systemd": systemd,
        "unit": unit,
        "invocation_id": invocation_id,
        "evidence": evidence,
        "pid1_name": pid1_status.get("Name") if pid1_status else None,
        "parent": parent,
        "reasons": reasons,
    }


def _parent(root: str) -> tuple[dict[str, Any] | None, str | None]:
    """The parent process, or None and why.

    PPid 0 has two causes: PID 1 of its namespace has no parent, and a process that entered
    the namespace with setns (nsenter, `docker exec`) has one outside it.
    """
    status, _ = read_status(root)
    ppid = status.get("PPid") if status else None
    if ppid == "0":
        fields = status or {}
        ids = int_fields(fields.get("NSpid") or fields.get("Pid"))  # its own namespace's pid last
        pid = ids[-1] if ids else None
        if pid in (1, None):
            return None, "PPid 0: the first process of its PID namespace"
        return None, (
            f"PPid 0: its parent is outside its PID namespace (pid {pid} there: "
            "entered with setns, as nsenter and docker exec do)"
        )
    if ppid:
        return {"pid": int(ppid), "command": read_cmdline(root, ppid)}, None
    return None, None
