"""``collect``: the whole report, one section from each module beside it.

Each section is what one of the README's claims about a container and a host turns on: the
dependencies, the processes this one can see, the container around it, its
supervisor and its privileges. ``collect`` gathers them all as plain data that ``json.dumps``
takes; where a value cannot be told it is None and the section's ``reasons`` says why.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flaskr.isolation.container import container
from flaskr.isolation.dependencies import dependencies
from flaskr.isolation.privileges import privileges
from flaskr.isolation.processes import processes
from flaskr.isolation.supervisor import supervisor


def collect(root: str = "/", environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The whole report, as plain data that ``json.dumps`` takes."""
    return {
        "platform": sys.platform,
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "collected_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pid": os.getpid(),
        "root": root,
        "dependencies": dependencies(),
        "processes": processes(root),
        "container": container(root),
        "supervisor": supervisor(root, environ),
        "privileges": privileges(root),
    }
