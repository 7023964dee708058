"""The name a started worker takes is the one deploy/systemd/flaskr-reload waits for."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: flaskr-reload's functions, as its Python (the system's, without flaskr's packages) has them.
RELOAD = runpy.run_path(str(ROOT / "deploy" / "systemd" / "flaskr-reload"), run_name="reload")
#: A worker at the end of post_worker_init: the name taken, then serving (here: waiting).
WORKER = (
    "import sys; from flaskr.serving.worker_name import call_itself_started;"
    " call_itself_started(); print('started', flush=True); sys.stdin.read()"
)


def test_flaskr_reload_sees_a_started_worker_as_started() -> None:
    name = RELOAD["started_name"](str(ROOT))
    with subprocess.Popen(
        [sys.executable, "-c", WORKER],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as worker:
        assert worker.stdout.readline() == "started\n"
        assert RELOAD["started"](worker.pid, name)
        worker.communicate("")
    assert not RELOAD["started"](worker.pid, name)  # gone


def test_flaskr_reload_fails_plainly_without_the_name(tmp_path: Path, capsys) -> None:
    """A code folder without the file: the reload stops, naming it, before it signals anything."""
    with pytest.raises(SystemExit) as failed:
        RELOAD["started_name"](str(tmp_path))
    assert "flaskr-reload: cannot read the name a started worker takes from" in str(
        failed.value.code
    )
