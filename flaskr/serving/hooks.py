"""The hooks gunicorn calls around flaskr's master and workers, in the order it calls them.

flaskr/gunicorn.conf.py names each one it uses; what they do at length is in the modules
beside this one: memory.py (what the workers share), draining.py (a stop that drops no
request), lock.py (the serving lock) and worker_name.py (the name a started worker takes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from types import FrameType

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from flaskr import Flaskr
from flaskr.serving.draining import drain_before_exit, note_when_told_to_stop, queue_no_more_on_stop
from flaskr.serving.lock import hold_serving_lock
from flaskr.serving.memory import (
    build_what_workers_share,
    freeze_what_the_master_holds,
    return_freed_memory,
)
from flaskr.serving.worker_name import call_itself_started

#: The folder that holds the flaskr package: `flask --app flaskr` finds it from there.
CODE_FOLDER = Path(__file__).absolute().parents[2]


def before_the_app_loads() -> None:
    """Prepare the master, as gunicorn.conf.py is read: no gunicorn hook runs this early.

    The master loads the app right after (preload_app), and with it prometheus_client, which
    reads PROMETHEUS_MULTIPROC_DIR once, at import.
    """
    return_freed_memory()
    metrics = os.environ.get("FLASKR_METRICS", "").lower() in ("1", "true")
    if metrics and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker writes its figures here, so /metrics sums all of them.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="flaskr-metrics-")


def on_starting(server: Arbiter) -> None:
    """Apply migrations before any worker starts, when FLASKR_MIGRATE_ON_START=1.

    The image sets it. A child process does it, so Alembic never loads into the master the
    workers are forked from; init-db takes a lock, so containers starting together migrate
    once. (The master has loaded the app by now: creating it touches no database.)
    """
    if os.environ.get("FLASKR_MIGRATE_ON_START") != "1":
        return
    # gunicorn installs its signal handlers only after this hook: as PID 1 in a container a
    # TERM sent now would be ignored. Remember it, finish the migration, then stop.
    stop: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        stop.append(signum)

    previous = {
        sig: signal.signal(sig, remember) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    }
    try:
        done = subprocess.run(  # noqa: S603 - fixed command, our own interpreter
            [sys.executable, "-m", "flask", "--app", "flaskr", "init-db"],
            cwd=CODE_FOLDER,
            check=False,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop:
        raise SystemExit(0)
    if done.returncode != 0:
        # Through gunicorn's logger: a JSON line like every other one in the logs.
        server.log.error(
            "flaskr: migrations failed (exit %s; the reason is above); not starting",
            done.returncode,
        )
        raise SystemExit(1)


def when_ready(server: Arbiter) -> None:
    """Prepare the loaded app for the workers; shrink the listening queue on a graceful stop."""
    build_what_workers_share(server.app.wsgi())
    queue_no_more_on_stop(server)


def pre_fork(server: Arbiter, worker: Worker) -> None:  # noqa: ARG001 - gunicorn's signature
    """Fork the worker with the master's objects frozen: shared, not copied."""
    freeze_what_the_master_holds()


def post_worker_init(worker: Worker) -> None:
    """Get a started worker ready to serve, and say it is: the last thing before it serves.

    The serving lock (`flask restore` refuses while a worker holds it) is taken in each
    worker, never in the master: the lock is the workers', and goes with the last of them.
    Another app served with these settings (bench/ compares bare WSGI and Flask under them)
    has no flaskr database to hold.
    """
    note_when_told_to_stop(worker)
    if isinstance(worker.wsgi, Flaskr):
        hold_serving_lock(worker.wsgi)
    call_itself_started()


def worker_exit(server: Arbiter, worker: Worker) -> None:
    """Serve what is still queued for a worker told to stop, then let it exit."""
    drain_before_exit(server, worker)


def child_exit(server: Arbiter, worker: Worker) -> None:  # noqa: ARG001 - gunicorn's signature
    """Drop a dead worker's live gauges (prometheus_client's multiprocess rule)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Imported here, not above: prometheus_client picks how it keeps figures when first
        # imported, and this module is imported before before_the_app_loads sets the folder.
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
