"""flaskr/gunicorn.conf.py as gunicorn reads it: from the flaskr/ folder, as the README's
`gunicorn ... hello:app` runs (the image's WORKDIR, the unit's WorkingDirectory=), with
nothing but that folder on the path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

FLASKR = Path(__file__).resolve().parents[1] / "flaskr"
HOOKS = ("on_starting", "when_ready", "pre_fork", "post_worker_init", "worker_exit", "child_exit")
#: gunicorn's own reading of the settings, as `gunicorn hello:app` does it before the app loads.
READ = f"""
import json, sys
sys.argv = ["gunicorn", "hello:app"]
from gunicorn.app.wsgiapp import WSGIApplication
cfg = WSGIApplication().cfg
settings = {{name: getattr(cfg, name) for name in {HOOKS!r}}}
settings = {{name: f"{{hook.__module__}}.{{hook.__name__}}" for name, hook in settings.items()}}
settings["logger_class"] = cfg.logger_class.__module__ + "." + cfg.logger_class.__name__
settings["graceful_timeout"] = cfg.graceful_timeout
settings["preload_app"] = cfg.preload_app
import prometheus_client.values
settings["metrics_values"] = prometheus_client.values.ValueClass.__name__
print(json.dumps(settings))
"""


def read_settings(folder: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FLASKR_"))}
    clean.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.run(
        [sys.executable, "-c", READ],
        cwd=folder,
        env={**clean, "TMPDIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_gunicorn_takes_flaskrs_hooks_and_settings_from_the_flaskr_folder(tmp_path: Path) -> None:
    done = read_settings(FLASKR, tmp_path)
    assert done.returncode == 0, done.stderr
    settings = json.loads(done.stdout)
    for hook in HOOKS:
        assert settings[hook] == f"flaskr.serving.hooks.{hook}"
    assert settings["logger_class"] == "flaskr.serving.logging.JsonLogger"
    assert settings["graceful_timeout"] == 8 and settings["preload_app"] is True
    assert settings["metrics_values"] == "MutexValue"  # metrics off: figures in memory


def test_text_logs_keep_gunicorns_own_format(tmp_path: Path) -> None:
    done = read_settings(FLASKR, tmp_path, FLASKR_LOG_FORMAT="text")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["logger_class"] == "gunicorn.glogging.Logger"


def test_metrics_count_in_a_folder_shared_by_every_worker(tmp_path: Path) -> None:
    """prometheus_client picks where it counts once, when it is first imported: the settings
    give it the shared folder before anything (the app, the hooks) imports it."""
    done = read_settings(FLASKR, tmp_path, FLASKR_METRICS="true")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics_values"] == "MmapedValue"
    (folder,) = tmp_path.glob("flaskr-metrics-*")
    assert folder.is_dir()


def test_without_its_hooks_gunicorn_does_not_start(tmp_path: Path) -> None:
    """A release copied without flaskr/serving/ would serve with no worker holding the serving
    lock, and `flask restore` would overwrite the served database: gunicorn stops instead."""
    half = tmp_path / "flaskr"
    half.mkdir()
    shutil.copy(FLASKR / "gunicorn.conf.py", half)
    done = read_settings(half, tmp_path)
    assert done.returncode == 1
    assert "Failed to read config file" in done.stderr
    assert "No module named 'flaskr.serving'" in done.stderr
