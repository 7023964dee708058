"""What the sections of one bench/run share, and the steps each of them repeats: a flaskr
server on a fresh copy of a database, warming its pages, and one wrk run per page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.data import fresh_instance
from bench.load import warm, wrk
from bench.pages import Page
from bench.servers import Server, run_env
from bench.settings import Settings, log


@dataclass
class Context:
    settings: Settings
    out: Path  # this run's work folder, bench/out/STAMP
    dbs: dict[int, dict[str, Any]] = field(default_factory=dict)  # by size, see data.py
    results: dict[str, Any] = field(default_factory=dict)  # by section, saved as JSON
    commands: dict[str, str] = field(default_factory=dict)  # gunicorn's, for the report

    def flaskr(self, size: int, name: str, extra=(), page_cache: bool = True) -> Server:
        """flaskr on a fresh copy of the ``size`` database (not started yet)."""
        instance = fresh_instance(self.dbs[size], self.out, name)
        env = run_env(instance)
        # The login POST row logs in as one account again and again, and the write rows write
        # as it: each login's scrypt is charged to the account's render budget (4 s of CPU a
        # minute: RENDER_CPU_MS_PER_USER), spent after some 40 logins, and every later login
        # and write of the account was a 429 ("errors" in the table: the smoke run's
        # occasional login error under load). What is measured is the work, not that limit.
        env["FLASKR_RENDER_CPU_MS_PER_USER"] = env["FLASKR_RENDER_CPU_MS_SITE"] = str(10**9)
        if not page_cache:
            env["FLASKR_PAGE_CACHE_SIZE"] = "0"
        return Server(name, "hello:app", env, self.out, extra)

    def warm(self, server: Server, pages: list[Page]) -> None:
        """``warmup`` requests per GET page, 4 at a time, so every worker has served each."""
        for page in pages:
            if page.method == "GET":
                warm(server.base + page.path, self.settings.warmup)

    def measure(
        self, server: Server, pages: Iterable[Page], duration: float, label: str
    ) -> Iterable[tuple[Page, dict[str, Any]]]:
        """One wrk run per page, each logged as it ends after ``label`` (round, config)."""
        for page in pages:
            r = wrk(server, page, duration)
            log(
                f"  {label} {page.name:20} {r['rps']:8,.0f} req/s"
                f"  p50 {r['p50']:6.1f} ms  p99 {r['p99']:7.1f} ms  errors {r['errors']}"
            )
            yield page, r
