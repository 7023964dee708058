"""flaskr.isolation.probe: the whole report on recorded /proc trees
(tests/fixtures/isolation/<case>/) and on trees a test writes; each section's own cases are
in tests/isolation/test_<section>.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flaskr.isolation import formatting, probe, proc
from flaskr.isolation.privileges import privileges
from flaskr.isolation.supervisor import supervisor
from tests.isolation import case, write


def test_host_vm_is_no_container_despite_its_leftover_dockerenv() -> None:
    """The CI machine: a VM with the host's PID namespace and a stray /.dockerenv on ext4."""
    report = probe.collect(case("host"), environ={})
    procs, box = report["processes"], report["container"]
    assert procs["pid_namespace"] == "host"
    assert procs["pid1"].startswith("/process_api")
    assert procs["pid1_ns_pid"] is None and "pid1_ns_pid" in procs["reasons"]
    assert procs["count"] == 5
    assert procs["visible"][1] == {"pid": 2, "uid": 0, "user": "root", "command": "[kthreadd]"}
    # The VM keeps a stray /.dockerenv on ext4: listed, but not taken as evidence.
    assert box["markers"] == ["/.dockerenv"]
    assert box["evidence"] == [] and box["evidence_discounted"]
    assert box["in_container"] is False
    assert box["runtime"] is None and box["reasons"]["runtime"].startswith("no runtime")
    assert box["cgroup_version"] == "hybrid"
    assert box["cgroup_path"] == "/process_api/ee924c43c7f60e4572e0bfd7ba16f3aa"
    assert box["pid1_container_env"] is None
    assert report["supervisor"]["systemd"] is False
    priv = report["privileges"]
    assert priv["user"] == "root" and priv["euid"] == 0
    assert "CAP_SYS_RESOURCE" not in priv["capabilities"] and len(priv["capabilities"]) == 40
    assert priv["no_new_privs"] is False and priv["seccomp"] == "disabled"
    assert priv["umask"] == "0022" and priv["read_only_root"] is False
    json.dumps(report)


def test_unshare() -> None:
    report = probe.collect(case("unshare"), environ={})
    procs, box = report["processes"], report["container"]
    # Its own /proc shows one pid in NSpid: only the namespace inode tells.
    assert procs["nspid"] == [1]
    assert procs["pid_namespace"] == "own"
    assert "not the initial" in procs["evidence"]
    assert procs["count"] == 1
    assert box["in_container"] is True and box["evidence"] == ["own PID namespace"]
    assert box["runtime"] is None
    assert report["supervisor"]["parent"] is None
    assert dict(formatting.summary_rows(report))["parent process"] == (
        "unknown (PPid 0: the first process of its PID namespace)"
    )


def test_docker_cgroup_v1() -> None:
    report = probe.collect(case("docker-v1"), environ={})
    procs, box = report["processes"], report["container"]
    assert procs["pid_namespace"] == "own"
    assert procs["pid1"].startswith("/opt/venv/bin/python3 /opt/venv/bin/gunicorn")
    assert [p["pid"] for p in procs["visible"]] == [1, 7, 8, 9, 23]
    assert box["in_container"] is True
    assert box["runtime"] == "docker" and box["runtime_source"].startswith("cgroup path /docker/")
    assert box["cgroup_version"] == "v1"
    assert box["cgroups"]["cpuacct"] == box["cgroups"]["cpu"]
    assert box["overlay_root"] is True and "marker /.dockerenv" in box["evidence"]
    assert report["supervisor"]["systemd"] is False
    assert report["supervisor"]["unit"] is None
    assert report["supervisor"]["parent"]["pid"] == 1
    caps = report["privileges"]["capabilities"]
    assert caps is not None and len(caps) == 14 and "CAP_NET_RAW" in caps
    assert report["privileges"]["seccomp"] == "filter"


def test_podman_cgroup_v2() -> None:
    report = probe.collect(case("podman-v2"), environ={})
    box, priv = report["container"], report["privileges"]
    assert box["containerenv"]["engine"] == "podman-4.3.1"
    assert box["pid1_container_env"] == "podman"
    assert box["runtime"] == "podman" and box["runtime_source"] == "PID 1's container variable"
    assert box["cgroup_version"] == "v2" and box["cgroup_path"] == "/"
    assert priv["user"] == "app" and priv["groups"] == [1000]
    assert priv["capabilities"] == [] and priv["no_new_privs"] is True
    assert priv["read_only_root"] is True


def test_systemd_service() -> None:
    report = probe.collect(case("systemd-service"), environ={"INVOCATION_ID": "0f1e"})
    sup = report["supervisor"]
    assert sup["systemd"] is True and sup["unit"] == "flaskr.service"
    assert sup["evidence"] == ["INVOCATION_ID is set", "cgroup /system.slice/flaskr.service"]
    assert sup["pid1_name"] == "systemd"
    assert sup["parent"]["command"].endswith("hello:app")
    assert report["container"]["in_container"] is False
    assert report["privileges"]["user"] == "ubuntu"
    assert report["privileges"]["gid"] == 33
    visible = report["processes"]["visible"]
    assert {"pid": 2, "uid": 0, "user": "root", "command": "[kthreadd]"} in visible
    # Without INVOCATION_ID, the cgroup alone still names the unit.
    assert supervisor(case("systemd-service"), environ={})["systemd"] is True


def test_nspawn_service() -> None:
    """Recorded from the host suite's machine: a gunicorn worker of the installed unit, under a
    real systemd in systemd-nspawn (ProtectProc=invisible, PrivateUsers=yes, no capabilities)."""
    report = probe.collect(case("nspawn-service"), environ={"INVOCATION_ID": "cf4e"})
    procs, box, sup, priv = (
        report[k] for k in ("processes", "container", "supervisor", "privileges")
    )
    # The machine is a container on the CI host: its PID namespace is not the initial one.
    assert procs["pid_namespace"] == "own"
    # ProtectProc=invisible: only the service user's processes are listed, PID 1 is hidden.
    assert procs["proc_hidepid"] == "hidepid=invisible"
    assert procs["count"] == 4 and {p["user"] for p in procs["visible"]} == {"flaskr"}
    assert all(p["command"].endswith("hello:app") for p in procs["visible"])
    assert procs["pid1"] is None
    assert procs["reasons"]["pid1"] == "hidden: /proc is mounted with hidepid=invisible"
    assert box["in_container"] is True and box["runtime"] == "systemd-nspawn"
    assert box["runtime_source"] == "/run/systemd/container"
    assert sup["systemd"] is True and sup["unit"] == "flaskr.service"
    assert sup["parent"]["command"].endswith("hello:app")
    assert priv["user"] == "flaskr" and priv["euid"] != 0
    assert priv["capabilities"] == [] and priv["no_new_privs"] is True
    assert priv["seccomp"] == "filter" and priv["read_only_root"] is True
    rows = dict(formatting.summary_rows(report))
    assert rows["processes visible"] == "4 (/proc hidepid=invisible: other users' are hidden)"
    assert rows["PID 1"] == "unknown (hidden: /proc is mounted with hidepid=invisible)"


def test_not_linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    report = probe.collect(str(tmp_path), environ={})
    procs, box, priv = report["processes"], report["container"], report["privileges"]
    assert procs["pid_namespace"] is None
    assert "not Linux" in procs["reasons"]["pid_namespace"]
    assert procs["count"] is None and "not Linux" in procs["reasons"]["visible"]
    assert procs["pid1"] is None and procs["nspid"] is None
    assert box["in_container"] is None
    assert box["reasons"]["in_container"] == "no evidence either way"
    assert box["cgroup_path"] is None and box["root_fstype"] is None
    assert report["supervisor"]["systemd"] is None
    assert priv["uid"] == os.getuid() and priv["capabilities"] is None
    assert "not Linux" in priv["reasons"]["capabilities"]
    assert priv["read_only_root"] is False  # from statvfs
    rows = dict(formatting.summary_rows(report))
    assert rows["PID namespace"].startswith("unknown (cannot read /proc/self/ns/pid")
    assert rows["supervisor"].startswith("unknown")
    assert rows["user"].endswith(f"(uid {os.getuid()})")


def test_old_kernels_and_truncated_files_give_unknowns_with_reasons(tmp_path: Path) -> None:
    """Old kernels, truncated files, unknown users and capabilities."""
    write(tmp_path, "proc/self/status", "Name:\tx\nno colon here\nUid:\t5\t5\t5\t5\nGid:\t5\n")
    write(tmp_path, "proc/self/cgroup", "garbage\n3:memory:/\n")
    write(tmp_path, "proc/self/mountinfo", "short line\n1 0 8:1 / /other rw - ext4 /dev/sda1 rw\n")
    write(tmp_path, "proc/1/environ", "PATH=/bin\0container=\0")
    write(tmp_path, "proc/7/status", "Name:\tnouid\n")
    write(tmp_path, "proc/7/cmdline", "")
    write(tmp_path, "proc/8/status", "Name:\tgone\n")  # no cmdline: it exited
    write(tmp_path, "etc/passwd", "# comment\nbad line\n")
    (tmp_path / "proc/self/ns").mkdir()
    os.symlink("pid:[notanumber]", tmp_path / "proc/self/ns/pid")
    report = probe.collect(str(tmp_path), environ={})
    procs, box, priv = report["processes"], report["container"], report["privileges"]
    assert procs["pid_namespace"] is None
    assert procs["reasons"]["pid_namespace"] == "unexpected ns link 'pid:[notanumber]'"
    assert procs["reasons"]["nspid"].startswith("no NSpid")
    assert procs["visible"] == [{"pid": 7, "uid": None, "user": None, "command": "[nouid]"}]
    assert procs["reasons"]["pid1"] == "cannot read /proc/1/cmdline: No such file or directory"
    assert box["cgroup_version"] == "v1" and box["cgroup_path"] == "/"
    assert box["root_fstype"] is None and box["reasons"]["root_fstype"].startswith("no mount at /")
    assert box["pid1_container_env"] is None
    assert priv["uid"] is None and priv["reasons"]["uid"] == "not in /proc/self/status"
    assert priv["read_only_root"] is not None  # statvfs of the folder
    supervised = supervisor(str(tmp_path), environ={})
    assert supervised["systemd"] is False and supervised["unit"] is None
    write(tmp_path, "proc/self/status", "Uid:\t4242\t4242\t0\t0\nGid:\t0\t0\t0\t0\nSeccomp:\t9\n")
    priv = privileges(str(tmp_path))
    assert priv["user"] is None and priv["reasons"]["user"] == "uid 4242 is not in /etc/passwd"
    assert priv["seccomp"] == "9"
    assert proc.read_cmdline(str(tmp_path), "99") is None
