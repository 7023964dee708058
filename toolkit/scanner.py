"""Debian's wapiti, a web vulnerability scanner, run against a server on this machine only:
its command line, the findings of its JSON report, and what it crawled.

wapiti 3.0.4 (Debian 12) would reach beyond the machine on its own in four ways; each is
closed here, so that a scan sends nothing anywhere but the target:

- it builds every attack module at start, even those not asked for, and the fingerprinting
  one (``wapp``) downloads its database when its configuration folder has none: the folder
  given (``--store-config``) holds an empty one;
- a module that crashes mails its traceback to wapiti's authors: ``--no-bugreport``;
- some payloads name wapiti's public server (``[EXTERNAL_ENDPOINT]``), which the ``ssrf`` and
  ``xxe`` modules then ask whether the target called it: the suite leaves those two modules
  out, and the payloads name a closed port on 127.0.0.1 instead (``--external-endpoint``);
- and any request to another host (a redirect followed, a module not foreseen here) goes to a
  proxy on a closed loopback port, and fails there: the target alone is reached directly
  (``NO_PROXY``).

Its home (``~/.wapiti``: sessions, configuration, reports) is a folder of the caller's, and
each scan starts from an empty session (``--flush-session``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from toolkit import ToolkitError
from toolkit.packages import need

#: The packaged script's interpreter: wapiti's modules are installed for Debian's Python.
PYTHON = "/usr/bin/python3"

#: The packaged wapiti, with two bugs of Debian 12's 3.0.4 put right, and no fake image:
#:
#: - it turns each ``-x`` pattern into a regular expression ending in ``(?ms)``, which Python
#:   3.11 refuses ("global flags not at the start of the expression"): every run given ``-x``
#:   crashes before it crawls. Replaced, while the packaged one fails, by the same expression
#:   with its flags first.
#: - it sends each text field of a multipart form as a file (requests' ``files=`` names a
#:   part given as a bare string after its field): a browser sends no file name there, and
#:   werkzeug reads such parts as files, not fields. The post form (it uploads an image) then
#:   lacked its CSRF token, and every attack on it was the same 400 before any view ran (and
#:   wapiti took that sameness for a token "not properly checked"). Text fields are sent as
#:   fields.
#: - the file it puts in every file field, ``pix.gif``, is six bytes (``GIF89a``), no image:
#:   the app refuses it, so no attack on the post form would ever be stored. It sends what a
#:   browser sends for a file field left empty instead (an empty part named ""). A real image
#:   would be re-encoded each time, a quarter of a second per attack.
RUN_WAPITI = r"""
import re
import sys

import requests
from wapitiCore.net import crawler

try:
    crawler.wildcard_translate("x")
except re.error:
    def wildcard_translate(pattern):
        body = "".join(".*" if c == "*" else re.escape(c) for c in pattern)
        return re.compile("(?ms)" + body + r"\Z")

    crawler.wildcard_translate = wildcard_translate

PLACEHOLDER = ["pix.gif", "GIF89a", "image/gif"]
NO_FILE = ("", b"", "application/octet-stream")
_post = requests.Session.post


def part(value):
    if isinstance(value, str):
        return (None, value)
    return NO_FILE if list(value) == PLACEHOLDER else value


def post(self, url, data=None, json=None, **kwargs):
    files = kwargs.get("files")
    if files and not data:  # a multipart form's fields, as Crawler.post hands them over
        kwargs["files"] = [(name, part(value)) for name, value in files]
    return _post(self, url, data=data, json=json, **kwargs)


requests.Session.post = post

from wapitiCore.main.wapiti import wapiti_main

sys.exit(wapiti_main())
"""

#: Where requests to any other host go, and fail: nothing listens on the discard port.
CLOSED = "http://127.0.0.1:9/"


class ScanError(ToolkitError):
    """wapiti did not finish its scan, or wrote no report."""


@dataclass(frozen=True)
class Finding:
    """One entry of the report: a vulnerability or an anomaly (an error, a timeout)."""

    kind: str  # "vulnerabilities" or "anomalies"
    category: str  # wapiti's name for the class of flaw, "Cross Site Request Forgery"
    method: str
    path: str  # the URL's path, no query
    parameter: str
    info: str
    request: str  # the request as wapiti sent it

    def __str__(self) -> str:
        return f"{self.category}: {self.method} {self.path} [{self.parameter}] {self.info}"


@dataclass
class Scan:
    """A finished scan: its report, its output, how long it took and its session database."""

    report: dict
    output: str
    seconds: float
    session: Path
    phases: dict[str, float]  # seconds of the crawl and of each attack module, in order

    def findings(self) -> list[Finding]:
        return [
            Finding(
                kind,
                category,
                item["method"],
                urlsplit(item["path"]).path,
                item.get("parameter") or "",
                item["info"],
                item.get("http_request", ""),
            )
            for kind in ("vulnerabilities", "anomalies")
            for category, items in self.report.get(kind, {}).items()
            for item in items
        ]

    def crawled(self) -> set[tuple[str, str]]:
        """(method, path) of every URL and form the crawl found and sent, before attacks."""
        with sqlite3.connect(self.session) as db:
            rows = db.execute("SELECT method, path FROM paths WHERE evil = 0").fetchall()
        return {(method, urlsplit(url).path) for method, url in rows}

    def modules_cut_short(self) -> list[str]:
        """The attack modules stopped by ``--max-attack-time`` before they were done."""
        marker = "Max attack time was reached for module "
        return [
            line.split(marker, 1)[1].split(",", 1)[0]
            for line in self.output.splitlines()
            if marker in line
        ]


def scan(
    base: str,
    workdir: Path,
    modules: Iterable[str],
    *,
    excluded: Iterable[str] = (),
    starts: Iterable[str] = (),
    skipped_parameters: Iterable[str] = (),
    login: tuple[str, str, str] | None = None,
    depth: int = 2,
    links_per_page: int = 40,
    crawl_seconds: float = 20,
    module_seconds: float = 15,
    request_timeout: float = 10,
    timeout: float = 300,
) -> Scan:
    """Scan ``base`` (``http://127.0.0.1:PORT``) and everything below it with ``modules``.

    ``excluded`` and ``starts`` are paths (``*`` matches anything, ``-x``), ``login`` is
    (login page path, username, password) for wapiti's own form login. The crawl stops after
    ``crawl_seconds``, each module after ``module_seconds``, the whole run after ``timeout``.
    """
    need("wapiti")
    base = base.rstrip("/")
    home = workdir / "home"
    config = home / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "apps.json").write_text("{}")  # wapp's database: present, so never downloaded
    sessions = home / "sessions"
    report = workdir / "report.json"
    argv = [
        PYTHON, "-c", RUN_WAPITI,
        "--url", base + "/",
        "--scope", "folder",
        "--module", ",".join(modules),
        "--depth", str(depth),
        "--max-links-per-page", str(links_per_page),
        "--max-scan-time", str(crawl_seconds),
        "--max-attack-time", str(module_seconds),
        "--timeout", str(request_timeout),
        "--flush-session",
        "--store-session", str(sessions),
        "--store-config", str(config),
        "--external-endpoint", CLOSED,
        "--no-bugreport",
        "--format", "json",
        "--output", str(report),
        "--verbose", "1",
    ]  # fmt: skip
    if login is not None:
        page, username, password = login
        # wapiti logs in with the first start URL's form, before it crawls.
        argv += ["--start", base + page, "--auth-type", "post"]
        argv += ["--auth-cred", f"{username}%{password}"]
    for path in starts:
        argv += ["--start", base + path]
    for path in excluded:
        argv += ["--exclude", base + path]
    for name in skipped_parameters:
        argv += ["--skip", name]
    env = {
        **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
        "HOME": str(home),
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
        **{name: CLOSED for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
        **{name.lower(): CLOSED for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")},
    }
    started = time.monotonic()
    lines: list[str] = []
    phases: dict[str, float] = {}  # "crawl" and each module: when it began, then its seconds
    with subprocess.Popen(
        argv,
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    ) as process:
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        try:
            phase, since = "crawl", started
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if line.startswith(("[*] Launching module ", "Report")):
                    now = time.monotonic()
                    phases[phase] = round(now - since, 1)
                    phase, since = line.split()[-1], now
            returncode = process.wait()
        finally:
            watchdog.cancel()
    seconds = time.monotonic() - started
    output = "".join(lines)
    (workdir / "wapiti.out").write_text(output)
    if seconds >= timeout:
        raise ScanError(f"wapiti ran over {timeout} s, and was killed:\n{output[-3000:]}")
    if returncode != 0 or not report.exists():
        raise ScanError(f"wapiti exited {returncode}, report: {report.exists()}:\n{output}")
    found = list(sessions.glob("*.db"))
    if len(found) != 1:
        raise ScanError(f"wapiti left {len(found)} session databases in {sessions}")
    return Scan(json.loads(report.read_text()), output, seconds, found[0], phases)
