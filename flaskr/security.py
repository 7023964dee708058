"""CSRF on every state-changing request, and session cookies marked Secure behind https."""

from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from flaskr.rendering import markdown

csrf = CSRFProtect()


class SessionInterface(SecureCookieSessionInterface):
    """Mark the cookie Secure whenever the request came over https (ProxyFix tells us when
    nginx terminated TLS), so one configuration serves both http in tests and https live."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    app.session_interface = SessionInterface()
    app.jinja_env.filters["markdown"] = markdown
