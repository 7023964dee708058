"""The report's privileges section: who the process runs as and what the kernel lets it do."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flaskr.isolation.proc import (
    capability_names,
    int_fields,
    read_passwd,
    read_status,
    root_mount,
)

SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}


#: The privileges section's fields, in the order the report lists them.
PRIVILEGES = (
    "uid", "euid", "gid", "egid", "user", "groups", "cap_eff", "capabilities",
    "no_new_privs", "seccomp", "umask", "read_only_root",
)  # fmt: skip


def privileges(root: str = "/") -> dict[str, Any]:
    """Who the process runs as and what the kernel lets it do."""
    status, why = read_status(root)
    result: dict[str, Any] = dict.fromkeys(PRIVILEGES)
    if status is not None:
        result.update(_privileges_from_status(status))
    elif hasattr(os, "geteuid"):
        result.update(_ids_without_proc())
    if result["euid"] is not None:
        result["user"] = read_passwd(root).get(result["euid"])
    result["read_only_root"], mount_why = _read_only_root(root)
    result["reasons"] = _privileges_unknown(result, why, mount_why)
    return result


def _privileges_from_status(status: Mapping[str, str]) -> dict[str, Any]:
    """The ids, capabilities and sandbox flags that /proc/self/status lists.

    Its fields vary with the kernel's age: those it lacks stay unknown.
    """
    found: dict[str, Any] = {}
    uids, gids = int_fields(status.get("Uid")), int_fields(status.get("Gid"))
    if len(uids) > 1 and len(gids) > 1:
        found.update(uid=uids[0], euid=uids[1], gid=gids[0], egid=gids[1])
    found["groups"] = int_fields(status.get("Groups"))
    if "CapEff" in status:
        found["cap_eff"] = status["CapEff"]
        found["capabilities"] = capability_names(int(status["CapEff"], 16))
    if "NoNewPrivs" in status:
        found["no_new_privs"] = status["NoNewPrivs"] == "1"
    if "Seccomp" in status:
        found["seccomp"] = SECCOMP_MODES.get(int(status["Seccomp"]), status["Seccomp"])
    found["umask"] = status.get("Umask")  # Linux 4.7+
    return found


def _ids_without_proc() -> dict[str, Any]:
    """No /proc (macOS, BSD): the ids are still known; the rest is not."""
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "groups": os.getgroups(),
    }


def _read_only_root(root: str) -> tuple[bool | None, str | None]:
    """Whether / is mounted read-only, from its mount options, else from statvfs, else why not."""
    mount, why = root_mount(root)
    if mount is not None:
        options = mount["options"].split(",") + mount["super_options"].split(",")
        return "ro" in options, None
    if hasattr(os, "statvfs"):
        return bool(os.statvfs(root).f_flag & os.ST_RDONLY), why
    return None, why


def _privileges_unknown(
    result: Mapping[str, Any], why: str | None, mount_why: str | None
) -> dict[str, str]:
    """Why each unknown value is unknown."""
    reasons = {}
    for key, value in result.items():
        if value is None:
            reasons[key] = why or "not in /proc/self/status"
    if result["user"] is None and result["euid"] is not None:
        reasons["user"] = f"uid {result['euid']} is not in /etc/passwd"
    if result["read_only_root"] is None:
        reasons["read_only_root"] = str(mount_why)
    return reasons
