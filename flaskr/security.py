"""CSRF on every state-changing request, security headers on every response, and session
cookies marked Secure behind https."""

from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_talisman import Talisman
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import UnsupportedMediaType

from flaskr.rendering import markdown

csrf = CSRFProtect()
talisman = Talisman()

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


#: What the site's HTML forms send. Flask-WTF would read a JSON body as form data too, and
#: crash on one that is not an object; nothing here speaks JSON, so it is refused early.
FORM_TYPES = {"", "application/x-www-form-urlencoded", "multipart/form-data"}


def refuse_non_form_bodies() -> None:
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and request.mimetype not in FORM_TYPES:
        raise UnsupportedMediaType("This site's forms send form data, not " + request.mimetype)


class SessionInterface(SecureCookieSessionInterface):
    """Mark the cookie Secure whenever the request came over https (ProxyFix tells us when
    nginx terminated TLS), so one configuration serves both http in tests and https live."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def init_app(app: Flask) -> None:
    app.before_request(refuse_non_form_bodies)
    csrf.init_app(app)
    talisman.init_app(
        app,
        # nginx or the platform terminates TLS and redirects; the app must also answer
        # plain http on its socket, so it never redirects itself.
        force_https=False,
        # HSTS only on https responses (Talisman checks the request's scheme).
        strict_transport_security=True,
        strict_transport_security_max_age=365 * 24 * 3600,
        content_security_policy=CONTENT_SECURITY_POLICY,
        referrer_policy="strict-origin-when-cross-origin",
        frame_options="DENY",
        # Talisman would force Secure cookies even over http; SessionInterface decides.
        session_cookie_secure=False,
        permissions_policy={"geolocation": "()", "camera": "()", "microphone": "()"},
    )
    app.session_interface = SessionInterface()
    app.jinja_env.filters["markdown"] = markdown
