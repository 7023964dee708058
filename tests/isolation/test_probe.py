"""flaskr.isolation.probe: the report's sections on recorded /proc trees
(tests/fixtures/isolation/<case>/) and on trees a test writes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from flaskr.isolation import formatting, probe, proc
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
    assert probe.supervisor(case("systemd-service"), environ={})["systemd"] is True


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


def test_parent_outside_the_namespace(tmp_path: Path) -> None:
    """PPid 0 for a process that is not PID 1 of its namespace: nsenter or docker exec."""
    write(tmp_path, "proc/self/status", "Pid:\t297\nPPid:\t0\nNSpid:\t297\n")
    reason = probe.supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert reason.startswith("PPid 0: its parent is outside its PID namespace (pid 297 there")
    write(tmp_path, "proc/self/status", "Pid:\t12\nPPid:\t0\n")
    reason = probe.supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert "(pid 12 there" in reason
    write(tmp_path, "proc/self/status", "PPid:\t0\n")
    reason = probe.supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert reason == "PPid 0: the first process of its PID namespace"


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


def test_no_ids_no_statvfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: neither /proc nor os.geteuid nor os.statvfs."""
    monkeypatch.delattr(os, "geteuid")
    monkeypatch.delattr(os, "statvfs")
    priv = probe.privileges(str(tmp_path))
    assert priv["uid"] is None and priv["read_only_root"] is None
    assert priv["reasons"]["read_only_root"].startswith("cannot read /proc/self/mountinfo")
    rows = dict(formatting.summary_rows({"privileges": priv}))
    assert rows["user"].startswith("unknown") and rows["read-only root"].startswith("unknown")


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
    supervisor = probe.supervisor(str(tmp_path), environ={})
    assert supervisor["systemd"] is False and supervisor["unit"] is None
    write(tmp_path, "proc/self/status", "Uid:\t4242\t4242\t0\t0\nGid:\t0\t0\t0\t0\nSeccomp:\t9\n")
    priv = probe.privileges(str(tmp_path))
    assert priv["user"] is None and priv["reasons"]["user"] == "uid 4242 is not in /etc/passwd"
    assert priv["seccomp"] == "9"
    assert proc.read_cmdline(str(tmp_path), "99") is None


def test_nested_nspid(tmp_path: Path) -> None:
    """/proc mounted outside the namespace (unshare --pid --fork without --mount-proc)."""
    write(tmp_path, "proc/self/status", "NSpid:\t7411\t2\n")
    namespace = probe.pid_namespace(str(tmp_path))
    assert namespace["pid_namespace"] == "own" and namespace["nspid"] == [7411, 2]
    assert namespace["evidence"].startswith("NSpid lists 2 pids")
    assert namespace["reasons"]["ns_pid"].startswith("cannot read /proc/self/ns/pid")


def test_proc_hidepid(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/mountinfo", "5 1 0:5 / /proc rw - proc proc rw,hidepid=invisible\n")
    assert probe.processes(str(tmp_path))["proc_hidepid"] == "hidepid=invisible"
    write(tmp_path, "proc/self/mountinfo", "5 1 0:5 / /proc rw - proc proc rw\n")
    assert probe.processes(str(tmp_path))["proc_hidepid"] is None


def test_runtime_markers(tmp_path: Path) -> None:
    """A marker against a host PID namespace gives no verdict and no runtime."""
    write(tmp_path, "run/systemd/container", "systemd-nspawn\n")
    (tmp_path / "proc/self/ns").mkdir(parents=True)
    os.symlink(f"pid:[{proc.INIT_PID_NS_INODE}]", tmp_path / "proc/self/ns/pid")
    box = probe.container(str(tmp_path))
    assert box["markers"] == ["/run/systemd/container"]
    assert box["in_container"] is None and box["reasons"]["in_container"] == "conflicting evidence"
    assert box["runtime"] is None
    assert box["reasons"]["runtime"].startswith("/run/systemd/container suggests systemd-nspawn")
    # A /.dockerenv alone (no mountinfo to discount it) names docker.
    (tmp_path / "proc/self/ns/pid").unlink()
    (tmp_path / "run/systemd/container").unlink()
    write(tmp_path, ".dockerenv", "")
    box = probe.container(str(tmp_path))
    assert box["in_container"] is True and box["runtime"] == "docker"
    assert box["runtime_source"] == "/.dockerenv"
    rows = dict(formatting.summary_rows({"container": box}))
    assert rows["runtime"] == "docker (from /.dockerenv)"
    assert rows["in a container"] == "yes"


def test_dependencies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment\n\nflask==3.1.3 \\\n    --hash=sha256:ab\n"
        "Psycopg[binary]==3.3.9 ; python_version >= '3.11'\nno-such-package-here==1\n"
    )
    deps = probe.dependencies(requirements)
    assert list(deps["packages"]) == ["flask", "psycopg", "no-such-package-here"]
    assert deps["packages"]["flask"] and deps["packages"]["no-such-package-here"] is None
    assert deps["reasons"]["packages.no-such-package-here"] == "not installed"
    assert deps["packages_source"] == str(requirements)
    deps = probe.dependencies(tmp_path / "missing.txt")
    assert list(deps["packages"]) == probe.MAIN_PACKAGES
    assert deps["in_venv"] == (sys.prefix != sys.base_prefix)
    monkeypatch.setenv("PATH", str(tmp_path))
    deps = probe.dependencies()
    assert deps["on_path"]["python"] is None and deps["on_path"]["pip"] is None
    rows = dict(formatting.summary_rows({"dependencies": deps}))
    assert rows["python on PATH"] == "not found"
    assert rows["pip on PATH"] == "not found"
    monkeypatch.setattr(sys, "executable", "")
    assert probe.dependencies()["executable_realpath"] is None
