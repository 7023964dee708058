"""Waiting with a deadline: poll until something is true, and raise, saying what was awaited,
once the deadline passes. Nothing sleeps a fixed time for a server to be ready."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from toolkit import ToolkitError

T = TypeVar("T")


def until(
    condition: Callable[[], T], timeout: float, what: str | Callable[[], str], step: float = 0.05
) -> T:
    """Call ``condition`` until it returns something true, and return that; raise when
    ``timeout`` seconds have passed first, saying ``what`` was awaited (a callable is asked
    then, so it can tell the last thing seen)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            said = what if isinstance(what, str) else what()
            raise ToolkitError(f"timed out after {timeout}s waiting for {said}")
        time.sleep(step)


def wait_for_http(url: str, timeout: float = 30.0, status: int = 200) -> None:
    """Poll ``url`` until it answers ``status``, or raise when the deadline passes."""
    last: list[object] = [None]

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
                last[0] = r.status
        except urllib.error.HTTPError as e:
            last[0] = e.code
        except OSError as e:
            last[0] = e
        return last[0] == status

    until(answers, timeout, lambda: f"{url} to answer {status} (last: {last[0]!r})", step=0.1)
