import importlib
import sys

import pytest


def test_wsgi_entry_builds_the_app(monkeypatch) -> None:
    """``gunicorn hello:app`` imports this module from inside the package folder."""
    monkeypatch.setenv("FLASKR_SECRET_KEY", "h" * 16 + "0123456789abcdef")
    sys.modules.pop("flaskr.hello", None)
    hello = importlib.import_module("flaskr.hello")
    assert hello.app.name == "flaskr"
    assert hello.app.test_client().get("/hello").data == b"Hello, World!"


def test_wsgi_entry_refuses_without_secret(monkeypatch) -> None:
    sys.modules.pop("flaskr.hello", None)
    with pytest.raises(RuntimeError, match="refusing to start without a real secret key"):
        importlib.import_module("flaskr.hello")
