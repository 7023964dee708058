"""flaskr: the Flask tutorial's blog, finished and made ready for production.

``create_app`` below is the map of the app: reading it lists every extension, every hook
that runs around a request, every group of routes and every ``flask`` command, each with the
module that holds it. docs/architecture.md draws how a request goes through them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from inspect import CO_COROUTINE
from types import FunctionType, MethodType
from typing import Any

from flask import Flask
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from flaskr import config


class BoundedIntConverter(IntegerConverter):
    """``<int:id>`` that only matches ids a database column can hold."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)  # PostgreSQL INTEGER
        super().__init__(map, *args, **kwargs)


class Flaskr(Flask):
    """Flask, asking cheaply whether a view or hook is async.

    Flask asks ``inspect`` for each of the ten or so functions it calls per request, a
    noticeable share of what a small page costs.
    """

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) in (FunctionType, MethodType) and not (
            func.__code__.co_flags & CO_COROUTINE or hasattr(func, "_is_coroutine_marker")
        ):
            return func
        return super().ensure_sync(func)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, request hooks, blueprints and commands."""
    app = Flaskr(
        __name__,
        instance_relative_config=True,
        instance_path=os.environ.get("FLASKR_INSTANCE_PATH") or None,
    )
    config.load(app, test_config)  # every setting and its default: flaskr/config.py
    os.makedirs(app.instance_path, exist_ok=True)

    # Ids beyond a 32-bit integer column are 404s, not an overflow deep in the database driver.
    app.url_map.converters["int"] = BoundedIntConverter

    # Imported here, as in the Flask tutorial: importing the package (for its config, or the
    # isolation tool) does not load every part of the app.
    from flaskr import (
        auth,
        blog,
        commands,
        db,
        errors,
        feed,
        fragments,
        guards,
        health,
        images,
        logs,
        metrics,
        moderation,
        page_cache,
        passkeys,
        recovery,
        second_factor,
        security,
        urls,
    )
    from flaskr.isolation import cli as isolation_cli
    from flaskr.isolation import views as isolation_views

    # Extensions and per-app state: each cache and counter is this app's own (app.extensions),
    # bounded by its setting, so a new app (a worker's, a test's) starts empty.
    db.init_app(app)  # Flask-SQLAlchemy; Flask-Migrate (Alembic) only where commands run
    security.init_app(app)  # the session cookie: Secure behind https, verified once and kept
    logs.init_app(app)  # JSON lines on stdout, each with the request's id
    page_cache.init_app(app)  # whole pages for visitors without a session, bounded in bytes
    urls.init_app(app)  # templates' url_for, each link built once and kept, bounded in bytes
    fragments.init_app(app)  # a listed post's HTML, rendered once and kept, bounded in bytes
    metrics.init_app(app)  # request counts and latency, when METRICS: this app's registry

    # Before each request, in this order (the first to raise answers):
    app.before_request(security.refuse_non_form_bodies)  # 415 for anything but form data
    security.csrf.init_app(app)  # Flask-WTF: a POST without this site's token is a 400
    app.before_request(guards.refuse_nul)  # 400 for a NUL byte in the address or a form
    if app.config["METRICS"]:
        app.before_request(metrics.start_timer)
    # ...and last, registered with auth.bp below: auth.load_logged_in_user sets g.user.

    # After each request, in the reverse order (metrics first):
    app.after_request(guards.mark_private)  # Cache-Control: private for pages with a session
    app.after_request(logs.add_request_id_header)  # X-Request-ID, as in the logs
    if app.config["METRICS"]:
        app.after_request(metrics.observe)  # request counts and latency by endpoint

    # When the app context ends, after Flask-SQLAlchemy's own teardown was registered, so
    # that this runs first: a session whose database went away is dropped, not crashed on.
    app.teardown_appcontext(db.end_session)

    # Errors: an error page (or JSON) in the site's layout, never a traceback.
    app.register_error_handler(HTTPException, errors.handle_http_error)  # every 4xx and 5xx
    app.register_error_handler(OperationalError, errors.handle_database_unavailable)  # 503
    app.register_error_handler(DataError, guards.refuse_unstorable)  # a value it cannot store: 400

    # Routes, one blueprint per area.
    app.register_blueprint(auth.bp)  # /auth/: register, login, logout, password
    app.register_blueprint(recovery.bp)  # /auth/: forgot, reset, e-mail address (mailed links)
    app.register_blueprint(second_factor.bp)  # /auth/: the code page, enrol and remove TOTP
    app.register_blueprint(passkeys.bp)  # /auth/passkeys: add, list, remove; sign in with one
    app.register_blueprint(blog.bp)  # /, /tag/<name>, /create, /<id> and its actions
    app.add_url_rule("/", endpoint="index")
    app.register_blueprint(images.bp)  # /<id>/image: a post's image
    app.register_blueprint(feed.bp)  # /feed.atom
    app.register_blueprint(health.bp)  # /healthz, /readyz
    app.register_blueprint(metrics.bp)  # /metrics, only when METRICS and from METRICS_ALLOW
    app.register_blueprint(moderation.bp)  # /admin/: remove posts and comments, disable users
    app.register_blueprint(isolation_views.bp)  # /admin/isolation, only when ISOLATION_PAGE

    @app.get("/hello")
    def hello() -> str:
        """Answer the tutorial's first route, kept so its links and checks keep working."""
        return "Hello, World!"

    # Commands: `flask --app flaskr NAME`, all in flaskr/commands.py but `isolation`.
    for command in (
        commands.init_db_command,  # init-db: create or upgrade the schema
        commands.backup_command,  # backup
        commands.restore_command,  # restore
        commands.copy_db_command,  # copy-db: into an empty PostgreSQL
        commands.create_user_command,  # create-user
        commands.make_admin_command,  # make-admin
        commands.disable_user_command,  # disable-user
        commands.clear_login_failures_command,  # clear-login-failures: let an owner in at once
        commands.remove_second_factor_command,  # remove-second-factor: a lost phone
        commands.set_password_command,  # set-password: an operator's way back into an account
        commands.send_mail_command,  # send-mail: the outbox's sender (flaskr/mail.py)
        commands.seed_command,  # seed: demo posts
        commands.remove_post_command,  # remove-post
        commands.remove_comment_command,  # remove-comment
        isolation_cli.isolation_command,  # isolation: what the container isolates from the host
    ):
        app.cli.add_command(command)
    # And `db` (Flask-Migrate's group: upgrade, current, history), added by db.init_app above
    # only when a command runs, so that serving workers never import Alembic.

    # Around the whole app, error pages included: the security headers, built once, added to
    # every response (CSP, nosniff, frame, HSTS on https).
    app.wsgi_app = security.SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    proxies = app.config["PROXY_FIX"]
    if proxies:
        # Trust exactly as many proxies as configured (nginx in front: 1).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_prefix=proxies
        )
    return app
