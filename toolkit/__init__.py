"""The end-to-end suites' toolkit, one module per kind of part, each written once:

- ``packages``: the Debian packages of every suite, listed once and installed when missing;
- ``debian``: Debian root filesystems made by mmdebstrap from apt's own mirror, and the
  suites' cache (``FLASKR_E2E_CACHE``);
- ``ports``: free ports on 127.0.0.1;
- ``wait``: polling with a deadline, instead of sleeping;
- ``http``: a person's visit over HTTP (cookies kept, CSRF tokens read from the forms);
- ``servers``: flaskr's environment, its CLI, gunicorn, and any process stopped however a
  test ends;
- ``postgres``: a throwaway PostgreSQL cluster;
- ``load``: request loops on threads, bounded in time and count, that count what failed;
- ``images``: small real PNGs to upload;
- ``drills``: a backup drill's writers, shared by the backup and container suites.
- ``cmdlines``: every process's command line sampled while a secret must stay off them
  (the PostgreSQL and container suites).

The suites and bench/ import from here; conftest.py files only hold fixtures and hooks.

Helpers for one family of suites live beside those suites in tests/e2e/, not here:

- ``scale_helpers``: several gunicorn instances on one database behind a reloadable nginx
  (test_scale_out.py, and bench/scale_out.py);
- ``container_engines``: podman or Docker driven through scripts/container with the host's
  Python hidden, the stand-in base image, a terminal for ``exec -it`` (the container suites);
- ``container_docker``: a dockerd of the suite's own and a local registry (the container
  suites);
- ``host_machine``: a throwaway systemd-nspawn Debian machine (test_host.py and the suites
  that boot one);
- ``host_tls``: a certificate authority and an ACME server for the https tests (test_host.py,
  test_manifests.py);
- ``browser_helpers``: headless Chromium driven by Playwright (test_browser.py);
- ``isolation_reports``: where isolation reports are saved, and how flaskr's gunicorn is
  recognised in one (test_container.py, test_host.py);
- ``host_client``: the HTTP client run inside the test machine's network namespace, on the
  standard library only (test_host.py).
"""

from __future__ import annotations

from pathlib import Path

#: The checkout the suites test.
ROOT = Path(__file__).resolve().parents[1]
