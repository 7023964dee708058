"""Secrets on command lines: every local user can read any process's ``/proc/PID/cmdline``, so
a secret passed as an argument is theirs while the process runs. A sampler thread reads every
command line, again and again, while a with-block runs something that must keep a secret off
them all."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Seconds between two reads of every command line.
INTERVAL = 0.02


def secrets_in_command_lines(secret: bytes) -> list[bytes]:
    """The command line of every process that holds ``secret`` (any local user reads them)."""
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = path.read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if secret in line:
            found.append(line.replace(b"\0", b" "))
    return found


@dataclass
class Watch:
    #: Every command line seen holding the secret (one entry per sighting).
    found: list[bytes] = field(default_factory=list)
    #: How many times every command line was read.
    rounds: int = 0


@contextlib.contextmanager
def watching_command_lines(secret: bytes, interval: float = INTERVAL) -> Iterator[Watch]:
    """Every process's command line read every ``interval`` seconds during the with-block."""
    watch = Watch()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            watch.found += secrets_in_command_lines(secret)
            watch.rounds += 1
            done.wait(interval)

    sampler = threading.Thread(target=sample, name="cmdline-sampler", daemon=True)
    sampler.start()
    try:
        yield watch
    finally:
        done.set()
        sampler.join()
