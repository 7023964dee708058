"""The report's sections, and ``collect`` for the whole report.

Each section is what one of the seed's claims about a container and a host turns on: the
dependencies, the processes this one can see, the container around it, its
supervisor and its privileges. ``collect`` gathers them all as plain data that ``json.dumps``
takes; where a value cannot be told it is None and the section's ``reasons`` says why.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flaskr.isolation.proc import (
    INIT_PID_NS_INODE,
    capability_names,
    cgroup_path,
    cgroup_version,
    int_fields,
    ns_inode,
    parse_cgroup,
    parse_containerenv,
    parse_mountinfo,
    read_cmdline,
    read_link,
    read_passwd,
    read_status,
    read_text,
    root_mount,
    unreadable,
)

SECCOMP_MODES = {0: "disabled", 1: "strict", 2: "filter"}

#: Used when no requirements.txt sits beside the package (an installed wheel).
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

#: The lock in the folder that holds the package: a checkout, the image's /, a host install.
REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"

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


def _which(name: str) -> dict[str, str] | None:
    """Where ``name`` resolves on PATH, and the file behind the symlinks (a venv's python)."""
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
    """The interpreter, its venv, python and pip on PATH, and the app's package versions.

    What the seed says a container keeps inside.
    """
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


@dataclass
class Traces:
    """What container runtimes leave behind, as this process sees it.

    Read once, so the functions below can weigh it; ``reasons`` says why a trace could not
    be read.
    """

    dockerenv: bool
    containerenv: dict[str, str] | None
    systemd_container: str | None
    pid1_env: str | None
    cgroups: dict[str, str] | None
    cgroup_path: str | None
    mount: dict[str, str] | None
    pid_namespace: str | None
    reasons: dict[str, str]

    @property
    def overlay(self) -> bool | None:
        """Whether / is an overlay, as a container engine mounts an image's layers."""
        return self.mount["fstype"] in ("overlay", "fuse-overlayfs") if self.mount else None

    @property
    def markers(self) -> list[str]:
        """The files runtimes write into a container, those that are there."""
        present = (
            ("/.dockerenv", self.dockerenv),
            ("/run/.containerenv", self.containerenv is not None),
            ("/run/systemd/container", bool(self.systemd_container)),
        )
        return [name for name, there in present if there]

    @property
    def cgroup_runtime(self) -> str | None:
        """The runtime the cgroup path is named after, if any."""
        path = self.cgroup_path or ""
        return next((name for needle, name in CGROUP_RUNTIMES if needle in path), None)


def _read_traces(root: str) -> Traces:
    """Read the markers, PID 1's environment, the cgroup, the root mount and the PID namespace."""
    reasons: dict[str, str] = {}
    containerenv, _ = read_text(root, "run/.containerenv")
    systemd_container, _ = read_text(root, "run/systemd/container")
    pid1_env, pid1_env_why = _pid1_container_env(root)
    if pid1_env is None:
        reasons["pid1_container_env"] = str(pid1_env_why)
    cgroup_text, cgroup_why = read_text(root, "proc/self/cgroup")
    cgroups = parse_cgroup(cgroup_text) if cgroup_text is not None else None
    if cgroups is None:
        reasons["cgroup_path"] = str(cgroup_why)
    mount, mount_why = root_mount(root)
    if mount is None:
        reasons["root_fstype"] = str(mount_why)
    return Traces(
        dockerenv=os.path.exists(os.path.join(root, ".dockerenv")),
        containerenv=parse_containerenv(containerenv) if containerenv is not None else None,
        systemd_container=systemd_container.strip() if systemd_container else None,
        pid1_env=pid1_env,
        cgroups=cgroups,
        cgroup_path=cgroup_path(cgroups) if cgroups else None,
        mount=mount,
        pid_namespace=pid_namespace(root)["pid_namespace"],
        reasons=reasons,
    )


def _evidence(traces: Traces) -> tuple[list[str], list[str]]:
    """The traces that point to a container, and those set aside as leftovers.

    Docker writes /.dockerenv into the container's overlay, so on a plain disk it is what
    remains of an image turned into a VM or chroot (this project's CI machine has one).
    """
    evidence = [f"marker {m}" for m in traces.markers]
    discounted = []
    if traces.dockerenv and traces.mount and not traces.overlay:
        evidence.remove("marker /.dockerenv")
        mount = traces.mount
        discounted.append(f"/.dockerenv, since / is {mount['fstype']} on {mount['source']}")
    if traces.pid1_env:
        evidence.append(f"PID 1 has container={traces.pid1_env}")
    if traces.cgroup_runtime:
        evidence.append(f"cgroup path {traces.cgroup_path}")
    if traces.mount and traces.overlay:
        evidence.append(f"/ is {traces.mount['fstype']}")
    if traces.pid_namespace == "own":
        evidence.append("own PID namespace")
    return evidence, discounted


def _verdict(evidence: list[str], against: list[str]) -> tuple[bool | None, str | None]:
    """Yes or no only when every trace points the same way; else no verdict, and why."""
    if evidence and not against:
        return True, None
    if against and not evidence:
        return False, None
    return None, "conflicting evidence" if evidence else "no evidence either way"


def _runtime(traces: Traces, discounted: list[str]) -> tuple[str | None, str | None]:
    """The runtime and the trace that names it, the most specific trace first."""
    engine = traces.containerenv and traces.containerenv.get("engine", "podman").split("-")[0]
    candidates = [
        (traces.systemd_container, "/run/systemd/container"),
        (traces.pid1_env, "PID 1's container variable"),
        (engine, "/run/.containerenv"),
        (traces.cgroup_runtime, f"cgroup path {traces.cgroup_path}"),
        ("docker" if traces.dockerenv and not discounted else None, "/.dockerenv"),
    ]
    return next(((value, source) for value, source in candidates if value), (None, None))


def container(root: str = "/") -> dict[str, Any]:
    """Whether this process runs in a container, and which runtime.

    Told from the markers runtimes leave, the cgroup path, the root mount and the PID
    namespace. Markers alone can mislead (an image exported as a VM's disk keeps
    /.dockerenv), so a marker against a host PID namespace gives no verdict.
    """
    traces = _read_traces(root)
    reasons = dict(traces.reasons)
    evidence, discounted = _evidence(traces)
    against = ["host PID namespace"] if traces.pid_namespace == "host" else []
    verdict, why_none = _verdict(evidence, against)
    if why_none:
        reasons["in_container"] = why_none
    runtime, runtime_source = _runtime(traces, discounted)
    if runtime is None:
        reasons["runtime"] = "no runtime marker, container variable or runtime cgroup path"
    elif not verdict:
        reasons["runtime"] = f"{runtime_source} suggests {runtime}, but see in_container"
        runtime = runtime_source = None
    mount = traces.mount
    return {
        "in_container": verdict,
        "evidence": evidence,
        "evidence_against": against,
        "evidence_discounted": discounted,
        "markers": traces.markers,
        "containerenv": traces.containerenv,
        "systemd_container": traces.systemd_container,
        "pid1_container_env": traces.pid1_env,
        "runtime": runtime,
        "runtime_source": runtime_source,
        "cgroup_version": cgroup_version(traces.cgroups) if traces.cgroups else None,
        "cgroup_path": traces.cgroup_path,
        "cgroups": traces.cgroups,
        "root_fstype": mount["fstype"] if mount else None,
        "root_source": mount["source"] if mount else None,
        "overlay_root": traces.overlay,
        "reasons": reasons,
    }


def supervisor(root: str = "/", environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Whether systemd supervises this process, as in the seed's host deployment.

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
