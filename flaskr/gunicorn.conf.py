"""gunicorn settings shared by the container and the systemd unit.

gunicorn reads this file from its working folder (this one, in both deployments); flags on
the command line, such as the seed's ``--workers 3 --timeout 120 --bind ...``, still win.
"""

import os
import sys

# Heartbeat files on a RAM disk: a worker blocked on a slow overlay or disk write is not
# taken for a hung one (the gunicorn docs' advice for containers).
# (/dev/shm is a RAM disk here, not a shared temp file: bandit's B108 does not apply.)
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108  # nosec B108

# Access and error logs to stdout/stderr, where `docker logs` and journald collect them,
# one JSON object a line (FLASKR_LOG_FORMAT=text keeps gunicorn's own format).
accesslog = "-"
errorlog = "-"

# Finish in-flight requests on SIGTERM within 8 s, inside `docker stop`'s 10 s and the
# unit's TimeoutStopSec. Connections still queued for a worker at that moment are reset
# (tests/e2e/test_faults.py counts them): take an instance out of the proxy before stopping it.
graceful_timeout = 8

# The control socket (gunicornc) is not used by these deployments, and would be written to a
# home folder that a read-only container or a sandboxed unit cannot write.
control_socket_disable = True

# Load the app once, in the master, and fork the workers from it: they share its memory
# (copy-on-write) instead of each importing Flask, SQLAlchemy and flaskr on its own. PSS per
# worker 35.8 -> 29.8 MB with the seed's 3 workers (docs/performance.md, `python -m
# bench.memory`). The trade-off: a HUP forks new workers from the same master, so it no longer
# loads new code. `systemctl reload flaskr` re-executes the master instead (USR2, then the old
# master stops once the new one serves: deploy/systemd/flaskr-reload), which loads new code and
# new library versions, with no failed request. The container is replaced, never reloaded.
preload_app = True


def _metrics_enabled() -> bool:
    return os.environ.get("FLASKR_METRICS", "").lower() in ("1", "true")


if _metrics_enabled() and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Every worker writes its figures here, so /metrics sums all of them. Set before the app
    # (and so prometheus_client) is loaded: it reads this at import.
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="flaskr-metrics-")


def _return_freed_memory():
    """Keep big blocks (a page, its Markdown) in their own mappings, unmapped when freed.

    glibc otherwise raises this threshold to the biggest block freed so far, and later ones
    stay in the heap, which never shrinks, so one huge page would keep a worker big.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: glibc's default, made fixed
    except (OSError, AttributeError):
        pass  # not glibc (musl has no mallopt): its allocator never grew a threshold


_return_freed_memory()


def pre_fork(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """Move everything the master holds out of the garbage collector's reach.

    A collection in a worker would otherwise write to every shared object's header, copying
    all its pages.
    """
    import gc

    gc.freeze()


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    """Drop a dead worker's live gauges (prometheus_client's multiprocess rule)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_starting(server):
    """Apply migrations before any worker starts, when FLASKR_MIGRATE_ON_START=1.

    The image sets it. A child process does it, so Alembic never loads into the master the
    workers are forked from; init-db takes a lock, so containers starting together migrate
    once. (The master has loaded the app by now: creating it touches no database.)
    """
    if os.environ.get("FLASKR_MIGRATE_ON_START") != "1":
        return
    import signal
    import subprocess
    import sys

    # gunicorn installs its signal handlers only after this hook: as PID 1 in a container a
    # TERM sent now would be ignored. Remember it, finish the migration, then stop.
    stop = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: stop.append(signum))
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
    }
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        done = subprocess.run(  # noqa: S603 - fixed command, our own interpreter
            [sys.executable, "-m", "flask", "--app", "flaskr", "init-db"],
            cwd=os.path.dirname(here),
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


if os.environ.get("FLASKR_LOG_FORMAT", "json") == "json":
    from gunicorn import glogging
    from pythonjsonlogger.json import JsonFormatter

    class JsonLogger(glogging.Logger):
        """Write gunicorn's logs as JSON lines; an access line carries the X-Request-ID.

        Defined here, not in the app: gunicorn sets its logger up before it loads the app, and
        bench/ serves other apps with this file.
        """

        def setup(self, cfg):
            super().setup(cfg)
            formatter = JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter)

        def access(self, resp, req, environ, request_time):
            atoms = self.atoms(resp, req, environ, request_time)
            self.access_log.info(
                "request",
                extra={
                    "remote": atoms["h"],
                    "method": atoms["m"],
                    "path": atoms["U"],
                    "query": atoms["q"],
                    # atoms["s"], not resp.status_code: gunicorn's own error
                    # responses (an exception escaped the app) have no status_code.
                    "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
                    "bytes": atoms["B"],
                    "duration_ms": round(request_time.total_seconds() * 1000, 3),
                    "request_id": atoms.get("{x-request-id}o"),
                    "user_agent": atoms["a"],
                },
            )

    logger_class = JsonLogger


def post_worker_init(worker):
    """Hold the lock that tells `flask restore` this database is served, while the worker lives.

    In each worker, never in the master: the lock is the workers', and goes with the last of
    them. Another app served with this file (bench/ compares bare WSGI and Flask under it) has
    no flaskr database to hold.
    """
    _note_when_told_to_stop(worker)
    try:
        from flaskr.backup import hold_serving_lock
    except ImportError:
        pass
    else:
        hold_serving_lock(worker.wsgi)
    _call_itself_started()


#: What a worker calls itself once it has started (/proc/PID/comm: `ps -o comm`, top and
#: `systemctl status` show it). This hook is the last thing gunicorn runs before a worker
#: serves, and a worker that fails before it takes its master down: deploy/systemd/flaskr-reload
#: waits until every new worker has this name before it retires the old master.
STARTED_NAME = "flaskr-worker"


def _call_itself_started():
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(STARTED_NAME)
    except OSError:
        pass  # no /proc (not Linux): nothing waits for the name there


# A stop that drops no request. gunicorn's graceful stop closes the listening socket, and the
# kernel resets every connection still queued on it, unread. A proxy cannot tell such a
# request from one the app received, so it retries it elsewhere only when it may be sent twice
# (never a POST): nginx answers 502. And connections keep coming while the workers exit (a
# replica stays in compose's DNS until its container is gone). So on TERM the master first
# shrinks the socket's queue to one connection: the kernel drops the first packet of any
# other, whose client retries it a second later and finds the port closed, or the container
# gone (refused, never sent: a proxy tries another replica). Then each worker, its last
# request done, serves what is queued and closes its copy of the socket at once, so the last
# one to do so leaves a window of microseconds, not the interpreter's exit. (A HUP, the old
# master's stop after a USR2 upgrade, or max_requests ends workers the same way, the queue
# untouched; the others keep the socket.)


def _drain(worker, deadline):
    """Serve the connections queued on the worker's sockets, until none is or ``deadline``.

    Returns how many were served.
    """
    import time

    served = 0
    for listener in worker.sockets:
        listener.setblocking(False)
        while time.monotonic() < deadline:
            try:
                worker.accept(listener)  # the sync worker's own: accept, then serve it
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break
            served += 1
        listener.close()
    return served


def _note_when_told_to_stop(worker):
    """Remember when the worker got TERM, so that draining ends before the master's kill.

    Re-registering the handler makes the signal interrupt system calls again; gunicorn turns
    that off so that a TERM never cuts a request short, and so does this.
    """
    import signal
    import time

    handle_exit = worker.handle_exit

    def handle_exit_noting_when(sig, frame):
        worker.flaskr_stop_asked_at = time.monotonic()
        handle_exit(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit_noting_when)
    signal.siginterrupt(signal.SIGTERM, False)


def _build_what_workers_share(app):
    """Do in the master what each worker would otherwise do on its first requests.

    Compiling every template and configuring SQLAlchemy's mappers touches no database, and
    done here their results are shared by the workers instead of built in each: 2.6 MB less
    PSS per worker (docs/performance.md). A template that does not compile stops the start
    (or fails a reload, the old master serving on).
    """
    environment = getattr(app, "jinja_env", None)  # a Flask app; bench/ serves others too
    if environment is not None:
        for name in environment.list_templates():
            environment.get_template(name)
    if "sqlalchemy.orm" in sys.modules:
        sys.modules["sqlalchemy.orm"].configure_mappers()


def when_ready(server):
    """Prepare the loaded app for the workers; shrink the listening queue on a graceful stop.

    The queue is shrunk on TERM, in the master, before gunicorn's own stop closes the socket;
    a fast stop (INT, QUIT) stays as it is. Not while another generation shares the socket (a
    USR2 upgrade, either way): its queue must stay as it is.
    """
    _build_what_workers_share(server.app.wsgi())
    stop = server.stop

    def queue_no_more_then_stop(graceful=True, *args, **kwargs):
        if graceful and not server.reexec_pid and not server.master_pid:
            for listener in getattr(server, "LISTENERS", ()):
                listener.listen(0)  # a queue of one: Linux takes one more than the backlog
        stop(graceful, *args, **kwargs)

    server.stop = queue_no_more_then_stop


def worker_exit(server, worker):
    """Drain the queue in the worker, after its last request, when it was told to stop.

    Only after a TERM (not an abort, nor the end of max_requests), and only until a second
    before the master's kill, counted from the TERM (graceful_timeout), so no request it
    takes is cut short. Not in the master (which calls this hook too, for a worker that
    vanished), not for a worker that never loaded the app, and for sync workers only: the
    others accept connections in ways of their own (gthread's queued connections are reset as
    gunicorn's stop leaves them).
    """
    import time

    from gunicorn.workers.sync import SyncWorker

    asked_at = getattr(worker, "flaskr_stop_asked_at", None)
    if (
        isinstance(worker, SyncWorker)
        and worker.pid == os.getpid()
        and worker.booted
        and asked_at is not None
    ):
        started = time.monotonic()
        served = _drain(worker, asked_at + server.cfg.graceful_timeout - 1)
        server.log.info(
            "flaskr: served %d queued connection(s) in %.3f s before exiting",
            served,
            time.monotonic() - started,
        )
