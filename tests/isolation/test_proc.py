"""flaskr.isolation.proc: its parsers on edge cases; test_probe.py reads the recorded trees
through them."""

from __future__ import annotations

from flaskr.isolation import proc


def test_parsers_on_odd_input() -> None:
    """Links, masks, cgroups and files the recorded trees do not hold."""
    assert proc.ns_inode(None) is None
    assert proc.ns_inode("pid") is None
    assert proc.ns_inode("pid:[12]") == 12
    assert proc.capability_names(1 << 41 | 1) == ["CAP_CHOWN", "CAP_41"]
    assert proc.cgroup_path({}) is None
    assert proc.cgroup_version({"": "/"}) == "v2"
    assert proc.parse_containerenv('engine="podman-4"\nnoise\n') == {"engine": "podman-4"}
    mounts = proc.parse_mountinfo("1 0 0:1 / /proc rw - proc proc\n")
    assert mounts[0]["super_options"] == ""
