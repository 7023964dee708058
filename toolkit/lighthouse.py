"""Lighthouse, the page audit of Chrome's developer tools (performance, accessibility, best
practices, SEO), run on Debian's Chromium against pages a suite serves.

The npm package is pinned, with every package it depends on, in toolkit/lighthouse-npm/
(package-lock.json: versions and integrity hashes, no registry host, as the .npmrc beside it
asks). ``install`` puts it in the suites' cache with ``npm ci``, once per lockfile; ``audit``
runs its command line on one page. Lighthouse starts /usr/bin/chromium itself (CHROME_PATH),
with a fresh profile and a home folder whose NSS store trusts the suite's test CA, as a
visitor's browser trusts a public one: the https pages are checked with their certificate
verified, no error ignored. No browser is ever downloaded (Lighthouse needs puppeteer-core
only, which has none, and .npmrc runs no install script).

Node.js and npm are the machine's own (/usr/bin/node, Node 20: Lighthouse 12 needs 18.20 or
newer, more than Debian 12's nodejs package has), so they are no Debian part of toolkit/packages.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import ROOT, ToolkitError
from toolkit.packages import need

NPM_DIR = ROOT / "toolkit" / "lighthouse-npm"
#: The npm packages installed once per lockfile, beside the suites' other caches.
CACHE = Path(os.environ.get("FLASKR_E2E_CACHE", "/var/tmp/flaskr-e2e-cache"))  # noqa: S108
CHROMIUM = "/usr/bin/chromium"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
#: Chromium as the browser suites start it (toolkit/browser.py), headless, as root (no
#: sandbox), and kept off the closed network (no background connections of its own).
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: How the page is loaded and scored. A phone (Lighthouse's default: Moto G Power's screen,
#: the mobile scoring curves) on Lighthouse's simulated slow 4G (150 ms round trips, 1.6 Mbit/s):
#: the network part of every metric is computed from the page's own requests, their bytes
#: and what waits on what, the same on any machine. The CPU is not slowed down 4x as by
#: default (cpuSlowdownMultiplier 1): the simulation multiplies the main thread's observed
#: task times, so on a busy 2-core CI machine a 4x slowdown would turn the machine's load into
#: the score; at 1x a task still counts as blocking above 50 ms of real time, far more than
#: these pages' own work should take.
SETTINGS = (
    "--form-factor=mobile",
    "--throttling-method=simulate",
    "--throttling.cpuSlowdownMultiplier=1",
)
NPM_TIMEOUT = 300
#: One page's audit: Chromium's start, the load, the trace and its analysis.
AUDIT_TIMEOUT = 120


class LighthouseError(ToolkitError):
    """Lighthouse could not be installed or could not audit a page."""


def version() -> str:
    """The pinned Lighthouse version (package.json's, which the lockfile holds too)."""
    manifest = json.loads((NPM_DIR / "package.json").read_text())
    return str(manifest["dependencies"]["lighthouse"])


def install() -> Path:
    """``npm ci`` the pinned packages into the cache once per lockfile (a second suite waits
    for the first); return Lighthouse's command-line script."""
    for program in ("node", "npm"):
        if shutil.which(program) is None:
            raise LighthouseError(f"no {program} on PATH: Lighthouse needs Node.js 18.20 or newer")
    files = ("package.json", "package-lock.json", ".npmrc")
    digest = hashlib.sha256(b"".join((NPM_DIR / name).read_bytes() for name in files))
    folder = CACHE / f"lighthouse-{digest.hexdigest()[:12]}"
    cli = folder / "node_modules" / "lighthouse" / "cli" / "index.js"
    done = folder / ".installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lighthouse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists() and cli.exists():
            return cli
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name in files:
            shutil.copy(NPM_DIR / name, folder / name)
        # --prefer-offline: packages already in npm's own cache are not asked for again (the
        # lockfile's hashes check them either way).
        command = ["npm", "ci", "--prefer-offline", "--no-progress", "--loglevel=error"]
        try:
            ran = subprocess.run(
                command, cwd=folder, capture_output=True, text=True, timeout=NPM_TIMEOUT
            )
        except subprocess.TimeoutExpired as e:
            raise LighthouseError(f"npm ci took over {NPM_TIMEOUT} s in {folder}") from e
        if ran.returncode != 0 or not cli.exists():
            raise LighthouseError(f"npm ci exited {ran.returncode} in {folder}:\n{ran.stderr}")
        done.touch()
    return cli


def trusting_home(home: Path, ca: Path) -> Path:
    """A home folder for Chromium whose NSS store (~/.pki/nssdb, where Chromium on Linux
    keeps the certificates a user trusts) trusts ``ca`` to name web servers."""
    need("certutil")
    store = home / ".pki" / "nssdb"
    store.mkdir(parents=True, exist_ok=True)
    for args in (
        ["-N", "--empty-password"],
        ["-A", "-t", "C,,", "-n", "flaskr test CA", "-i", str(ca)],
    ):
        subprocess.run(["certutil", "-d", f"sql:{store}", *args],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
    return home


@dataclass
class Report:
    """One page's audit: its four scores (0 to 1) and what Lighthouse found wrong."""

    url: str
    #: The address audited in the end (a redirect's target).
    final_url: str
    seconds: float
    scores: dict[str, float | None]
    #: For each category scoring under 1, its failed audits that count towards the score.
    failed: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)

    def perfect(self) -> bool:
        return all(self.scores.get(c) == 1 for c in CATEGORIES)

    def explain(self) -> str:
        lines = [
            f"{self.url}: " + ", ".join(f"{c} {score(self.scores.get(c))}" for c in CATEGORIES)
        ]
        for category, audits in self.failed.items():
            lines += [f"  {category}:", *(f"    {a}" for a in audits)]
        if self.metrics:
            lines.append("  metrics: " + ", ".join(f"{k} {v}" for k, v in self.metrics.items()))
        return "\n".join(lines)


def score(value: float | None) -> str:
    return "none" if value is None else f"{round(value * 100)}"


def read_report(url: str, seconds: float, lhr: dict[str, Any]) -> Report:
    """What a Lighthouse result (its JSON) says of the page's four categories."""
    audits = lhr["audits"]
    scores = {c: lhr["categories"].get(c, {}).get("score") for c in CATEGORIES}
    failed: dict[str, list[str]] = {}
    for category in CATEGORIES:
        if scores[category] == 1:
            continue
        found = []
        for ref in lhr["categories"].get(category, {}).get("auditRefs", []):
            audit = audits.get(ref["id"], {})
            value = audit.get("score")
            if ref.get("weight", 0) > 0 and value is not None and value < 1:
                shown = audit.get("displayValue") or ""
                found.append(
                    f"{ref['id']} ({audit.get('title', '')}): score {value} {shown}".strip()
                )
        failed[category] = found
    metric_ids = ("first-contentful-paint", "largest-contentful-paint", "total-blocking-time",
                  "cumulative-layout-shift", "speed-index")  # fmt: skip
    metrics = {m: str(audits[m].get("displayValue", "")) for m in metric_ids if m in audits}
    if lhr.get("runtimeError"):
        failed["runtime error"] = [json.dumps(lhr["runtimeError"])]
    for warning in lhr.get("runWarnings", []):
        failed.setdefault("run warnings", []).append(warning)
    final = lhr.get("finalDisplayedUrl") or lhr.get("finalUrl") or ""
    return Report(url, final, seconds, scores, failed, metrics)


def audit(
    cli: Path, url: str, home: Path, out: Path, extra_headers: dict[str, str] | None = None
) -> Report:
    """Lighthouse's four categories for ``url``, in a Chromium of its own started with
    ``home`` (trusting_home's) as its home; ``extra_headers`` go with every request (a
    session cookie). The JSON result is kept in ``out``."""
    need("chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        "node", str(cli), url,
        "--output=json", f"--output-path={out}", "--quiet",
        f"--only-categories={','.join(CATEGORIES)}",
        f"--chrome-flags={' '.join(CHROME_FLAGS)}",
        "--disable-full-page-screenshot",
        *SETTINGS,
    ]  # fmt: skip
    if extra_headers:
        headers = out.with_suffix(".headers.json")
        headers.write_text(json.dumps(extra_headers))
        headers.chmod(0o600)
        command.append(f"--extra-headers={headers}")
    tmp = out.parent / "tmp"  # chrome-launcher's profiles
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "CHROME_PATH": CHROMIUM, "TMPDIR": str(tmp)}
    started = time.monotonic()
    code, stderr = _bounded(command, env, AUDIT_TIMEOUT)
    seconds = time.monotonic() - started
    if code != 0 or not out.exists():
        raise LighthouseError(f"lighthouse exited {code} on {url}:\n{stderr[-3000:]}")
    return read_report(url, seconds, json.loads(out.read_text()))


def _bounded(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``command`` in a process group of its own (node and the Chromium it starts), all
    of it killed if it outlasts ``timeout``, or is left behind; return its exit code and
    standard error."""
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise LighthouseError(f"lighthouse took over {timeout} s: {' '.join(command[:3])}") from e
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a Chromium left behind
    return process.returncode, stderr
