"""Load for the fault and scale-out suites: request loops on threads, each bounded by a
deadline and a count (so a load always ends by itself) and stopped together, and the clients
they run.

Two ways to count. A ``Client`` (one person, its own requests.Session) times every request
into a ``Tally`` of ``Result``s, by kind, keeping the key of every write the server
acknowledged, so that the database can be checked for it afterwards. ``Load.readers`` and
``Load.writers`` open a new connection per request (``Connection: close``: a failure counted
is the servers', not a keep-alive race) and keep only ``Counts``."""

from __future__ import annotations

import functools
import itertools
import json
import random
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from toolkit.visitors import Visitor
from toolkit.wait import until

#: (connect, read) seconds: generous, the machine is shared with other heavy suites.
TIMEOUT = (10, 60)


# --- the loops ---------------------------------------------------------------------------


class Load:
    """Threads that each call one step in a loop until ``seconds`` have passed, ``max_steps``
    were taken, or stop() is called. A step that raises (a bug in the test, not a failed
    request, which is only counted) is re-raised by stop()."""

    def __init__(self, seconds: float = 300, max_steps: int = 200_000) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.max_steps = max_steps
        self._stop = threading.Event()
        self._errors: list[str] = []
        self._threads: list[threading.Thread] = []

    @classmethod
    def each(cls, clients: Iterable[Any], step: Callable[[Any], object], seconds: float) -> Load:
        """One thread per client, calling ``step(client)``."""
        load = cls(seconds)
        for client in clients:
            load.loop(functools.partial(step, client))
        return load

    def loop(self, step: Callable[[], object]) -> None:
        """Start a thread calling ``step()`` until the load ends."""

        def run() -> None:
            try:
                for _ in range(self.max_steps):
                    if self._stop.is_set() or time.monotonic() > self.deadline:
                        return
                    step()
            except BaseException:
                self._errors.append(traceback.format_exc())

        thread = threading.Thread(target=run, name=f"load-{len(self._threads)}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(check=exc[0] is None)

    def wait(self) -> None:
        """Let the run go on to its deadline, then stop it."""
        while time.monotonic() < self.deadline and not self._stop.is_set():
            time.sleep(0.05)
        self.stop()

    def wait_for(self, predicate: Callable[[], object], timeout: float, what: str) -> float:
        """Poll ``predicate`` while the load runs; the time it became true."""

        def ready() -> object:
            assert not self._errors, self._errors[0]
            return predicate()

        until(ready, timeout, what, step=0.02)
        return time.monotonic()

    def stop(self, check: bool = True) -> None:
        self._stop.set()
        # A request in flight ends by its own timeout at the latest.
        limit = time.monotonic() + sum(TIMEOUT) + 10
        for thread in self._threads:
            thread.join(max(0.0, limit - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if check:
            assert not alive, f"load threads still running: {alive}"
            assert not self._errors, self._errors[0]

    def readers(self, urls: list[str], threads: int) -> Counts:
        """GET each URL in turn; anything but a 200 is a failure."""
        counts = Counts()
        for n in range(threads):
            cycle = itertools.cycle(urls[n % len(urls) :] + urls[: n % len(urls)])

            def body(cycle: Iterator[str] = cycle) -> None:
                url = next(cycle)
                try:
                    r = requests.get(
                        url, timeout=30, allow_redirects=False, headers={"Connection": "close"}
                    )
                except requests.RequestException as e:
                    counts.record(False, type(e).__name__)
                    return
                counts.record(r.status_code == 200, f"{r.status_code} {url}")

            self.loop(body)
        return counts

    def writers(self, base: str, username: str, password: str, threads: int) -> Writes:
        """Logged-in sessions posting uniquely titled posts; a 302 to the index is a write
        the server acknowledged, and its title is kept to be looked for afterwards."""
        writes = Writes()
        for n in range(threads):
            visitor = Visitor(base)
            visitor.http.headers["Connection"] = "close"
            visitor.login(username, password)
            token = visitor.csrf("/create")
            prefix = f"w{n}-{uuid.uuid4().hex[:8]}"
            counter = itertools.count()

            def body(visitor=visitor, token=token, prefix=prefix, counter=counter) -> None:
                title = f"{prefix}-{next(counter)}"
                data = {"title": title, "body": "load", "tags": ""}
                try:
                    r = visitor.post("/create", data, token)
                except requests.RequestException as e:
                    writes.tally.record(False, type(e).__name__)
                    return
                ok = r.status_code == 302 and r.headers.get("Location") == "/"
                writes.tally.record(ok, str(r.status_code))
                if ok:
                    with writes.tally.lock:
                        writes.acknowledged.append(title)

            self.loop(body)
        return writes


def status(url: str) -> int | None:
    """The status ``url`` answers with, or None when nothing answers."""
    try:
        return requests.get(url, timeout=5, headers={"Connection": "close"}).status_code
    except requests.RequestException:
        return None


# --- counts of readers and writers -------------------------------------------------------


@dataclass
class Counts:
    """What a group of request loops sent, and what went wrong (kept for the report)."""

    sent: int = 0
    failed: int = 0
    reasons: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, ok: bool, reason: str = "") -> None:
        with self.lock:
            self.sent += 1
            if not ok:
                self.failed += 1
                self.reasons[reason] += 1


@dataclass
class Writes:
    tally: Counts = field(default_factory=Counts)
    acknowledged: list[str] = field(default_factory=list)


def summary(what: str, reads: Counts, writes: Writes, seconds: float) -> str:
    """One line: the requests failed of those sent, reads and writes, in ``seconds``."""
    sent, failed = reads.sent + writes.tally.sent, reads.failed + writes.tally.failed
    return (
        f"\n{what}: {failed} requests failed of {sent} sent: {reads.sent} reads "
        f"({reads.failed} failed), {writes.tally.sent} writes ({writes.tally.failed} failed) "
        f"in {seconds:.1f}s"
    )


# --- clients whose every request is timed -------------------------------------------------


def make_session(pool: int = 4) -> requests.Session:
    """A Session of its own for one client thread: a bounded pool and no silent retries (a
    retried POST would hide a failure, or write twice)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool, max_retries=0)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class Result:
    """One request: what it was for, when it ran (time.monotonic()) and how it ended."""

    kind: str
    key: str  # the unique title / comment body / "user:post" it wrote, or the path it read
    started: float
    ended: float
    status: int | None  # None when no HTTP response came back
    error: str | None  # the exception when no response came back
    ok: bool

    @property
    def connection_error(self) -> bool:
        """No response at all because the connection was refused, reset or cut."""
        return self.status is None and bool(self.error) and not self.error.startswith("Timeout")


class Tally:
    """Every Result of a run, shared by the client threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: list[Result] = []

    def add(self, result: Result) -> None:
        with self._lock:
            self._results.append(result)

    @property
    def results(self) -> list[Result]:
        with self._lock:
            return list(self._results)

    def count(self, ok: bool | None = None, since: float | None = None) -> int:
        """How many requests ended (after ``since``), only the (un)successful ones if ``ok``."""
        return sum(
            1
            for r in self.results
            if (ok is None or r.ok == ok) and (since is None or r.ended > since)
        )

    def acknowledged(self, kind: str) -> set[str]:
        """The keys of the writes of ``kind`` the server answered with success."""
        return {r.key for r in self.results if r.kind == kind and r.ok}

    def failures(self) -> list[Result]:
        return [r for r in self.results if not r.ok]

    def summary(self, results: Iterable[Result] | None = None) -> dict[str, dict[str, Any]]:
        """Per kind (and "all"): requests sent, ok, failed, and the statuses and errors seen."""
        out: dict[str, dict[str, Any]] = {}
        for r in self.results if results is None else results:
            for kind in (r.kind, "all"):
                entry = out.setdefault(
                    kind,
                    {"sent": 0, "ok": 0, "failed": 0, "statuses": Counter(), "errors": Counter()},
                )
                entry["sent"] += 1
                entry["ok" if r.ok else "failed"] += 1
                entry["statuses"][str(r.status)] += 1
                if r.error:
                    entry["errors"][r.error.split(":")[0]] += 1
        for entry in out.values():
            entry["statuses"] = dict(entry["statuses"])
            entry["errors"] = dict(entry["errors"])
        return out


def describe(error: BaseException) -> str:
    """'ConnectionError: ...refused...' kept short, with the root cause named."""
    name = "Timeout" if isinstance(error, requests.Timeout) else type(error).__name__
    text = str(error)
    for cause in ("Connection refused", "Connection reset", "RemoteDisconnected", "Broken pipe"):
        if cause in text:
            return f"{name}: {cause}"
    return f"{name}: {text[:200]}"


class Client(Visitor):
    """One logged-in (or anonymous) person whose requests are timed into a Tally."""

    def __init__(self, base: str, tally: Tally, name: str = "") -> None:
        super().__init__(base, make_session())
        self.tally = tally
        self.name = name
        self.token: str | None = None

    def fetch_token(self, form_path: str = "/create") -> None:
        """Read a CSRF token once: it is bound to this session and does not expire."""
        self.token = self.csrf(form_path)

    def request(
        self,
        kind: str,
        method: str,
        path: str,
        key: str,
        succeeded: Callable[[requests.Response], bool],
        **kw: Any,
    ) -> Result:
        started = time.monotonic()
        status = error = None
        ok = False
        try:
            response = self.http.request(
                method, self.base + path, allow_redirects=False, timeout=TIMEOUT, **kw
            )
            response.content  # noqa: B018 - read the whole body: a cut one is a failure
            status = response.status_code
            ok = succeeded(response)
        except requests.RequestException as e:
            error = describe(e)
        result = Result(kind, key, started, time.monotonic(), status, error, ok)
        self.tally.add(result)
        return result

    def read(self, kind: str, path: str) -> Result:
        return self.request(kind, "GET", path, path, lambda r: r.status_code == 200)

    def write(self, kind: str, path: str, data: dict[str, str], key: str, location: str) -> Result:
        """POST a form with this session's token; a success is the redirect to ``location``."""
        assert self.token, "fetch_token() first"
        return self.request(
            kind,
            "POST",
            path,
            key,
            lambda r: r.status_code == 302 and r.headers.get("Location") == location,
            data={**data, "csrf_token": self.token},
        )


TAGS = ["load", "sqlite", "gunicorn", "faults", "burst"]


@dataclass
class Writer:
    """A client that writes: new posts with unique titles, comments with unique bodies on
    random posts, and a like on each post of ``to_like`` once (a like toggles, so a second one
    would undo the first)."""

    client: Client
    post_ids: list[int]
    seed: int
    to_like: list[int] = field(default_factory=list)
    n: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - not for security
        self.to_like = list(self.post_ids)
        self.rng.shuffle(self.to_like)

    def step(self) -> Result:
        self.n += 1
        c = self.client
        kinds = ["post", "comment", "like"] if self.to_like else ["post", "comment"]
        kind = self.rng.choice(kinds)
        if kind == "post":
            title = f"{c.name} post {self.n}"
            tags = ", ".join(self.rng.sample(TAGS, 2))
            data = {"title": title, "body": f"Written by {c.name} under load.", "tags": tags}
            return c.write("post", "/create", data, title, "/")
        if kind == "comment":
            post = self.rng.choice(self.post_ids)
            body = f"{c.name} comment {self.n}"
            return c.write("comment", f"/{post}/comment", {"body": body}, body, f"/{post}#comments")
        post = self.to_like.pop()
        return c.write("like", f"/{post}/like", {}, f"{c.name}:{post}", f"/{post}")


@dataclass
class Reader:
    """An anonymous client reading ``paths`` (kind -> path) in turn; each request carries a
    unique query string, so that the access log tells which requests a worker served."""

    client: Client
    paths: dict[str, str]
    n: int = 0

    def step(self) -> Result:
        self.n += 1
        kinds = list(self.paths)
        kind = kinds[self.n % len(kinds)]
        result = self.client.read(kind, f"{self.paths[kind]}?r={self.client.name}-{self.n}")
        if result.connection_error:
            time.sleep(0.01)  # the server is gone or going: do not spin
        return result


def as_dicts(results: Iterable[Result], limit: int = 20) -> list[dict[str, Any]]:
    """The first ``limit`` results, JSON-ready, to show what failed."""
    return [asdict(r) for r in list(results)[:limit]]


def record(tmp_path: Path, name: str, numbers: dict[str, Any]) -> None:
    """Print a test's numbers and keep them in numbers.json beside its other files."""
    path = tmp_path / "numbers.json"
    path.write_text(json.dumps(numbers, indent=2, sort_keys=True, default=str) + "\n")
    print(f"\n{name} ({path}):")
    for key, value in numbers.items():
        if isinstance(value, dict) and "all" in value:  # a Tally summary: totals, then kinds
            value = {"all": value["all"], **{k: v for k, v in value.items() if k != "all"}}
        print(f"  {key}: {json.dumps(value, default=str)}")
