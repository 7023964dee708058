"""flaskr.isolation.supervisor: the parent outside the PID namespace, on trees a test writes."""

from __future__ import annotations

from pathlib import Path

from flaskr.isolation.supervisor import supervisor
from tests.isolation import write


def test_parent_outside_the_namespace(tmp_path: Path) -> None:
    """PPid 0 for a process that is not PID 1 of its namespace: nsenter or docker exec."""
    write(tmp_path, "proc/self/status", "Pid:\t297\nPPid:\t0\nNSpid:\t297\n")
    reason = supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert reason.startswith("PPid 0: its parent is outside its PID namespace (pid 297 there")
    write(tmp_path, "proc/self/status", "Pid:\t12\nPPid:\t0\n")
    reason = supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert "(pid 12 there" in reason
    write(tmp_path, "proc/self/status", "PPid:\t0\n")
    reason = supervisor(str(tmp_path), environ={})["reasons"]["parent"]
    assert reason == "PPid 0: the first process of its PID namespace"
