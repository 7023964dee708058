"""Error pages in the site's layout, or JSON for clients that ask for it; never a traceback."""

from __future__ import annotations

from flask import current_app, g, jsonify, render_template, request
from flask.globals import request_ctx
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, ServiceUnavailable
from werkzeug.wrappers import Response

from flaskr.db import db

CSRF_MESSAGE = "The form expired or was sent from another site. Reload the page and try again."


def prefers_json() -> bool:
    """True when the client prefers JSON to HTML (an API client, not a browser)."""
    accept = request.accept_mimetypes
    return accept.quality("application/json") > accept.quality("text/html")


def handle_http_error(error: HTTPException, as_json: bool = False) -> Response:
    """Answer every 4xx and 5xx, including unhandled exceptions, which Flask makes a 500.

    Flask hands redirects raised by routing back before any handler sees them. ``as_json``:
    JSON whatever the client accepts (the views that speak only JSON, passkeys.py).
    """
    db.session.rollback()  # nothing half-written outlives a refused request
    code = error.code or 500
    description = CSRF_MESSAGE if isinstance(error, CSRFError) else (error.description or "")
    if as_json or prefers_json():
        response = jsonify(error=error.name, status=code, message=description)
    elif request_ctx.url_adapter is None:  # a Host not in TRUSTED_HOSTS: no link can be made
        text = f"{code} {error.name}: {description}\n"
        response = current_app.response_class(text, mimetype="text/plain")
    else:
        page = render_template("error.html", error=error, code=code, description=description)
        response = current_app.response_class(page, mimetype="text/html")
    response.status_code = code
    for name, value in error.get_headers():
        if name.lower() != "content-type":  # keep Allow (405) and Retry-After (429, 503)
            response.headers[name] = value
    return response


def handle_database_unavailable(error: OperationalError) -> Response:
    """A database that is down or locked for too long is a 503 the client may retry."""
    current_app.logger.error("database unavailable: %s", error.orig)
    # The page shows no user: the rollback expires the logged-in one, and reading it again
    # would need the database that is down (a second error, then a 500).
    g.user = None
    return handle_http_error(
        ServiceUnavailable("The database is busy or unavailable. Try again shortly.", retry_after=5)
    )
