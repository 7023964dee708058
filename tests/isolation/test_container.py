"""flaskr.isolation.container: runtime markers, on trees a test writes."""

from __future__ import annotations

import os
from pathlib import Path

from flaskr.isolation import formatting, proc
from flaskr.isolation.container import container
from tests.isolation import write


def test_runtime_markers(tmp_path: Path) -> None:
    """A marker against a host PID namespace gives no verdict and no runtime."""
    write(tmp_path, "run/systemd/container", "systemd-nspawn\n")
    (tmp_path / "proc/self/ns").mkdir(parents=True)
    os.symlink(f"pid:[{proc.INIT_PID_NS_INODE}]", tmp_path / "proc/self/ns/pid")
    box = container(str(tmp_path))
    assert box["markers"] == ["/run/systemd/container"]
    assert box["in_container"] is None and box["reasons"]["in_container"] == "conflicting evidence"
    assert box["runtime"] is None
    assert box["reasons"]["runtime"].startswith("/run/systemd/container suggests systemd-nspawn")
    # A /.dockerenv alone (no mountinfo to discount it) names docker.
    (tmp_path / "proc/self/ns/pid").unlink()
    (tmp_path / "run/systemd/container").unlink()
    write(tmp_path, ".dockerenv", "")
    box = container(str(tmp_path))
    assert box["in_container"] is True and box["runtime"] == "docker"
    assert box["runtime_source"] == "/.dockerenv"
    rows = dict(formatting.summary_rows({"container": box}))
    assert rows["runtime"] == "docker (from /.dockerenv)"
    assert rows["in a container"] == "yes"
