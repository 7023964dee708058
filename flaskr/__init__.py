"""flaskr: the Flask tutorial's blog, finished and made ready for production."""

from __future__ import annotations

import os
from collections.abc import Callable
from inspect import CO_COROUTINE
from types import FunctionType, MethodType
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter, Map

from flaskr import config


class BoundedIntConverter(IntegerConverter):
    """``<int:id>`` that only matches ids a database column can hold."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)  # PostgreSQL INTEGER
        super().__init__(map, *args, **kwargs)


class Flaskr(Flask):
    """Flask, asking cheaply whether a view or hook is async: Flask asks ``inspect`` for
    each of the ten or so it calls per request, a tenth of what a small page costs."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) in (FunctionType, MethodType) and not (
            func.__code__.co_flags & CO_COROUTINE or hasattr(func, "_is_coroutine_marker")
        ):
            return func
        return super().ensure_sync(func)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, database, blueprints, error pages and CLI commands."""
    app = Flaskr(
        __name__,
        instance_relative_config=True,
        instance_path=os.environ.get("FLASKR_INSTANCE_PATH") or None,
    )
    config.load(app, test_config)
    os.makedirs(app.instance_path, exist_ok=True)

    # Ids beyond a 32-bit integer column are 404s, not an overflow deep in the database driver.
    app.url_map.converters["int"] = BoundedIntConverter

    from flaskr import (
        auth,
        blog,
        cli,
        db,
        errors,
        feed,
        guards,
        health,
        images,
        isolation,
        logs,
        metrics,
        moderation,
        page_cache,
        security,
        urls,
    )

    db.init_app(app)
    security.init_app(app)
    urls.init_app(app)
    errors.init_app(app)
    guards.init_app(app)
    logs.init_app(app)
    metrics.init_app(app)
    page_cache.init_app(app)
    cli.init_app(app)
    isolation.init_app(app)
    moderation.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(blog.bp)
    app.register_blueprint(images.bp)
    app.register_blueprint(feed.bp)
    app.register_blueprint(health.bp)
    app.add_url_rule("/", endpoint="index")

    @app.get("/hello")
    def hello() -> str:
        """The tutorial's first route, kept so its links and checks keep working."""
        return "Hello, World!"

    proxies = app.config["PROXY_FIX"]
    if proxies:
        # Trust exactly as many proxies as configured (nginx in front: 1).
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_prefix=proxies
        )
    return app
