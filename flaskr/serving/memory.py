"""Memory the master and its forked workers share, and memory a worker gives back.

The master loads the app (preload_app) and forks the workers from it: what it builds before
the fork is shared, copy-on-write, instead of built again in each worker
(docs/performance.md, `python -m bench.memory`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Callable
from typing import Any

#: glibc's mallopt parameter for the size from which a block gets a mapping of its own.
M_MMAP_THRESHOLD = -3


def return_freed_memory() -> None:
    """Keep big blocks (a page, its Markdown) in their own mappings, unmapped when freed.

    glibc otherwise raises this threshold to the biggest block freed so far, and later ones
    stay in the heap, which never shrinks, so one huge page would keep a worker big.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)  # glibc's default, made fixed
    except (OSError, AttributeError):
        pass  # not glibc (musl has no mallopt): its allocator never grew a threshold


def build_what_workers_share(app: Callable[..., Any]) -> None:
    """Do in the master what each worker would otherwise do on its first requests.

    Compiling every template and configuring SQLAlchemy's mappers touches no database, and
    done here their results are shared by the workers instead of built in each. A template
    that does not compile stops the start (or fails a reload, the old master serving on).
    """
    environment = getattr(app, "jinja_env", None)  # a Flask app; bench/ serves others too
    if environment is not None:
        for name in environment.list_templates():
            environment.get_template(name)
    if "sqlalchemy.orm" in sys.modules:
        sys.modules["sqlalchemy.orm"].configure_mappers()


def freeze_what_the_master_holds() -> None:
    """Move everything the master holds out of the garbage collector's reach.

    A collection in a worker would otherwise write to every shared object's header, copying
    all its pages.
    """
    gc.freeze()
