"""What a gunicorn log run by the toolkit (toolkit/servers.py) tells: the requests its workers
answered and the errors it logged, in flaskr's JSON format or gunicorn's text format."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def log_lines(log: Path, since: int = 0) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each line of the gunicorn log from byte ``since`` on, with its JSON object when it is
    one (the default format) and None when it is gunicorn's text format
    (FLASKR_LOG_FORMAT=text)."""
    with log.open("rb") as file:
        file.seek(since)
        text = file.read().decode(errors="replace")
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        yield line, entry if isinstance(entry, dict) else None


ACCESS_TEXT = re.compile(r'"([A-Z]+) (\S+) HTTP/1\.[01]" (\d{3}) ')


def access_log(log: Path, since: int = 0) -> list[tuple[str, str, int]]:
    """(method, path with query, status) of every request a worker answered (logged from
    byte ``since`` on)."""
    return _requests(log_lines(log, since))


def _requests(lines: Iterable[tuple[str, dict[str, Any] | None]]) -> list[tuple[str, str, int]]:
    out = []
    for line, entry in lines:
        if entry is not None:
            if entry.get("logger") == "gunicorn.access" and "status" in entry:
                query = entry.get("query") or ""
                path = entry["path"] + ("?" + query if query else "")
                out.append((entry["method"], path, int(entry["status"])))
        elif found := ACCESS_TEXT.search(line):
            out.append((found.group(1), found.group(2), int(found.group(3))))
    return out


def log_problems(log: Path, since: int = 0) -> list[str]:
    """Lines of the gunicorn log (from byte ``since`` on) that tell of an application error
    or a 5xx answer."""
    lines = list(log_lines(log, since))  # read once, for both
    pattern = re.compile(r"Traceback|database is locked|OperationalError|Exception on ")
    problems = [line for line, _ in lines if pattern.search(line)]
    problems += [f"{m} {p} -> {s}" for m, p, s in _requests(lines) if s >= 500]
    return problems[:20]
