"""The end-to-end suites' toolkit, one module per kind of part, each written once:

- ``packages``: Debian packages a suite needs, installed when missing;
- ``ports``: free ports on 127.0.0.1;
- ``wait``: polling with a deadline, instead of sleeping;
- ``http``: a person's visit over HTTP (cookies kept, CSRF tokens read from the forms);
- ``servers``: flaskr's environment, its CLI, gunicorn, and any process stopped however a
  test ends;
- ``postgres``: a throwaway PostgreSQL cluster;
- ``load``: request loops on threads, bounded in time and count, that count what failed;
- ``images``: small real PNGs to upload.

The suites and bench/ import from here; conftest.py files only hold fixtures and hooks.
"""

from __future__ import annotations

from pathlib import Path

#: The checkout the suites test.
ROOT = Path(__file__).resolve().parents[3]
