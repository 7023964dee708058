"""What the master builds for the workers, and memory a worker gives back."""

from __future__ import annotations

import ctypes.util
import sys

import pytest
from flask import Flask

from flaskr.serving import memory


def test_mappers_are_configured_before_the_fork(app: Flask, monkeypatch) -> None:
    """Configured once in the master, SQLAlchemy's mappers are shared by the workers.

    (Templates too: tests/serving/test_hooks.py, through when_ready.)
    """
    configured: list[bool] = []
    monkeypatch.setattr(
        sys.modules["sqlalchemy.orm"], "configure_mappers", lambda: configured.append(True)
    )
    memory.build_what_workers_share(app)
    assert configured == [True]


def test_bench_s_bare_wsgi_app_has_nothing_to_build() -> None:
    """bench/ serves a bare WSGI function under these settings: it starts all the same."""
    memory.build_what_workers_share(lambda environ, start_response: [])


@pytest.mark.parametrize("libc", ["c", "not-a-c-library"])
def test_the_start_goes_on_whatever_the_c_library(libc: str, monkeypatch) -> None:
    """musl (the Alpine image) has no such setting: gunicorn starts all the same."""
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{libc}.so.6")
    memory.return_freed_memory()
