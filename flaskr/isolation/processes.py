"""The report's processes section: the PID namespace and the processes this one can see."""

from __future__ import annotations

import os
from typing import Any

from flaskr.isolation.proc import (
    INIT_PID_NS_INODE,
    int_fields,
    ns_inode,
    parse_mountinfo,
    read_cmdline,
    read_link,
    read_passwd,
    read_status,
    read_text,
    unreadable,
)


def pid_namespace(root: str = "/") -> dict[str, Any]:
    """Whether this process has its own PID namespace.

    NSpid with more than one pid proves a nested namespace, but only when /proc was mounted outside
    it: a container mounts its own /proc, where NSpid shows one pid. The namespace's inode settles
    it: the initial (host) namespace always has inode 0xEFFFFFFC.
    """
    status, why = read_status(root)
    nspid = int_fields(status["NSpid"]) if status and "NSpid" in status else None
    link, link_why = read_link(root, "proc/self/ns/pid")
    pid1_link, pid1_why = read_link(root, "proc/1/ns/pid")
    inode = ns_inode(link)
    result: dict[str, Any] = {
        "pid_namespace": None,
        "evidence": None,
        "nspid": nspid,
        "ns_pid": link,
        "pid1_ns_pid": pid1_link,
        "reasons": {},
    }
    if nspid and len(nspid) > 1:
        result["pid_namespace"] = "own"
        result["evidence"] = f"NSpid lists {len(nspid)} pids: a nested PID namespace"
    elif inode is not None:
        host = inode == INIT_PID_NS_INODE
        result["pid_namespace"] = "host" if host else "own"
        result["evidence"] = (
            f"{link} is the initial PID namespace"
            if host
            else f"{link} is not the initial PID namespace ({INIT_PID_NS_INODE})"
        )
    else:
        result["reasons"]["pid_namespace"] = link_why or why or f"unexpected ns link {link!r}"
    if nspid is None:
        result["reasons"]["nspid"] = why or "no NSpid line (Linux before 4.1)"
    if link is None:
        result["reasons"]["ns_pid"] = link_why
    if pid1_link is None:
        result["reasons"]["pid1_ns_pid"] = pid1_why
    return result


def processes(root: str = "/") -> dict[str, Any]:
    """The processes this one can see, like ``ps aux``: a container sees only its own."""
    namespace = pid_namespace(root)
    reasons = dict(namespace.pop("reasons"))
    try:
        pids = [name for name in os.listdir(os.path.join(root, "proc")) if name.isdigit()]
    except OSError as e:
        visible = None
        reasons["visible"] = unreadable("proc", e)
    else:
        visible = _visible(root, sorted(pids, key=int))
    hidepid = _proc_hidepid(root)
    pid1 = read_cmdline(root, "1")
    if pid1 is None:
        why = read_text(root, "proc/1/cmdline")[1] or "no command line"
        # systemd's ProtectProc=invisible: another user's PID 1 is not even listed.
        reasons["pid1"] = f"hidden: /proc is mounted with {hidepid}" if hidepid else why
    return {
        **namespace,
        "pid1": pid1,
        "count": len(visible) if visible is not None else None,
        "visible": visible,
        "proc_hidepid": hidepid,
        "reasons": reasons,
    }


def _visible(root: str, pids: list[str]) -> list[dict[str, Any]]:
    """Each process's pid, effective user and command line, skipping those that exited."""
    users = read_passwd(root)
    visible = []
    for pid in pids:
        status, _ = read_status(root, pid)
        command = read_cmdline(root, pid)
        if status is None or command is None:
            continue  # it exited while we looked
        uid = int_fields(status.get("Uid"))[1:2]  # effective, as ps shows
        visible.append(
            {
                "pid": int(pid),
                "uid": uid[0] if uid else None,
                "user": users.get(uid[0], str(uid[0])) if uid else None,
                "command": command,
            }
        )
    return visible


def _proc_hidepid(root: str) -> str | None:
    """A /proc mounted with hidepid= shows only the user's own processes: say so."""
    text, _ = read_text(root, "proc/self/mountinfo")
    for mount in parse_mountinfo(text or ""):
        if mount["mount_point"] == "/proc":
            for option in mount["super_options"].split(","):
                if option.startswith("hidepid="):
                    return option
    return None
