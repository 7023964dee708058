"""URLs for templates, built once and then remembered.

A page links to the same few dozen addresses again and again (each post's page, its tags,
the stylesheet, the login page), and building one through werkzeug's routing costs more than
rendering the link: the index's links were a large share of rendering it (docs/performance.md).
A link depends only on its endpoint, its values and where the app is mounted (SCRIPT_NAME), so
it is kept under those, by each app, bounded in bytes like every cache here.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, url_for
from flask.globals import _cv_request

from flaskr.bounded_cache import BoundedCache


def cached_url_for(endpoint: str, **values: Any) -> str:
    """Build a link inside the site with Flask's ``url_for``, remembered.

    Anything else (a blueprint-relative endpoint, an external URL, an anchor, no request)
    goes to Flask every time.
    """
    ctx = _cv_request.get(None)
    adapter = ctx.url_adapter if ctx is not None else None
    if ctx is None or adapter is None or endpoint[:1] == "." or any(n[:1] == "_" for n in values):
        return url_for(endpoint, **values)
    built: BoundedCache = ctx.app.extensions["flaskr.links"]
    try:
        key = (adapter.script_name, endpoint, *values.items())
        url = built.get(key)
    except TypeError:  # a value that cannot be a key (a list): not remembered
        return url_for(endpoint, **values)
    if url is None:
        url = url_for(endpoint, **values)
        built.put(key, url)
    return str(url)


def init_app(app: Flask) -> None:
    """Give templates this url_for, and the app the links it keeps.

    A few hundred bytes each, whatever the ids and names in them: at most URL_CACHE_BYTES.
    """
    app.jinja_env.globals["url_for"] = cached_url_for
    app.extensions["flaskr.links"] = BoundedCache(app.config["URL_CACHE_BYTES"])


def on_site_url(path: str) -> str | None:
    """``path`` on the site's own address, SITE_URL; None when it is not set.

    For addresses that must name the site whoever asks: never built from the request's Host
    header, which anyone can set and which a cached page would then show to everyone.
    """
    site = current_app.config["SITE_URL"]
    return str(site).rstrip("/") + path if site else None
