"""Whole pages for visitors who are not logged in, kept by each worker until they change.

A page is stored under its address, the values of the query parameters its view reads, and
the database's content version (migration 0006),
which triggers raise on every write to what pages show, whoever writes. Serving a stored
page costs one single-row read instead of the page's queries and its rendering (the figures
are in docs/performance.md). No page is ever stale: the version is read before the page, so
a write seen by the page has raised the number first.

Only requests without a session are served from here: a logged-in user, a message waiting
to be flashed or a form's CSRF token all live in the session and make a page personal. A
page whose rendering touched the session is not stored either. PAGE_CACHE_BYTES bounds the
memory each worker gives it, whatever users post (flaskr/bounded_cache.py: pages and their
URLs weighed in bytes, the least recently used page goes first, a page over an eighth of the
budget is never kept); PAGE_CACHE_SIZE bounds the pages too. Either at 0 turns it off.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, current_app, request, session
from sqlalchemy import select

from flaskr.bounded_cache import BoundedCache
from flaskr.models import ContentVersion
from flaskr.reads import first_row

VERSION = select(ContentVersion.version).where(ContentVersion.id == 1)


def page_address(environ: dict[str, Any]) -> str:
    """Give where a page is, besides its query: what it depends on along with the data.

    That is the scheme and host (the feed's absolute links), the mount point and the path,
    read raw (``request.url`` decodes and re-quotes them on every request).
    """
    return " ".join(
        environ.get(name, "")
        for name in ("wsgi.url_scheme", "HTTP_HOST", "SCRIPT_NAME", "PATH_INFO")
    )


def content_version() -> int:
    """Read the database's content version: one row.

    It is read on the driver's connection (reads.py), not through the ORM session or a
    SQLAlchemy Connection, which cost more than the read.
    """
    row = first_row(VERSION)
    if row is None:  # migration 0006 inserts it and nothing deletes it: never serve blind
        raise LookupError("content_version has no row: run `flask init-db`")
    return int(row[0])


def cached(*reads: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Serve the view's page from the cache when the visitor has no session.

    ``reads`` names the query parameters the view reads (with ``request.args.get``: the first
    value of each): only those are part of the key. Any other parameter changes nothing on
    the page, so ``/?page=2&x=1``, ``/?page=2&x=2``... are one entry, not one each.
    """

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def serve(**kwargs: Any) -> Any:
            pages: BoundedCache | None = current_app.extensions.get("flaskr.pages")
            if pages is None or session or request.method != "GET":
                return view(**kwargs)
            query = tuple(request.args.get(name) for name in reads)
            key = (page_address(request.environ), query, content_version())
            page = pages.get(key)
            if page is None:
                page = view(**kwargs)
                if isinstance(page, str | tuple) and not session.modified:
                    pages.put(key, page)  # text, not a Response: after_request hooks change those
            return page

        return serve

    return decorate


def init_app(app: Flask) -> None:
    """Give the app its cache, unless PAGE_CACHE_SIZE or PAGE_CACHE_BYTES is 0."""
    size, max_bytes = app.config["PAGE_CACHE_SIZE"], app.config["PAGE_CACHE_BYTES"]
    if size > 0 and max_bytes > 0:
        app.extensions["flaskr.pages"] = BoundedCache(max_bytes, max_entries=size)
