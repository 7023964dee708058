"""flaskr: the Flask tutorial's blog, finished and made ready for production."""

from __future__ import annotations

import os
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


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, database, blueprints, error pages and CLI commands."""
    app = Flask(
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
        logs,
        metrics,
        moderation,
        page_cache,
        security,
    )
    from flaskr.isolation import cli as isolation_cli
    from flaskr.isolation import views as isolation_views

    db.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    guards.init_app(app)
    logs.init_app(app)
    metrics.init_app(app)
    page_cache.init_app(app)
    cli.init_app(app)
    app.cli.add_command(isolation_cli.isolation_command)
    app.register_blueprint(isolation_views.bp)  # off unless ISOLATION_PAGE is true
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
