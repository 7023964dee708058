"""Reading /proc and the files beside it: the parsers the report's sections are built from.

Each reader takes ``root`` so tests can point it at a recorded tree, and returns the value
with None, or None with the reason it could not be read: a report never guesses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

#: The inode of the initial (host's) PID namespace: a kernel constant, PROC_PID_INIT_INO.
INIT_PID_NS_INODE = 0xEFFFFFFC

#: Capability numbers to names, from linux/capability.h (CAP_LAST_CAP is 40 since Linux 5.9).
CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]


def unreadable(rel: str, error: OSError) -> str:
    """A reason string for an unreadable file, naming the platform when it is not Linux."""
    reason = f"cannot read /{rel}: {error.strerror or error}"
    if not sys.platform.startswith("linux"):
        reason += f" (not Linux: sys.platform is {sys.platform!r})"
    return reason


def read_text(root: str, rel: str) -> tuple[str | None, str | None]:
    """The text of ``root/rel`` and None, or None and why it could not be read."""
    try:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            return f.read(), None
    except OSError as e:
        return None, unreadable(rel, e)


def read_link(root: str, rel: str) -> tuple[str | None, str | None]:
    """The target of the symlink ``root/rel`` (a /proc/*/ns/* entry), or None and why not."""
    try:
        return os.readlink(os.path.join(root, rel)), None
    except OSError as e:
        return None, unreadable(rel, e)


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status as a dict of its ``Key:\\tvalue`` lines."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def read_status(root: str, pid: str = "self") -> tuple[dict[str, str] | None, str | None]:
    """/proc/PID/status parsed, or None and why it could not be read (the process exited)."""
    text, why = read_text(root, f"proc/{pid}/status")
    return (parse_status(text), None) if text is not None else (None, why)


def read_cmdline(root: str, pid: str) -> str | None:
    """The command line as ``ps`` shows it; kernel threads (empty cmdline) as ``[name]``."""
    text, _ = read_text(root, f"proc/{pid}/cmdline")
    if text is None:
        return None
    command = " ".join(part for part in text.split("\0") if part)
    if command:
        return command
    status, _ = read_status(root, pid)
    return f"[{status.get('Name', '?')}]" if status else None


def ns_inode(link: str | None) -> int | None:
    """4026531836 from ``pid:[4026531836]``."""
    if link is None or "[" not in link:
        return None
    try:
        return int(link[link.index("[") + 1 : link.rindex("]")])
    except ValueError:
        return None


def parse_mountinfo(text: str) -> list[dict[str, str]]:
    """The mounts of /proc/self/mountinfo: mount point, per-mount and superblock options."""
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 6 or len(tail) < 2:
            continue
        mounts.append(
            {
                "mount_point": fields[4],
                "options": fields[5],
                "fstype": tail[0],
                "source": tail[1],
                "super_options": tail[2] if len(tail) > 2 else "",
            }
        )
    return mounts


def parse_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup as controller to path; the v2 line ``0::/path`` is keyed ``""``."""
    cgroups = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            cgroups[controller] = path
    return cgroups


def cgroup_version(cgroups: Mapping[str, str]) -> str:
    """v1 (named controllers), v2 (the single ``0::`` line) or hybrid (both)."""
    v1 = any(name for name in cgroups)
    v2 = "" in cgroups
    return "hybrid" if v1 and v2 else "v1" if v1 else "v2"


def cgroup_path(cgroups: Mapping[str, str]) -> str | None:
    """The path naming the unit or container.

    From systemd's v1 hierarchy, then v2, then any controller that is not at the root.
    """
    for key in ("name=systemd", ""):
        if cgroups.get(key, "/") != "/":
            return cgroups[key]
    others = [path for path in cgroups.values() if path != "/"]
    if others:
        return others[0]
    return "/" if cgroups else None


def read_passwd(root: str) -> dict[int, str]:
    """uid to user name from the /etc/passwd this process sees (its image's, in a container)."""
    text, _ = read_text(root, "etc/passwd")
    users: dict[int, str] = {}
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit():
            users.setdefault(int(parts[2]), parts[0])
    return users


def int_fields(value: str | None) -> list[int]:
    """The numbers of a status line such as ``Uid: 0 0 0 0`` (Uid, Gid, Groups, NSpid)."""
    return [int(x) for x in value.split()] if value else []


def root_mount(root: str) -> tuple[dict[str, str] | None, str | None]:
    """The mount at / (the last one listed: later mounts cover earlier ones)."""
    text, why = read_text(root, "proc/self/mountinfo")
    if text is None:
        return None, why
    mounts = [m for m in parse_mountinfo(text) if m["mount_point"] == "/"]
    return (mounts[-1], None) if mounts else (None, "no mount at / in /proc/self/mountinfo")


def parse_containerenv(text: str) -> dict[str, str]:
    """podman's /run/.containerenv: ``engine="podman-4.3.1"`` lines."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def capability_names(mask: int) -> list[str]:
    """The names of the bits set in a CapEff mask; bits newer than this table as CAP_<n>."""
    return [
        CAPABILITIES[bit] if bit < len(CAPABILITIES) else f"CAP_{bit}"
        for bit in range(mask.bit_length())
        if mask >> bit & 1
    ]
