"""What the tests and the benchmarks share to drive flaskr from outside: real servers, visitors,
machines and containers, each written once, one module per kind of part. The app never imports
it, and it is not in the wheel or the image (pyproject.toml's packages, .dockerignore): the
dependencies read flaskr <- toolkit <- {tests, bench}. It never imports pytest or tests/, so
bench/ runs without them; a failure is a ``ToolkitError`` (or a module's own subclass of it),
which fails a test like any exception.

- ``packages``: the Debian packages of every suite and bench, listed once and installed when
  missing (standard library only: .ci/run runs it before any venv exists);
- ``debian``: Debian root filesystems made by mmdebstrap from apt's own mirror, and the
  suites' cache (``FLASKR_E2E_CACHE``) (standard library only: scripts/test runs it early);
- ``ports``: free ports on 127.0.0.1;
- ``wait``: polling with a deadline, instead of sleeping;
- ``visitors``: a person's visit over HTTP (cookies kept, CSRF tokens read from the forms);
- ``servers``: flaskr's environment, its CLI, gunicorn, and any process stopped however the
  caller ends;
- ``fleet``: several gunicorn instances on one database and one key;
- ``nginx``: a private nginx, as a load balancer in front of a fleet or as the host's site;
- ``postgres``: a throwaway PostgreSQL cluster;
- ``gunicorn_log``: the requests and errors a gunicorn log tells of;
- ``load``: request loops on threads, bounded in time and count, that count what failed;
- ``drills``: a backup drill's writers;
- ``cmdlines``: every process's command line sampled while a secret must stay off them;
- ``apps``: flaskr in this process on a new database with the tutorial's data;
- ``images``: small real images to upload; ``hostile``: uploads and Markdown built to cost;
- ``recipes``: the guides' shell recipes, read from the guides, so a test runs what a reader
  types;
- ``machines``: a throwaway systemd-nspawn Debian machine, and ``machine_client``, the HTTP
  client run inside its network namespace (by path, on the standard library only);
- ``tls``: a certificate authority and an ACME server (pebble) for https;
- ``docker``: a dockerd of our own and a local registry;
- ``containers``: podman or Docker driven through scripts/container with the host's Python
  hidden, the stand-in base image, a terminal for ``exec -it``;
- ``browser``: headless Chromium driven by Playwright;
- ``scanner``: Debian's wapiti, a web vulnerability scanner, kept off the network;
- ``mailserver``: a real SMTP server (aiosmtpd, STARTTLS) and its Maildir, and mail senders;
- ``isolation_reports``: where isolation reports are saved, and how flaskr's gunicorn is
  recognised in one.

tests/e2e/ holds the suites, their conftest.py (fixtures and hooks) and the stand-in images'
Dockerfiles; tests/test_toolkit.py checks the toolkit itself.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout the toolkit drives.
ROOT = Path(__file__).resolve().parents[1]


class ToolkitError(RuntimeError):
    """Something the toolkit drove did not do what was asked (a server that never answered,
    a command that failed), with what was seen."""
