"""Helpers for the scale-out suite: a PostgreSQL cluster that can be stopped and started
again on the same port, several gunicorn instances, a real nginx in front of them whose
upstreams can be swapped with a graceful reload, and request loops that count failures.

Everything listens on 127.0.0.1 only, every loop is bounded in time and count, and every
process started here is stopped however the test ends.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.e2e.browser import TOKEN
from tests.e2e.conftest import apt_install, free_port, wait_for_http
from tests.e2e.servers import app_env, gunicorn, postgres_bin, stop

#: What the issue documents; parsed as JSON by Flask's from_prefixed_env.
ENGINE_OPTIONS = '{"pool_size": 5, "pool_recycle": 1800, "pool_pre_ping": true}'


def until(condition: Callable[[], object], timeout: float, what: str, step: float = 0.05):
    """Poll ``condition`` until it returns something true, or fail when the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers, nginx's worker processes)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


# --- PostgreSQL -------------------------------------------------------------------------


class Postgres:
    """A throwaway cluster owned by ``postgres`` on 127.0.0.1:PORT that can be stopped and
    started again on the same port and data directory (servers.postgresql cannot)."""

    def __init__(self, port: int) -> None:
        bin_dir = postgres_bin()
        if bin_dir is None:
            apt_install("postgresql")
            bin_dir = postgres_bin()
        assert bin_dir is not None, "PostgreSQL's initdb is missing after installing postgresql"
        self.bin = bin_dir
        self.port = port
        self.user = pwd.getpwnam("postgres")
        self.base = Path(tempfile.mkdtemp(prefix="flaskr-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.sockets.mkdir()
        os.chown(self.base, self.user.pw_uid, self.user.pw_gid)
        os.chown(self.sockets, self.user.pw_uid, self.user.pw_gid)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/flaskr"
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}/flaskr"

    def _run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd],
            check=check,
            capture_output=True,
            cwd=self.base,
            timeout=120,
        )

    def create(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  "postgres", "-E", "UTF8")  # fmt: skip
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "flaskr")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.base / "log"), "-w", "-t", "60", "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session (what a restart of the service does)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                  "stop")  # fmt: skip

    def running(self) -> bool:
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "status", check=False)
        return done.returncode == 0

    def query(self, sql: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=10) as connection:
            return connection.execute(sql, params or None).fetchall()

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop", check=False)  # fmt: skip
        shutil.rmtree(self.base, ignore_errors=True)


@contextlib.contextmanager
def postgres(port: int) -> Iterator[Postgres]:
    pg = Postgres(port)
    try:
        pg.create()
        yield pg
    finally:
        pg.destroy()


# --- gunicorn instances ------------------------------------------------------------------


@dataclass
class Instance:
    """One gunicorn master (the seed's command line) with its own port and instance folder."""

    name: str
    port: int
    process: subprocess.Popen
    log: Path
    instance_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def workers(self) -> set[int]:
        return children(self.process.pid)

    def stop(self) -> int:
        """gunicorn's graceful stop: TERM, in-flight requests finish, exit code 0."""
        return stop(self.process, timeout=30)


class Fleet:
    """gunicorn instances of flaskr sharing one database and one secret key file."""

    def __init__(self, stack: contextlib.ExitStack, workdir: Path, env: dict[str, str]):
        self.stack = stack
        self.workdir = workdir
        self.env = env
        self.names = (f"i{n}" for n in itertools.count(1))

    def start(self, workers: int = 2, wait: bool = True) -> Instance:
        name = next(self.names)
        port = free_port()
        instance_path = self.workdir / name
        instance_path.mkdir()
        env = {**self.env, "FLASKR_INSTANCE_PATH": str(instance_path)}
        args = ["--workers", str(workers), "--timeout", "120", "--bind", f"127.0.0.1:{port}"]
        log = self.workdir / f"{name}.log"
        process = self.stack.enter_context(gunicorn(args, env, log))
        instance = Instance(name, port, process, log, instance_path)
        if wait:
            self.wait_ready(instance)
        return instance

    def wait_ready(self, instance: Instance, timeout: float = 90) -> None:
        wait_for_http(instance.base + "/readyz", timeout=timeout)
        if instance.process.poll() is not None:
            pytest.fail(f"{instance.name} exited: {instance.log.read_text()[-2000:]}")


def fleet_env(workdir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """What every instance shares: the database, the key (a file, as a compose or Kubernetes
    secret hands it over) and the engine options; each gets its own instance folder."""
    key_file = workdir / "secret_key"
    if not key_file.exists():
        key_file.write_text(os.urandom(32).hex() + "\n")
        key_file.chmod(0o600)
    env = app_env(workdir, FLASKR_DATABASE_URL=database_url, **extra)
    del env["FLASKR_SECRET_KEY"]
    env.update(
        FLASKR_SECRET_KEY_FILE=str(key_file),
        FLASKR_SQLALCHEMY_ENGINE_OPTIONS=ENGINE_OPTIONS,
        FLASKR_PROXY_FIX="1",
    )
    env.update(extra)
    return env


# --- nginx -------------------------------------------------------------------------------

NGINX_CONF = """\
# Written by tests/e2e/scale_helpers.py: a load balancer in front of flaskr's instances.
{user}
worker_processes {worker_processes};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {access_log};
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream flaskr {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 5376k;
        location / {{
            proxy_pass http://flaskr;
            # A refused connection (an instance stopping or not up yet), a 502 or a 503 is
            # retried on the next instance; a POST already sent is never sent twice.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_timeout 15s;
            proxy_connect_timeout 2s;
            proxy_read_timeout 60s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Prefix "";
        }}
    }}
}}
"""


class Nginx:
    """A real nginx (Debian's) run in the foreground with its own config, pid file, logs and
    temp paths in a private folder; /etc/nginx is never read or touched."""

    def __init__(self, ports: list[int], access_log: bool = True) -> None:
        apt_install("nginx", commands=("nginx",))
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.dir = Path(tempfile.mkdtemp(prefix="flaskr-nginx-"))
        # Workers run as www-data when nginx starts as root: they must reach the temp paths.
        self.dir.chmod(0o755)
        self.conf = self.dir / "nginx.conf"
        self.port = free_port()
        self.access_log = access_log
        self.process: subprocess.Popen | None = None
        self.ports = list(ports)
        self._write(self.ports)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write(self, ports: list[int]) -> None:
        # max_fails=0: a 503 while the database is down is the app's answer, not a sign that
        # the instance is broken; counting it would mark every instance down and answer 502
        # "no live upstreams" for fail_timeout after the database is back. A stopped
        # instance costs one refused connection per request, retried at once.
        servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in ports)
        self.conf.write_text(
            NGINX_CONF.format(
                user="user www-data;" if os.geteuid() == 0 else "",
                worker_processes=2,
                dir=self.dir,
                access_log=f"{self.dir}/access.log" if self.access_log else "off",
                servers=servers,
                port=self.port,
            )
        )
        check = subprocess.run(self._cmd("-t"), capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr

    def _cmd(self, *extra: str) -> list[str]:
        return [self.binary, "-c", str(self.conf), "-p", str(self.dir), "-e",
                str(self.dir / "error.log"), *extra]  # fmt: skip

    def start(self) -> None:
        with open(self.dir / "stderr.log", "wb") as log:
            self.process = subprocess.Popen(
                self._cmd("-g", "daemon off;"),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_http(self.base + "/healthz", timeout=30)
        until(lambda: len(self.workers()) == 2, 10, "nginx's workers")

    def workers(self) -> set[int]:
        assert self.process is not None
        return children(self.process.pid)

    def set_upstreams(self, ports: list[int]) -> None:
        """Swap the upstream list with a graceful reload: new workers take new connections,
        the old ones finish their requests and exit. Returns once only new workers remain,
        so no request can reach an instance that is no longer listed."""
        assert self.process is not None
        self._write(ports)
        old = self.workers()
        os.kill(self.process.pid, signal.SIGHUP)
        until(
            lambda: (w := self.workers()) and not (w & old) and len(w) == 2,
            30,
            "nginx to reload",
        )
        self.ports = list(ports)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def nginx(ports: list[int], access_log: bool = True) -> Iterator[Nginx]:
    server = Nginx(ports, access_log=access_log)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


# --- load --------------------------------------------------------------------------------


@dataclass
class Tally:
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


class Loops:
    """Threads that loop until stopped, bounded by ``max_seconds`` and ``max_requests`` each
    so the load always ends by itself. Every request opens its own connection
    (``Connection: close``): a failure counted here is the servers', not a keep-alive race."""

    def __init__(self, max_seconds: float = 300, max_requests: int = 200_000) -> None:
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.errors: list[BaseException] = []

    def _spawn(self, body: Callable[[], None]) -> None:
        deadline = time.monotonic() + self.max_seconds

        def loop() -> None:
            try:
                for _ in range(self.max_requests):
                    if self.stopping.is_set() or time.monotonic() > deadline:
                        return
                    body()
            except BaseException as e:  # reported by stop()
                self.errors.append(e)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self.threads.append(thread)

    def readers(self, urls: list[str], threads: int) -> Tally:
        """GET each URL in turn; anything but a 200 is a failure."""
        tally = Tally()
        for n in range(threads):
            cycle = itertools.cycle(urls[n % len(urls) :] + urls[: n % len(urls)])

            def body(cycle: Iterator[str] = cycle) -> None:
                url = next(cycle)
                try:
                    r = requests.get(
                        url, timeout=30, allow_redirects=False, headers={"Connection": "close"}
                    )
                except requests.RequestException as e:
                    tally.record(False, type(e).__name__)
                    return
                tally.record(r.status_code == 200, f"{r.status_code} {url}")

            self._spawn(body)
        return tally

    def writers(self, base: str, username: str, password: str, threads: int) -> Writes:
        """Logged-in sessions posting uniquely titled posts; a 302 to the index is a write
        the server acknowledged, and its title is kept to be looked for afterwards."""
        writes = Writes()
        for n in range(threads):
            http = requests.Session()
            http.headers["Connection"] = "close"
            login(http, base, username, password)
            page = http.get(base + "/create", timeout=30)
            page.raise_for_status()
            found = TOKEN.search(page.text)
            assert found, "no CSRF token on /create"
            token = found.group(1)
            prefix = f"w{n}-{uuid.uuid4().hex[:8]}"
            counter = itertools.count()

            def body(http=http, token=token, prefix=prefix, counter=counter) -> None:
                title = f"{prefix}-{next(counter)}"
                data = {"title": title, "body": "load", "tags": "", "csrf_token": token}
                try:
                    r = http.post(base + "/create", data=data, timeout=30, allow_redirects=False)
                except requests.RequestException as e:
                    writes.tally.record(False, type(e).__name__)
                    return
                ok = r.status_code == 302 and r.headers.get("Location") == "/"
                writes.tally.record(ok, str(r.status_code))
                if ok:
                    with writes.tally.lock:
                        writes.acknowledged.append(title)

            self._spawn(body)
        return writes

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads), "a request loop did not stop"
        assert not self.errors, self.errors


@dataclass
class Writes:
    tally: Tally = field(default_factory=Tally)
    acknowledged: list[str] = field(default_factory=list)


@contextlib.contextmanager
def loops(max_seconds: float = 300) -> Iterator[Loops]:
    running = Loops(max_seconds=max_seconds)
    try:
        yield running
    finally:
        running.stop()


def login(http: requests.Session, base: str, username: str, password: str) -> None:
    page = http.get(base + "/auth/login", timeout=30)
    page.raise_for_status()
    found = TOKEN.search(page.text)
    assert found, "no CSRF token on /auth/login"
    data = {"username": username, "password": password, "csrf_token": found.group(1)}
    r = http.post(base + "/auth/login", data=data, timeout=30, allow_redirects=False)
    assert r.status_code == 302 and r.headers["Location"] == "/", r.text[:500]


def status(url: str) -> int | None:
    """The status ``url`` answers with, or None when nothing answers."""
    try:
        return requests.get(url, timeout=5, headers={"Connection": "close"}).status_code
    except requests.RequestException:
        return None
