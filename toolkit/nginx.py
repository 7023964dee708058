"""A real nginx (Debian's) of our own, on 127.0.0.1, with its configuration, pid file, logs and
temporary folders in a private folder; /etc/nginx is never written, and read only for Debian's
mime.types. Two kinds:

- ``Nginx``: a load balancer in front of flaskr's instances (toolkit/fleet.py), whose upstreams
  can be swapped with a graceful reload: the scale-out suite and bench/scale_out.py;
- ``SiteNginx``: the host's site, deploy/nginx/flaskr.conf, in front of one gunicorn: the
  micro-cache and Lighthouse suites and bench/micro_cache.py. The site is rendered as
  scripts/install-host writes it (its server_name set, the micro-cache turned on by
  deploy/nginx/micro-cache.awk when asked, https with a certificate of one's own by
  deploy/nginx/tls.awk when given one), then pointed at loopback ports and private folders:
  its listen lines, the upstream's socket, the static files and the cache's folder.
  Everything else, the snippets included, is the file as shipped.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from toolkit import ROOT
from toolkit.packages import need
from toolkit.ports import free_port
from toolkit.servers import children, stop
from toolkit.wait import until, wait_for_http

# --- a load balancer ---------------------------------------------------------------------

NGINX_CONF = """\
# Written by toolkit/nginx.py (Nginx): a load balancer in front of flaskr's instances.
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
        need("nginx")
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
        self._wait_ready()
        until(lambda: len(self.workers()) == 2, 10, "nginx's workers")

    def _wait_ready(self) -> None:
        wait_for_http(self.base + "/healthz", timeout=30)

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
        if self.process is not None:
            stop(self.process, 15, signal.SIGQUIT)  # graceful

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


# --- the host's site ---------------------------------------------------------------------

NGINX_DIR = ROOT / "deploy" / "nginx"
SNIPPETS = ("flaskr-tls.conf", "flaskr-micro-cache.conf", "flaskr-micro-cache-zone.conf")
#: What the bench's static row serves: as many bytes as Flask's hello.
HELLO = "Hello, World!"

MAIN_CONF = """\
# Written by toolkit/nginx.py (SiteNginx): Debian's nginx.conf, reduced to what the site relies on.
{user}
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    sendfile on;
    tcp_nopush on;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {access_log};
    gzip on;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/site.conf;
}}
"""


def render_site(
    micro_cache: bool, names: str = "127.0.0.1 localhost", tls_dir: Path | None = None
) -> str:
    """deploy/nginx/flaskr.conf as install-host writes it for ``names``; with ``tls_dir``
    (holding flaskr.crt and flaskr.key) as install-host --tls-cert writes it: the app on 443,
    plain http redirected there."""
    site = (NGINX_DIR / "flaskr.conf").read_text()
    marker = "server_name localhost;  # FLASKR_SERVER_NAME"
    assert marker in site
    site = site.replace(marker, f"server_name {names};  # FLASKR_SERVER_NAME")
    if micro_cache:
        site = subprocess.run(
            ["awk", "-f", str(NGINX_DIR / "micro-cache.awk")],
            input=site,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if tls_dir is not None:
        site = subprocess.run(
            ["awk", "-v", f"dir={tls_dir}", "-v", f"names={names}", "-v", "ocsp=0",
             "-f", str(NGINX_DIR / "tls.awk")],
            input=site,
            capture_output=True,
            text=True,
            check=True,
        ).stdout  # fmt: skip
    return site


class SiteNginx(Nginx):
    """A real nginx serving flaskr's host site on 127.0.0.1, its upstream a gunicorn port."""

    def __init__(
        self,
        upstream: int,
        micro_cache: bool,
        access_log: bool = True,
        rules: str = "",
        tls_dir: Path | None = None,
        tls_port: int | None = None,
    ) -> None:
        """``rules``: other text for flaskr-micro-cache.conf (a variant to measure).
        ``tls_dir``: https for the site's names with flaskr.crt and flaskr.key from there, on
        ``tls_port`` (default: a free port), as install-host --tls-cert sets it up."""
        self.micro_cache = micro_cache
        self.rules = rules
        self.tls_dir = tls_dir
        self.tls_port = tls_port or free_port()  # the https servers: plain http there gets 400
        super().__init__([upstream], access_log=access_log)

    def _write(self, ports: list[int]) -> None:
        (upstream,) = ports
        static = self.dir / "static"
        if not static.exists():
            shutil.copytree(ROOT / "flaskr" / "static", static)
            (static / "hello.txt").write_text(HELLO)
        snippets = self.dir / "snippets"
        snippets.mkdir(exist_ok=True)
        for name in SNIPPETS:
            text = (NGINX_DIR / name).read_text()
            if name == "flaskr-micro-cache.conf" and self.rules:
                text = self.rules
            (snippets / name).write_text(
                text.replace("/var/cache/nginx/flaskr", f"{self.dir}/cache")
            )
        tls_port = self.tls_port
        lines = []
        for line in render_site(self.micro_cache, tls_dir=self.tls_dir).splitlines():
            if "listen [::]" in line:
                continue  # loopback IPv4 only
            line = line.replace("listen 443 ", f"listen 127.0.0.1:{tls_port} ")
            line = line.replace("listen 80", f"listen 127.0.0.1:{self.port}")
            line = line.replace("unix:/run/flaskr/flaskr.sock", f"127.0.0.1:{upstream}")
            line = line.replace("/opt/flaskr/app/flaskr/static/", f"{static}/")
            line = line.replace("include snippets/", f"include {snippets}/")
            lines.append(line)
        (self.dir / "site.conf").write_text("\n".join(lines) + "\n")
        self.conf.write_text(
            MAIN_CONF.format(
                user="user www-data;" if os.geteuid() == 0 else "",
                dir=self.dir,
                access_log=f"{self.dir}/access.log" if self.access_log else "off",
            )
        )
        check = subprocess.run(self._cmd("-t"), capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stderr

    def _wait_ready(self) -> None:
        if self.tls_dir is None:
            super()._wait_ready()
            return
        # With https, plain http answers the site's names with a redirect to it.
        until(lambda: self._plain_status("/healthz") == 301, 30, "nginx's redirect to https")

    def _plain_status(self, path: str) -> int | None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def workers(self) -> set[int]:
        """The worker processes only: a cache adds a cache manager and a loader."""
        return {p for p in super().workers() if b"worker process" in _cmdline(p)}

    def cached_files(self) -> list[Path]:
        """The pages the micro-cache holds on disk now."""
        return [p for p in (self.dir / "cache").rglob("*") if p.is_file()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
