"""A stop that drops no request.

gunicorn's graceful stop closes the listening socket, and the kernel resets every connection
still queued on it, unread. A proxy cannot tell such a request from one the app received, so
it retries it elsewhere only when it may be sent twice (never a POST): nginx answers 502. And
connections keep coming while the workers exit (a replica stays in compose's DNS until its
container is gone).

So on TERM the master first shrinks the socket's queue to one connection: the kernel drops the
first packet of any other, whose client retries it a second later and finds the port closed,
or the container gone (refused, never sent: a proxy tries another replica). Then each worker,
its last request done, serves what is queued and closes its copy of the socket at once, so the
last one to do so leaves a window of microseconds, not the interpreter's exit. (A HUP, the old
master's stop after a USR2 upgrade, or max_requests end workers the same way, the queue
untouched; the others keep the socket.)
"""

from __future__ import annotations

import os
import signal
import time
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker
from gunicorn.workers.sync import SyncWorker


def queue_no_more_on_stop(server: Arbiter) -> None:
    """Make the master's graceful stop shrink the listening queue before it closes the socket.

    Replaces gunicorn's Arbiter.stop for this master. A fast stop (INT, QUIT) stays as it is,
    and so does a stop while another generation shares the socket (a USR2 upgrade, either
    way): its queue must stay as it is.
    """
    stop = server.stop

    def queue_no_more_then_stop(graceful: bool = True, *args: Any, **kwargs: Any) -> None:
        if graceful and not server.reexec_pid and not server.master_pid:
            for listener in getattr(server, "LISTENERS", ()):
                listener.listen(0)  # a queue of one: Linux takes one more than the backlog
        stop(graceful, *args, **kwargs)

    server.stop = queue_no_more_then_stop


def note_when_told_to_stop(worker: Worker) -> None:
    """Remember when the worker got TERM, so that draining ends before the master's kill.

    Re-registering the handler makes the signal interrupt system calls again; gunicorn turns
    that off so that a TERM never cuts a request short, and so does this.
    """
    handle_exit = worker.handle_exit

    def handle_exit_noting_when(sig: int, frame: FrameType | None) -> None:
        worker.flaskr_stop_asked_at = time.monotonic()
        handle_exit(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit_noting_when)
    signal.siginterrupt(signal.SIGTERM, False)


def drain_before_exit(server: Arbiter, worker: Worker) -> None:
    """Serve the connections queued on the worker's sockets, when it was told to stop.

    Only after a TERM (not an abort, nor the end of max_requests), and only until a second
    before the master's kill, counted from the TERM (graceful_timeout), so no request it
    takes is cut short. Not in the master (which calls worker_exit too, for a worker that
    vanished), not for a worker that never loaded the app, and for sync workers only: the
    others accept connections in ways of their own (gthread's queued connections are reset as
    gunicorn's stop leaves them).
    """
    asked_at = getattr(worker, "flaskr_stop_asked_at", None)
    if (
        isinstance(worker, SyncWorker)
        and worker.pid == os.getpid()
        and worker.booted
        and asked_at is not None
    ):
        started = time.monotonic()
        served = drain(worker, asked_at + server.cfg.graceful_timeout - 1)
        server.log.info(
            "flaskr: served %d queued connection(s) in %.3f s before exiting",
            served,
            time.monotonic() - started,
        )


def drain(worker: SyncWorker, deadline: float) -> int:
    """Serve the connections queued on the worker's sockets, until none is or ``deadline``.

    Returns how many were served. Each socket is closed once its queue is empty.
    """
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
