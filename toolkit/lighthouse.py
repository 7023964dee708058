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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import ROOT, ToolkitError
from toolkit.browser import CHROMIUM, CHROMIUM_FLAGS
from toolkit.debian import CACHE  # the npm packages go beside the suites' other caches
from toolkit.packages import need

NPM_DIR = ROOT / "toolkit" / "lighthouse-npm"
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
#: Chromium as the browser suites start it (toolkit/browser.py: as root, with no sandbox, kept
#: off the closed network), and headless, which Playwright adds there and chrome-launcher not.
CHROME_FLAGS = ("--headless=new", *CHROMIUM_FLAGS)
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
#: Audits that weigh nothing in a category's score, yet stand for what the site promises
#: (docs/performance.md, docs/security.md): each must pass (score 1) or not apply.
REQUIRED_AUDITS = (
    "uses-text-compression",  # nginx's gzip_types: CSS, JavaScript, the feed, SVG
    "unsized-images",  # thumbnails keep their box: no layout shift as they load
    "uses-optimized-images",
    "offscreen-images",
    "unminified-css",
    "unused-css-rules",
    "redirects",
    "document-latency-insight",
)
# Not required: "uses-responsive-images" and "image-delivery-insight", which find that a
# listing's thumbnail is the post's whole picture scaled down by the browser (up to 16 KiB
# more on the index with two pictures): there is no thumbnail size yet.
#: Security audits that list findings by severity: none may be High.
NO_HIGH_FINDINGS = ("csp-xss", "clickjacking-mitigation")
#: The category whose score rests on this machine's timing too (total blocking time, speed
#: index): the others come from the page alone.
TIMED = "performance"
NODE_MIN = (18, 20)
NPM_TIMEOUT = 300
#: One page's audit: Chromium's start, the load, the trace and its analysis.
AUDIT_TIMEOUT = 120


class LighthouseError(ToolkitError):
    """Lighthouse could not be installed or could not audit a page."""


def install() -> Path:
    """``npm ci`` the pinned packages into the cache once per lockfile (a second suite waits
    for the first); return Lighthouse's command-line script."""
    for program in ("node", "npm"):
        if shutil.which(program) is None:
            raise LighthouseError(f"no {program} on PATH: Lighthouse needs Node.js 18.20 or newer")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30)
    found = tuple(int(part) for part in node.stdout.strip().lstrip("v").split(".")[:2])
    if found < NODE_MIN:
        raise LighthouseError(f"Node.js {node.stdout.strip()}: Lighthouse needs 18.20 or newer")
    files = ("package.json", "package-lock.json", ".npmrc")
    digest = hashlib.sha256(b"".join((NPM_DIR / name).read_bytes() for name in files))
    folder = CACHE / f"lighthouse-{digest.hexdigest()[:12]}"
    cli = folder / "node_modules" / "lighthouse" / "cli" / "index.js"
    done = folder / ".installed"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lighthouse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for old in CACHE.glob("lighthouse-*"):
            if old != folder:  # another lockfile's packages (about 190 MB each)
                shutil.rmtree(old, ignore_errors=True)
        if done.exists() and cli.exists():
            return cli
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name in files:
            shutil.copy(NPM_DIR / name, folder / name)
        # --prefer-offline: packages already in npm's own cache are not asked for again (the
        # lockfile's hashes check them either way).
        # --ignore-scripts here too: .npmrc says so, but npm_config_* in the environment wins.
        command = ["npm", "ci", "--prefer-offline", "--ignore-scripts", "--no-progress",
                   "--loglevel=error"]  # fmt: skip
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
    #: The address audited in the end (a redirect's target), and what it answered.
    final_url: str
    status: int | None
    seconds: float
    scores: dict[str, float | None]
    #: What fails the page, by category (each with its failed audits that count towards the
    #: score) and by kind (required audits, security findings, run warnings): empty if none.
    failed: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    #: Where the page's links go, as the audited browser saw them (logged in or not).
    links: list[str] = field(default_factory=list)
    path: Path | None = None

    def perfect(self) -> bool:
        return not self.failed  # a category under 100 is among the failed

    def only_timing(self) -> bool:
        """Whether all that fell short is the performance score, which this machine's load
        can move (long tasks, frames), and not what the page is."""
        return set(self.failed) == {TIMED}

    def explain(self) -> str:
        lines = [
            f"{self.url}: " + ", ".join(f"{c} {score(self.scores.get(c))}" for c in CATEGORIES)
        ]
        for category, audits in self.failed.items():
            lines += [f"  {category}:", *(f"    {a}" for a in audits)]
        if self.metrics:
            lines.append("  metrics: " + ", ".join(f"{k} {v}" for k, v in self.metrics.items()))
        if self.failed and self.path:
            lines.append(f"  report: {self.path}")
        return "\n".join(lines)


def score(value: float | None) -> str:
    return "none" if value is None else f"{round(value * 100)}"


def _items(audit: dict[str, Any]) -> list[dict[str, Any]]:
    details = audit.get("details") or {}
    return list(details.get("items") or [])


def _part(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    return value if isinstance(value, dict) else {}


def _describe(audit_id: str, audit: dict[str, Any]) -> list[str]:
    """An audit that failed, with what it names first (a resource, an element, a message)."""
    shown = audit.get("displayValue") or ""
    lines = [f"{audit_id} ({audit.get('title', '')}): score {audit.get('score')} {shown}".strip()]
    for item in _items(audit)[:3]:
        source, node = _part(item, "source"), _part(item, "node")
        what = (item.get("url") or source.get("url") or node.get("snippet")
                or item.get("description") or "")  # fmt: skip
        if what:
            lines.append(f"  - {str(what)[:200]}")
    return lines


def read_report(url: str, seconds: float, lhr: dict[str, Any]) -> Report:
    """What a Lighthouse result (its JSON) says of the page: its four categories, the audits
    required beyond them (REQUIRED_AUDITS, NO_HIGH_FINDINGS), and the main document's status."""
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
                found += _describe(ref["id"], audit)
        failed[category] = found
    for audit_id in REQUIRED_AUDITS:
        audit = audits.get(audit_id)
        if audit is None:
            failed.setdefault("required audits", []).append(f"{audit_id}: not in the report")
        elif audit.get("scoreDisplayMode") != "notApplicable" and audit.get("score") != 1:
            failed.setdefault("required audits", []).extend(_describe(audit_id, audit))
    for audit_id in NO_HIGH_FINDINGS:
        audit = audits.get(audit_id, {})
        high = [i for i in _items(audit) if str(i.get("severity", "")).lower() == "high"]
        if high:
            failed.setdefault("security findings", []).extend(
                f"{audit_id}: {i.get('description', '')} {i.get('directive', '')}".strip()
                for i in high
            )
    metric_ids = ("first-contentful-paint", "largest-contentful-paint", "total-blocking-time",
                  "cumulative-layout-shift", "speed-index")  # fmt: skip
    metrics = {m: str(audits[m].get("displayValue", "")) for m in metric_ids if m in audits}
    if lhr.get("runtimeError"):
        failed["runtime error"] = [json.dumps(lhr["runtimeError"])]
    for warning in lhr.get("runWarnings", []):
        failed.setdefault("run warnings", []).append(warning)
    final = lhr.get("finalDisplayedUrl") or lhr.get("finalUrl") or ""
    requests = _items(audits.get("network-requests", {}))
    status = next((r.get("statusCode") for r in requests if r.get("url") == final), None)
    return Report(url, final, status, seconds, scores, failed, metrics)


def audit(
    cli: Path, url: str, home: Path, out: Path, extra_headers: dict[str, str] | None = None
) -> Report:
    """Lighthouse's four categories for ``url``, in a Chromium of its own started with
    ``home`` (trusting_home's) as its home; ``extra_headers`` go with every request (a
    session cookie). The JSON result is kept in ``out``, without those headers."""
    need("chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    # What the browser gathered (the page's links among it), kept for the audit that follows.
    artifacts = out.with_name(out.stem + "-artifacts")
    command = [
        "node", str(cli), url,
        "--output=json", f"--output-path={out}", "--quiet",
        f"--only-categories={','.join(CATEGORIES)}",
        f"--chrome-flags={' '.join(CHROME_FLAGS)}",
        "--disable-full-page-screenshot",
        f"--gather-mode={artifacts}", f"--audit-mode={artifacts}",
        *SETTINGS,
    ]  # fmt: skip
    headers = out.with_suffix(".headers.json")
    if extra_headers:
        headers.write_text(json.dumps(extra_headers))
        headers.chmod(0o600)
        command.append(f"--extra-headers={headers}")
    # chrome-launcher's profile, on a short path: Chromium's socket in it must fit in 108 bytes.
    tmp = Path(tempfile.mkdtemp(prefix="flaskr-lh-"))
    env = {**os.environ, "HOME": str(home), "CHROME_PATH": CHROMIUM, "TMPDIR": str(tmp)}
    started = time.monotonic()
    try:
        code, stderr = _bounded(command, env, AUDIT_TIMEOUT)
        seconds = time.monotonic() - started
        if code != 0 or not out.exists():
            logs = "".join(log.read_text(errors="replace")[-2000:] for log in tmp.rglob("*.log"))
            raise LighthouseError(
                f"lighthouse exited {code} on {url}:\n{stderr[-3000:]}\nChromium: {logs}"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        headers.unlink(missing_ok=True)
    lhr = json.loads(out.read_text())
    # Lighthouse copies the extra headers (a session cookie) into its report's settings.
    lhr.get("configSettings", {}).pop("extraHeaders", None)
    out.write_text(json.dumps(lhr))
    out.chmod(0o600)
    report = read_report(url, seconds, lhr)
    report.path = out
    gathered = json.loads((artifacts / "artifacts.json").read_text())
    report.links = [a.get("href", "") for a in gathered.get("AnchorElements", [])]
    shutil.rmtree(artifacts, ignore_errors=True)  # a trace of several MB
    return report


def audit_settled(
    cli: Path,
    url: str,
    home: Path,
    out: Path,
    extra_headers: dict[str, str] | None = None,
    runs: int = 3,
) -> list[Report]:
    """``audit`` once; if all that fell short is the performance score, which a busy
    machine moves (Lighthouse's own advice for varying scores), ``runs`` audits in all, whose
    median performance counts. Return every report, the first first."""
    reports = [audit(cli, url, home, out, extra_headers)]
    while reports[0].only_timing() and len(reports) < runs:
        again = out.with_name(f"{out.stem}-{len(reports) + 1}.json")
        reports.append(audit(cli, url, home, again, extra_headers))
    return reports


def settled(reports: list[Report]) -> bool:
    """Whether audit_settled's reports make a perfect page: one perfect audit, or the median
    performance 100 with nothing else short in any run."""
    performance = sorted(r.scores.get(TIMED) or 0 for r in reports)
    return all(set(r.failed) <= {TIMED} for r in reports) and performance[len(reports) // 2] == 1


def _bounded(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run ``command`` as the first process of a PID namespace of its own, so that the
    Chromium it starts (chrome-launcher detaches it into a session of its own) ends with it,
    whatever ends it: its exit, a timeout or an interrupted test. Return its exit code and
    standard error."""
    process = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", *command],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LighthouseError(f"lighthouse took over {timeout} s: {' '.join(command[:3])}") from e
    finally:
        if process.returncode is None:  # a timeout, or the test interrupted
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # unshare, and so the namespace
            process.wait()
    return process.returncode, stderr
