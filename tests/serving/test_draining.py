"""A stop that drops no request, with gunicorn's own sync worker on real sockets: a stopping
worker serves the requests queued on its socket instead of leaving them to be reset, then
closes the socket, so later connections are refused (never sent)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from gunicorn.workers.sync import SyncWorker

from flaskr.serving.draining import drain_before_exit, note_when_told_to_stop, queue_no_more_on_stop

REQUEST = b"POST /create HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\nhi"


@pytest.fixture
def told_to_stop(sync_worker: SyncWorker) -> Iterator[SyncWorker]:
    """The worker, after a real TERM, as its master sends one on a graceful stop."""
    previous = signal.getsignal(signal.SIGTERM)
    note_when_told_to_stop(sync_worker)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert not sync_worker.alive  # gunicorn's own handler ran too
        yield sync_worker
    finally:
        signal.signal(signal.SIGTERM, previous)


def server(worker: SyncWorker) -> SimpleNamespace:
    """The master, as the worker_exit hook gets it."""
    return SimpleNamespace(cfg=worker.cfg, log=worker.log)


def queue(port: int, count: int) -> list[socket.socket]:
    """Connections the kernel accepted and whose request was sent, none read by the app."""
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
    for client in clients:
        client.sendall(REQUEST)
        # Done sending, as nginx is once it has sent a request: gunicorn's close need not
        # wait for the client (it lingers up to 2 s to read what a client still sends).
        client.shutdown(socket.SHUT_WR)
    return clients


def test_stopping_worker_serves_every_queued_request_then_closes(told_to_stop) -> None:
    (listener,) = told_to_stop.sockets
    port = listener.getsockname()[1]
    clients = queue(port, 3)
    drain_before_exit(server(told_to_stop), told_to_stop)
    for client in clients:
        with client:
            answer = client.makefile("rb").read()
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"served"), answer
    assert listener.fileno() == -1
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_draining_ends_a_second_before_the_masters_kill(told_to_stop) -> None:
    """A TERM long enough ago that the master's kill is under a second away: nothing more is
    taken, so no request is cut short; the queue is left to the kernel."""
    (listener,) = told_to_stop.sockets
    told_to_stop.flaskr_stop_asked_at -= told_to_stop.cfg.graceful_timeout
    (client,) = queue(listener.getsockname()[1], 1)
    with client:
        drain_before_exit(server(told_to_stop), told_to_stop)
        assert listener.fileno() == -1
        with pytest.raises(ConnectionResetError):  # reset unread, never cut short midway
            client.recv(100)


def test_the_master_drains_nothing(told_to_stop) -> None:
    """gunicorn also calls the hook in the master, for a worker that is already gone."""
    (listener,) = told_to_stop.sockets
    told_to_stop.pid = os.getpid() + 1
    (client,) = queue(listener.getsockname()[1], 1)
    with client:
        drain_before_exit(server(told_to_stop), told_to_stop)
        assert listener.fileno() != -1
        accepted, _ = listener.accept()  # still queued, for the workers that live on
        accepted.close()


def test_a_worker_ending_without_a_term_drains_nothing(sync_worker: SyncWorker) -> None:
    """max_requests or an abort end a worker without a TERM: the others keep the socket and
    serve its queue, and an aborted worker must not take a request the master will kill."""
    (listener,) = sync_worker.sockets
    (client,) = queue(listener.getsockname()[1], 1)
    with client:
        drain_before_exit(server(sync_worker), sync_worker)
        assert listener.fileno() != -1
        accepted, _ = listener.accept()
        accepted.close()


@pytest.mark.parametrize("graceful", [True, False])
def test_a_graceful_stop_queues_no_more_connections(graceful: bool) -> None:
    """On TERM the queue takes one connection more, and the kernel drops the first packet of
    the next (its client retries, then is refused); INT and QUIT stop at once, as before."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        address = listener.getsockname()
        stops: list[bool] = []
        master = SimpleNamespace(
            LISTENERS=[listener], stop=stops.append, reexec_pid=0, master_pid=0
        )
        queue_no_more_on_stop(master)
        master.stop(graceful)
        assert stops == [graceful]
        with socket.create_connection(address, timeout=5):  # queued
            if graceful:
                with pytest.raises(TimeoutError):
                    socket.create_connection(address, timeout=0.5)
            else:
                socket.create_connection(address, timeout=5).close()


@pytest.mark.parametrize("generation", ["reexec_pid", "master_pid"])
def test_a_stop_during_an_upgrade_leaves_the_shared_queue_alone(generation: str) -> None:
    """After USR2 the old and the new master share the socket: whichever stops, the one that
    lives on keeps its full queue."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        address = listener.getsockname()
        ids = {"reexec_pid": 0, "master_pid": 0, generation: 4242}
        master = SimpleNamespace(LISTENERS=[listener], stop=lambda graceful: None, **ids)
        queue_no_more_on_stop(master)
        master.stop(True)
        connections = [socket.create_connection(address, timeout=5) for _ in range(4)]
        for connection in connections:
            connection.close()
