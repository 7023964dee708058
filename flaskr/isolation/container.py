"""The report's container section: whether a container runtime put this process where it runs.

A verdict only when every trace a runtime leaves points the same way; leftovers (a stray
``/.dockerenv`` on a VM) are set aside and said so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from flaskr.isolation.proc import (
    cgroup_path,
    cgroup_version,
    parse_cgroup,
    parse_containerenv,
    read_text,
    root_mount,
)
from flaskr.isolation.processes import pid_namespace

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
