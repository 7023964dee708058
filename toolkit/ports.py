"""Free TCP ports on 127.0.0.1: every server a suite starts listens on loopback only, on a
port the kernel just handed out, so that suites running side by side never collide."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
