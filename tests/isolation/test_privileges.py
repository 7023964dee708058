"""flaskr.isolation.privileges: what is unknown without /proc, os.geteuid or os.statvfs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flaskr.isolation import formatting
from flaskr.isolation.privileges import privileges


def test_no_ids_no_statvfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows: neither /proc nor os.geteuid nor os.statvfs."""
    monkeypatch.delattr(os, "geteuid")
    monkeypatch.delattr(os, "statvfs")
    priv = privileges(str(tmp_path))
    assert priv["uid"] is None and priv["read_only_root"] is None
    assert priv["reasons"]["read_only_root"].startswith("cannot read /proc/self/mountinfo")
    rows = dict(formatting.summary_rows({"privileges": priv}))
    assert rows["user"].startswith("unknown") and rows["read-only root"].startswith("unknown")
