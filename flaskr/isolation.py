"""What the running process can see: its dependencies, processes, container, supervisor and
privileges, read from /proc and the filesystem. It makes the seed's comparison between a
container and a host measurable: ``flask isolation`` reports, ``flask isolation compare``
puts two reports side by side.

Every function that reads the system takes ``root`` so tests can point it at recorded /proc
trees. Where a value cannot be told (not Linux, an unreadable file) it is None and the
section's ``reasons`` says why: a report never guesses.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask

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

SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}

#: Used when no requirements.txt sits beside the package (an installed wheel, an image).
MAIN_PACKAGES = [
    "flask",
    "werkzeug",
    "sqlalchemy",
    "flask-sqlalchemy",
    "alembic",
    "flask-migrate",
    "flask-wtf",
    "gunicorn",
    "pillow",
    "nh3",
    "markdown-it-py",
    "psycopg",
]

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"

#: Substrings of a cgroup path and the runtime that puts processes there; kubepods first,
#: since Kubernetes runs its pods through docker or containerd.
CGROUP_RUNTIMES = [
    ("kubepods", "kubernetes"),
    ("libpod", "podman"),
    ("docker", "docker"),
    ("containerd", "containerd"),
    ("machine-", "systemd-nspawn"),
    ("lxc", "lxc"),
]


# -- reading /proc --------------------------------------------------------------------------


def _why(rel: str, error: OSError) -> str:
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
        return None, _why(rel, e)


def read_link(root: str, rel: str) -> tuple[str | None, str | None]:
    """The target of the symlink ``root/rel`` (a /proc/*/ns/* entry), or None and why not."""
    try:
        return os.readlink(os.path.join(root, rel)), None
    except OSError as e:
        return None, _why(rel, e)


def parse_status(text: str) -> dict[str, str]:
    """/proc/PID/status as a dict of its ``Key:\\tvalue`` lines."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
    return fields


def read_status(root: str, pid: str = "self") -> tuple[dict[str, str] | None, str | None]:
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
    v1 = any(name for name in cgroups)
    v2 = "" in cgroups
    return "hybrid" if v1 and v2 else "v1" if v1 else "v2"


def cgroup_path(cgroups: Mapping[str, str]) -> str | None:
    """The path naming the unit or container: systemd's v1 hierarchy, then v2, then any
    controller that is not at the root."""
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


def _ids(value: str | None) -> list[int]:
    return [int(x) for x in value.split()] if value else []


# -- the sections ----------------------------------------------------------------------------


def _which(name: str) -> dict[str, str] | None:
    found = shutil.which(name)
    return {"path": found, "realpath": os.path.realpath(found)} if found else None


def requirement_names(path: Path) -> list[str]:
    """Distribution names pinned in a requirements file (``name==1.0 \\`` lines)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        for stop in "=<>!~;[ \\":
            line = line.split(stop, 1)[0]
        names.append(line.lower())
    return names


def dependencies(requirements: Path = REQUIREMENTS) -> dict[str, Any]:
    """The interpreter, its virtualenv, whether python and pip resolve on PATH, and the
    versions of the app's packages: what the seed says a container keeps inside."""
    reasons = {}
    if requirements.is_file():
        names, source = requirement_names(requirements), str(requirements)
    else:
        names, source = MAIN_PACKAGES, "built-in list (no requirements.txt beside the package)"
    packages: dict[str, str | None] = {}
    for name in names:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = None
            reasons[f"packages.{name}"] = "not installed"
    in_venv = sys.prefix != sys.base_prefix
    return {
        "executable": sys.executable,
        "executable_realpath": os.path.realpath(sys.executable) if sys.executable else None,
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "prefix": sys.prefix,
        "base_prefix": sys.base_prefix,
        "in_venv": in_venv,
        "venv": sys.prefix if in_venv else None,
        "path": os.environ.get("PATH", "").split(os.pathsep),
        "on_path": {name: _which(name) for name in ("python", "python3", "pip", "pip3")},
        "packages": packages,
        "packages_source": source,
        "reasons": reasons,
    }


def pid_namespace(root: str = "/") -> dict[str, Any]:
    """Whether this process has its own PID namespace. NSpid with more than one pid proves a
    nested namespace, but only when /proc was mounted outside it: a container mounts its own
    /proc, where NSpid shows one pid. The namespace's inode settles it: the initial (host)
    namespace always has inode 0xEFFFFFFC."""
    status, why = read_status(root)
    nspid = _ids(status["NSpid"]) if status and "NSpid" in status else None
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
        reasons["visible"] = _why("proc", e)
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
    users = read_passwd(root)
    visible = []
    for pid in pids:
        status, _ = read_status(root, pid)
        command = read_cmdline(root, pid)
        if status is None or command is None:
            continue  # it exited while we looked
        uid = _ids(status.get("Uid"))[1:2]  # effective, as ps shows
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


def _root_mount(root: str) -> tuple[dict[str, str] | None, str | None]:
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


def _pid1_container_env(root: str) -> tuple[str | None, str | None]:
    """The ``container`` variable that systemd-nspawn, podman and LXC give PID 1."""
    text, why = read_text(root, "proc/1/environ")
    if text is None:
        return None, why
    for item in text.split("\0"):
        key, sep, value = item.partition("=")
        if sep and key == "container" and value:
            return value, None
    return None, "PID 1 has no container variable"


def container(root: str = "/") -> dict[str, Any]:
    """Whether this process runs in a container, and which runtime, from the markers runtimes
    leave, the cgroup path, the root mount and the PID namespace. Markers alone can mislead
    (an image exported as a VM's disk keeps /.dockerenv), so a marker against a host PID
    namespace gives no verdict."""
    reasons: dict[str, str] = {}
    dockerenv = os.path.exists(os.path.join(root, ".dockerenv"))
    containerenv_text, _ = read_text(root, "run/.containerenv")
    containerenv = parse_containerenv(containerenv_text) if containerenv_text is not None else None
    systemd_container, _ = read_text(root, "run/systemd/container")
    systemd_container = systemd_container.strip() if systemd_container else None
    pid1_env, pid1_env_why = _pid1_container_env(root)
    if pid1_env is None:
        reasons["pid1_container_env"] = pid1_env_why

    cgroup_text, cgroup_why = read_text(root, "proc/self/cgroup")
    cgroups = parse_cgroup(cgroup_text) if cgroup_text is not None else None
    path = cgroup_path(cgroups) if cgroups else None
    if cgroups is None:
        reasons["cgroup_path"] = cgroup_why

    mount, mount_why = _root_mount(root)
    if mount is None:
        reasons["root_fstype"] = str(mount_why)
    overlay = mount["fstype"] in ("overlay", "fuse-overlayfs") if mount else None
    markers = [
        name
        for name, present in (
            ("/.dockerenv", dockerenv),
            ("/run/.containerenv", containerenv is not None),
            ("/run/systemd/container", bool(systemd_container)),
        )
        if present
    ]
    cgroup_runtime = next(
        (name for needle, name in CGROUP_RUNTIMES if needle in (path or "")), None
    )

    evidence = [f"marker {m}" for m in markers]
    discounted = []
    if dockerenv and mount and not overlay:
        # Docker writes /.dockerenv into the container's overlay; on a plain disk it is a
        # leftover of an image turned into a VM or chroot (this project's CI machine has one).
        evidence.remove("marker /.dockerenv")
        discounted.append(f"/.dockerenv, since / is {mount['fstype']} on {mount['source']}")
    if pid1_env:
        evidence.append(f"PID 1 has container={pid1_env}")
    if cgroup_runtime:
        evidence.append(f"cgroup path {path}")
    if mount and overlay:
        evidence.append(f"/ is {mount['fstype']}")
    namespace = pid_namespace(root)["pid_namespace"]
    if namespace == "own":
        evidence.append("own PID namespace")
    against = ["host PID namespace"] if namespace == "host" else []
    if evidence and not against:
        verdict: bool | None = True
    elif against and not evidence:
        verdict = False
    else:
        verdict = None
        reasons["in_container"] = "conflicting evidence" if evidence else "no evidence either way"

    # The runtime, from what each one leaves behind, the most specific first.
    candidates = [
        (systemd_container, "/run/systemd/container"),
        (pid1_env, "PID 1's container variable"),
        (containerenv and containerenv.get("engine", "podman").split("-")[0], "/run/.containerenv"),
        (cgroup_runtime, f"cgroup path {path}"),
        ("docker" if dockerenv and not discounted else None, "/.dockerenv"),
    ]
    runtime, runtime_source = next(((v, s) for v, s in candidates if v), (None, None))
    if runtime is None:
        reasons["runtime"] = "no runtime marker, container variable or runtime cgroup path"
    elif not verdict:
        reasons["runtime"] = f"{runtime_source} suggests {runtime}, but see in_container"
        runtime = runtime_source = None
    return {
        "in_container": verdict,
        "evidence": evidence,
        "evidence_against": against,
        "evidence_discounted": discounted,
        "markers": markers,
        "containerenv": containerenv,
        "systemd_container": systemd_container,
        "pid1_container_env": pid1_env,
        "runtime": runtime,
        "runtime_source": runtime_source,
        "cgroup_version": cgroup_version(cgroups) if cgroups else None,
        "cgroup_path": path,
        "cgroups": cgroups,
        "root_fstype": mount["fstype"] if mount else None,
        "root_source": mount["source"] if mount else None,
        "overlay_root": overlay,
        "reasons": reasons,
    }


def supervisor(root: str = "/", environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Whether systemd supervises this process (the seed's host deployment): systemd sets
    INVOCATION_ID for a service and puts it in a cgroup named after its unit."""
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
    status, _ = read_status(root)
    ppid = status.get("PPid") if status else None
    parent = None
    if ppid == "0":
        # PPid 0 has two causes: PID 1 of its namespace has no parent, and a process that
        # entered the namespace with setns (nsenter, `docker exec`) has one outside it.
        fields = status or {}
        ids = _ids(fields.get("NSpid") or fields.get("Pid"))  # its pid in its own namespace last
        pid = ids[-1] if ids else None
        reasons["parent"] = (
            "PPid 0: the first process of its PID namespace"
            if pid in (1, None)
            else f"PPid 0: its parent is outside its PID namespace (pid {pid} there: "
            "entered with setns, as nsenter and docker exec do)"
        )
    elif ppid:
        parent = {"pid": int(ppid), "command": read_cmdline(root, ppid)}
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


def capability_names(mask: int) -> list[str]:
    return [
        CAPABILITIES[bit] if bit < len(CAPABILITIES) else f"CAP_{bit}"
        for bit in range(mask.bit_length())
        if mask >> bit & 1
    ]


def privileges(root: str = "/") -> dict[str, Any]:
    """Who the process runs as and what the kernel lets it do."""
    status, why = read_status(root)
    result: dict[str, Any] = dict.fromkeys(
        ("uid", "euid", "gid", "egid", "user", "groups", "cap_eff", "capabilities")
        + ("no_new_privs", "seccomp", "umask", "read_only_root")
    )
    if status is not None:
        uids, gids = _ids(status.get("Uid")), _ids(status.get("Gid"))
        if len(uids) > 1 and len(gids) > 1:
            result.update(uid=uids[0], euid=uids[1], gid=gids[0], egid=gids[1])
        result["groups"] = _ids(status.get("Groups"))
        if "CapEff" in status:
            result["cap_eff"] = status["CapEff"]
            result["capabilities"] = capability_names(int(status["CapEff"], 16))
        if "NoNewPrivs" in status:
            result["no_new_privs"] = status["NoNewPrivs"] == "1"
        if "Seccomp" in status:
            result["seccomp"] = SECCOMP_MODES.get(int(status["Seccomp"]), status["Seccomp"])
        result["umask"] = status.get("Umask")  # Linux 4.7+
    elif hasattr(os, "geteuid"):
        # No /proc (macOS, BSD): the ids are still known; the rest is not.
        result.update(uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(), egid=os.getegid())
        result["groups"] = os.getgroups()
    if result["euid"] is not None:
        result["user"] = read_passwd(root).get(result["euid"])

    mount, mount_why = _root_mount(root)
    if mount is not None:
        options = mount["options"].split(",") + mount["super_options"].split(",")
        result["read_only_root"] = "ro" in options
    elif hasattr(os, "statvfs"):
        result["read_only_root"] = bool(os.statvfs(root).f_flag & os.ST_RDONLY)

    reasons = {}
    for key, value in result.items():
        if value is None:
            reasons[key] = why or "not in /proc/self/status"
    if result["user"] is None and result["euid"] is not None:
        reasons["user"] = f"uid {result['euid']} is not in /etc/passwd"
    if result["read_only_root"] is None:
        reasons["read_only_root"] = str(mount_why)
    result["reasons"] = reasons
    return result


def collect(root: str = "/", environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The whole report, as plain data that ``json.dumps`` takes."""
    return {
        "platform": sys.platform,
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "collected_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "root": root,
        "dependencies": dependencies(),
        "processes": processes(root),
        "container": container(root),
        "supervisor": supervisor(root, environ),
        "privileges": privileges(root),
    }


# -- presenting ------------------------------------------------------------------------------


def _get(report: Mapping[str, Any], section: str, key: str) -> Any:
    return (report.get(section) or {}).get(key)


def _unknown(report: Mapping[str, Any], section: str, key: str) -> str:
    reason = ((report.get(section) or {}).get("reasons") or {}).get(key)
    return f"unknown ({reason})" if reason else "unknown"


def _yes_no(value: bool | None, report: Mapping[str, Any], section: str, key: str) -> str:
    return _unknown(report, section, key) if value is None else "yes" if value else "no"


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
    on_path = _get(report, "dependencies", "on_path") or {}
    for name in names:
        if on_path.get(name):
            return on_path[name]["path"]
    return "not found"


def summary_rows(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The seed's comparison, one (label, value) row per fact, as short strings."""
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
    if sup.get("systemd"):
        supervised = f"systemd ({sup.get('unit') or 'INVOCATION_ID set'})"
    elif sup.get("systemd") is False:
        supervised = "not systemd"
    else:
        supervised = _unknown(report, "supervisor", "systemd")
    if sup.get("parent"):
        parent = sup["parent"]["command"] or f"pid {sup['parent']['pid']} (command left out)"
    else:
        parent = _unknown(report, "supervisor", "parent")
    user = (
        f"{priv.get('user') or '?'} (uid {priv['euid']})"
        if priv.get("euid") is not None
        else _unknown(report, "privileges", "euid")
    )
    if box.get("runtime"):
        runtime_text = f"{box['runtime']} (from {box.get('runtime_source')})"
    elif box.get("in_container") is False:
        runtime_text = "none"
    else:
        runtime_text = _unknown(report, "container", "runtime")
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
    """(label, A's value, B's value, differs), the differences first, each group in the
    seed's order."""
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
        cell = lambda text: _clip(text, 70).replace("|", "\\|")  # noqa: E731
        lines = [f"| | {labels[0]} | {labels[1]} | |", "|---|---|---|---|"]
        for label, value_a, value_b, differs in rows:
            mark = "differs" if differs else "same"
            lines.append(f"| {label} | {cell(value_a)} | {cell(value_b)} | {mark} |")
        return "\n".join(lines)
    table = [["", labels[0], labels[1], ""]]
    table += [[label, x, y, "differs" if d else "same"] for label, x, y, d in rows]
    return format_table(table, width=48)


# -- the command line ------------------------------------------------------------------------


def without_commands(
    report: dict[str, Any], keep: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, Any]:
    """The report with other processes' command lines left out, for reports saved where
    others read them: a command line can carry a password or a token. PID 1's and the
    reporting process's own stay, and those of the processes ``keep`` accepts (the app's)."""
    own = {1, report.get("pid")}
    parent = _get(report, "supervisor", "parent")
    for process in [*(_get(report, "processes", "visible") or []), *([parent] if parent else [])]:
        if process["pid"] not in own and not (keep and keep(process)):
            process["command"] = None
    return report


@click.group("isolation", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-commands", is_flag=True, help="Leave out the command lines of other processes.")
@click.pass_context
def isolation_command(ctx: click.Context, as_json: bool, no_commands: bool) -> None:
    """Report what this process can see: dependencies, processes, container, privileges."""
    if ctx.invoked_subcommand is not None:
        return
    report = collect()
    if no_commands:
        report = without_commands(report)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))


def _load(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        raise click.ClickException(f"cannot read the report {path}: {e}") from e
    if not isinstance(report, dict):
        raise click.ClickException(f"{path} does not hold an isolation report")
    return report


@isolation_command.command("compare")
@click.argument("first", type=click.Path(dir_okay=False))
@click.argument("second", type=click.Path(dir_okay=False))
@click.option("--labels", help="Column titles as A,B (default: the files' names).")
@click.option("--markdown", is_flag=True, help="Print a Markdown table.")
def compare_command(first: str, second: str, labels: str | None, markdown: bool) -> None:
    """Put two JSON reports side by side, the differences first."""
    if labels is None:
        pair = (Path(first).stem, Path(second).stem)
    else:
        names = labels.split(",")
        if len(names) != 2:
            raise click.BadParameter("give two labels separated by a comma", param_hint="--labels")
        pair = (names[0].strip(), names[1].strip())
    click.echo(format_compare(_load(first), _load(second), pair, markdown=markdown))


def init_app(app: Flask) -> None:
    """Register ``flask isolation`` and the operator page (off unless ISOLATION_PAGE)."""
    from flaskr import isolation_views

    app.cli.add_command(isolation_command)
    app.register_blueprint(isolation_views.bp)


if __name__ == "__main__":  # pragma: no cover - `python -m flaskr.isolation`, no app needed
    isolation_command()
