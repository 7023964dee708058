"""The host's nginx site, deploy/nginx/flaskr.conf, run by a private nginx in front of a gunicorn
on 127.0.0.1: for the micro-cache suite and bench/micro_cache.py.

The site is rendered as scripts/install-host writes it (its server_name set, the micro-cache
turned on by deploy/nginx/micro-cache.awk when asked), then pointed at loopback ports and
private folders: its listen lines, the upstream's socket, the static files and the cache's
folder. Everything else, the snippets included, is the file as shipped. /etc/nginx is never
read or written, but for Debian's mime.types.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from toolkit import ROOT
from toolkit.fleet import Nginx
from toolkit.ports import free_port

NGINX_DIR = ROOT / "deploy" / "nginx"
SNIPPETS = ("flaskr-tls.conf", "flaskr-micro-cache.conf", "flaskr-micro-cache-zone.conf")
#: What the bench's static row serves: as many bytes as Flask's hello.
HELLO = "Hello, World!"

MAIN_CONF = """\
# Written by tests/e2e/site_nginx.py: Debian's nginx.conf, reduced to what the site relies on.
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


def render_site(micro_cache: bool, names: str = "127.0.0.1 localhost") -> str:
    """deploy/nginx/flaskr.conf as install-host writes it for ``names``."""
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
    return site


class SiteNginx(Nginx):
    """A real nginx serving flaskr's host site on 127.0.0.1, its upstream a gunicorn port."""

    def __init__(
        self, upstream: int, micro_cache: bool, access_log: bool = True, rules: str = ""
    ) -> None:
        """``rules``: other text for flaskr-micro-cache.conf (a variant to measure)."""
        self.micro_cache = micro_cache
        self.rules = rules
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
        tls_port = free_port()
        lines = []
        for line in render_site(self.micro_cache).splitlines():
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
