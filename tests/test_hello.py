import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_wsgi_entry_builds_the_app(monkeypatch) -> None:
    """``gunicorn hello:app`` imports this module from inside the package folder."""
    monkeypatch.setenv("FLASKR_SECRET_KEY", "h-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    sys.modules.pop("flaskr.hello", None)
    hello = importlib.import_module("flaskr.hello")
    assert hello.app.name == "flaskr"
    assert hello.app.test_client().get("/hello").data == b"Hello, World!"


def test_wsgi_entry_refuses_without_secret(monkeypatch) -> None:
    sys.modules.pop("flaskr.hello", None)
    with pytest.raises(RuntimeError, match="refusing to start without a real secret key"):
        importlib.import_module("flaskr.hello")


def test_gunicorn_prints_a_wrong_setting_alone_and_stops(tmp_path) -> None:
    """The README's `gunicorn hello:app` with a bad value: one line naming it, no traceback."""
    flaskr = Path(__file__).resolve().parent.parent / "flaskr"
    env = {
        **os.environ,
        "FLASKR_SECRET_KEY": "g-9f86d081884c7d65a2f0e3b1c4d7e6f8",
        "FLASKR_POSTS_PER_PAGE": "abc",
        "FLASKR_INSTANCE_PATH": str(tmp_path / "instance"),
    }
    done = subprocess.run(
        [
            Path(sys.executable).parent / "gunicorn",
            "--workers",
            "1",
            "--bind",
            "127.0.0.1:0",
            "hello:app",
        ],
        cwd=flaskr,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "flaskr: FLASKR_POSTS_PER_PAGE must be a whole number of at least 1, not 'abc'.\n" in (
        done.stderr
    )
