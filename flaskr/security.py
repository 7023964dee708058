"""CSRF, security headers on every response, session cookies marked Secure behind https.

The headers are the same for every response, so they are built once, at import, and added
to each response's header list on its way out by a WSGI middleware: building the policy per
response, or adding it through the response's Headers object, which checks every value
again, costs a noticeable share of a small page (docs/performance.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from flask.wrappers import Response
from flask_wtf.csrf import CSRFProtect
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.exceptions import UnsupportedMediaType

from flaskr.bounded_cache import BoundedCache

csrf = CSRFProtect()

#: Only this site's own files run or style pages: no inline script or style anywhere.
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": ["'self'", "https:"],  # posts may show images from other https sites
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

#: Headers every response carries.
SECURITY_HEADERS = {
    "Content-Security-Policy": "; ".join(
        f"{name} {value if isinstance(value, str) else ' '.join(value)}"
        for name, value in CONTENT_SECURITY_POLICY.items()
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": "geolocation=(), camera=(), microphone=()",
}
#: Only on https responses, as the request's scheme or X-Forwarded-Proto says: nginx or the
#: platform terminates TLS and redirects, and the app never redirects to https itself. (A
#: forged X-Forwarded-Proto over plain http changes nothing: browsers ignore HSTS there.)
STRICT_TRANSPORT_SECURITY = f"max-age={365 * 24 * 3600}; includeSubDomains"


#: What the site's HTML forms send. Flask-WTF would read a JSON body as form data too, and
#: crash on one that is not an object; nothing here speaks JSON, so it is refused early.
FORM_TYPES = {"", "application/x-www-form-urlencoded", "multipart/form-data"}


def refuse_non_form_bodies() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("This site's forms send form data, not " + request.mimetype)


IMMUTABLE = (int, str, bool, float, type(None))


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, marked Secure whenever the request came over https.

    ProxyFix tells us when nginx terminated TLS, so one configuration serves both http in
    tests and https live. A request without a cookie and a response with nothing to write
    skip the signing machinery, which Flask's own builds for every request.
    """

    _serializer: tuple[Any, URLSafeTimedSerializer | None] = (None, None)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        """Built once per key, not once per request."""
        key = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if self._serializer[0] != key:
            self._serializer = (key, super().get_signing_serializer(app))
        return self._serializer[1]

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Open Flask's session, remembering cookies it has verified.

        Checking the signature was most of what a logged-in request added to a visitor's. A
        cookie is remembered under the keys that verified it and only while it has not
        expired; a forged or altered one is never remembered, so it is checked, and refused,
        every time.
        """
        if app.secret_key and "HTTP_COOKIE" not in request.environ:
            return self.session_class()  # nothing to verify
        serializer = self.get_signing_serializer(app)
        value = request.cookies.get(self.get_cookie_name(app))
        if serializer is None or not value:
            return super().open_session(app, request)
        max_age = app.permanent_session_lifetime.total_seconds()
        key = (self._serializer[0], value)
        verified: BoundedCache = app.extensions["flaskr.cookies"]
        remembered = verified.get(key)
        if remembered is not None and 0 <= time.time() - remembered[1] <= max_age:
            return self.session_class(remembered[0])
        try:
            data, signed = serializer.loads(value, max_age=int(max_age), return_timestamp=True)
        except BadSignature:
            return self.session_class()
        if isinstance(data, dict) and all(type(v) in IMMUTABLE for v in data.values()):
            # Only flat sessions (a user id, a version, a token): a list in one (messages
            # to flash) would be changed in place by the request that reads it.
            verified.put(key, (data, signed.timestamp()))
        return self.session_class(data)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not session and not session.modified:  # no cookie to set or to delete
            if session.accessed:
                # A loop, not ``"Vary" in headers``: a missing key costs werkzeug an exception.
                if any(name.lower() == "vary" for name, _ in response.headers):
                    response.vary.add("Cookie")
                else:
                    response.headers.add("Vary", "Cookie")
            return
        super().save_session(app, session, response)


HEADER_LIST = list(SECURITY_HEADERS.items())
HTTPS_HEADER_LIST = [*HEADER_LIST, ("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)]


class SecurityHeaders:
    """Add the headers above to every response, error pages included (WSGI middleware).

    No view sets them, so they are appended, never searched for and replaced.
    """

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        https = (
            environ.get("wsgi.url_scheme") == "https"
            or environ.get("HTTP_X_FORWARDED_PROTO") == "https"
        )
        added = HTTPS_HEADER_LIST if https else HEADER_LIST

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            return start_response(status, headers + added, exc_info)

        return self.wsgi_app(environ, start)


def init_app(app: Flask) -> None:
    """Use the session cookie above; create_app registers this module's hooks and middleware.

    The app keeps the cookies it verified, with what they hold and when they were signed: a
    few hundred bytes each, at most COOKIE_CACHE_BYTES.
    """
    app.session_interface = SessionInterface()
    app.extensions["flaskr.cookies"] = BoundedCache(app.config["COOKIE_CACHE_BYTES"])
