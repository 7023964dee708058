"""Guards every request passes, before and after its view.

Bytes no page can mean are refused before a view or the database sees them, a value the
database refuses is the client's error rather than an outage, and pages made for one person
are marked private for caches on the way.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import current_app, request, session
from sqlalchemy.exc import DataError
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from flaskr.errors import handle_http_error

#: Pages past this are 404s, whatever the listing: page 10,000,000 of five posts each would
#: skip 50 million posts. Larger numbers would overflow the database's integers.
MAX_PAGE = 10_000_000


def refuse_nul() -> None:
    """Refuse a NUL byte in the path, the query or a form field with a 400.

    It means nothing to any page, and PostgreSQL's driver fails on it, so this runs before
    anything else. The raw query string is looked at first, so a query without one is never
    parsed here.
    """
    environ = request.environ
    query = environ.get("QUERY_STRING", "")
    suspect_query = "%00" in query or "\x00" in query  # the raw string, before parsing it
    if "\x00" in environ.get("PATH_INFO", "") or (
        suspect_query and _holds_nul(request.args.items(multi=True))
    ):
        raise BadRequest("The address holds a NUL byte.")
    if request.method == "POST" and _holds_nul(request.form.items(multi=True)):
        raise BadRequest("The form holds a NUL byte.")


def _holds_nul(pairs: Iterable[tuple[str, str]]) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in pairs)


def refuse_unstorable(error: DataError) -> Response:
    """Answer a value the database refused (out of range, not valid text) with a 400.

    The request was bad and the database is fine, so no 503 that proxies would retry on
    every replica.
    """
    current_app.logger.warning("database refused a value: %s", error.orig)
    return handle_http_error(BadRequest("The request holds a value this site cannot store."))


def mark_private(response: Response) -> Response:
    """Mark a page made for a browser with a session private to that browser.

    A session holds a logged-in user, a message to flash or a form token: no shared cache may
    keep such a page for others.
    """
    if "HTTP_COOKIE" not in request.environ and not session.modified:
        return response  # no session, none started: nothing personal (the visitors' path)
    has_session = current_app.config["SESSION_COOKIE_NAME"] in request.cookies
    cache_control = response.cache_control
    if (has_session or session.modified) and not (cache_control.public or cache_control.no_store):
        cache_control.private = True
    return response
