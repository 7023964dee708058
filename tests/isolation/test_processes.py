"""flaskr.isolation.processes: the PID namespace and hidepid, on trees a test writes."""

from __future__ import annotations

from pathlib import Path

from flaskr.isolation.processes import pid_namespace, processes
from tests.isolation import write


def test_nested_nspid(tmp_path: Path) -> None:
    """/proc mounted outside the namespace (unshare --pid --fork without --mount-proc)."""
    write(tmp_path, "proc/self/status", "NSpid:\t7411\t2\n")
    namespace = pid_namespace(str(tmp_path))
    assert namespace["pid_namespace"] == "own" and namespace["nspid"] == [7411, 2]
    assert namespace["evidence"].startswith("NSpid lists 2 pids")
    assert namespace["reasons"]["ns_pid"].startswith("cannot read /proc/self/ns/pid")


def test_proc_hidepid(tmp_path: Path) -> None:
    write(tmp_path, "proc/self/mountinfo", "5 1 0:5 / /proc rw - proc proc rw,hidepid=invisible\n")
    assert processes(str(tmp_path))["proc_hidepid"] == "hidepid=invisible"
    write(tmp_path, "proc/self/mountinfo", "5 1 0:5 / /proc rw - proc proc rw\n")
    assert processes(str(tmp_path))["proc_hidepid"] is None
