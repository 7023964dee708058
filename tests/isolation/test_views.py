"""flaskr.isolation.views: the operator page /admin/isolation and its JSON, for admins only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flaskr.isolation import probe
from tests.helpers import give_second_factor
from toolkit.apps import make_app


def page_app(tmp_path: Path, admin: str | None = "test", **config: Any) -> Flask:
    """An app whose user ``admin`` was made an admin, as `flask make-admin` does.

    Admins need no second factor here: tests/test_second_factor.py checks that they do.
    """
    app = make_app(tmp_path, **{"REQUIRE_2FA_FOR_ADMINS": False, **config})
    if admin is not None:
        assert (
            f"{admin} is an admin."
            in app.test_cli_runner().invoke(args=["make-admin", admin]).output
        )
    return app


def login(client: Any, username: str = "test", password: str | None = None) -> None:
    client.post("/auth/login", data={"username": username, "password": password or username})


def test_page_off_by_default(tmp_path: Path) -> None:
    client = page_app(tmp_path).test_client()
    login(client)
    assert client.get("/admin/isolation").status_code == 404


@pytest.mark.parametrize("enabled", ["true", 1, "yes"])
def test_page_needs_json_true(tmp_path: Path, enabled: Any) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=enabled).test_client()
    login(client)
    assert client.get("/admin/isolation").status_code == 404


def test_page_not_for_anonymous_or_others(tmp_path: Path) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    anonymous = client.get("/admin/isolation")
    assert anonymous.status_code == 404
    login(client, "other")
    response = client.get("/admin/isolation")
    assert response.status_code == 404
    assert response.data == client.get("/admin/no-such-page").data  # as for any missing URL


def test_page_not_for_a_disabled_admin(tmp_path: Path) -> None:
    app = page_app(tmp_path, ISOLATION_PAGE=True)
    client = app.test_client()
    login(client)
    assert client.get("/admin/isolation").status_code == 200
    app.test_cli_runner().invoke(args=["disable-user", "test"])
    assert client.get("/admin/isolation").status_code == 404
    login(client)
    assert client.get("/admin/isolation").status_code == 404


def test_page_shows_only_the_apps_own_command_lines(tmp_path: Path) -> None:
    """Other processes are counted, their command lines (which can hold secrets) left out."""
    secret = subprocess.Popen(["sleep", "31.5"])  # noqa: S603, S607
    try:
        client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
        login(client)
        report = client.get("/admin/isolation.json").get_json()
        html = client.get("/admin/isolation").get_data(as_text=True)
    finally:
        secret.kill()
        secret.wait()
    visible = {p["pid"]: p["command"] for p in report["processes"]["visible"]}
    assert secret.pid in visible and visible[secret.pid] is None  # counted, not shown
    assert visible[os.getpid()] is not None  # the app's own process in full
    assert "sleep 31.5" not in html


def test_page_for_admin(tmp_path: Path) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    login(client)
    response = client.get("/admin/isolation")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert "<h2>Summary</h2>" in html and "PID namespace" in html
    assert "style=" not in html and "<script" not in html


def test_page_as_json(tmp_path: Path) -> None:
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    assert client.get("/admin/isolation.json").status_code == 404
    login(client)
    report = client.get("/admin/isolation.json").get_json()
    assert report["pid"] == os.getpid()  # collected inside the process serving the request
    assert {"dependencies", "processes", "privileges"} <= report.keys()


def test_page_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """FLASKR_ISOLATION_PAGE=true and an admin made with `flask make-admin`, as an operator does."""
    monkeypatch.setenv("FLASKR_ISOLATION_PAGE", "true")
    monkeypatch.setenv("FLASKR_SECRET_KEY", "x-9f86d081884c7d65a2f0e3b1c4d7e6f8")
    monkeypatch.setenv("FLASKR_DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    from flaskr import create_app
    from flaskr.db import upgrade_schema

    app = create_app()
    app.config.update(TESTING=True, WTF_CSRF_ENABLED=False)
    with app.app_context():
        upgrade_schema()
    runner = app.test_cli_runner()
    runner.invoke(args=["create-user", "test", "--password", "test-password"])
    runner.invoke(args=["make-admin", "test"])
    client = app.test_client()
    login(client, password="test-password")
    assert client.get("/admin/isolation").status_code == 302  # to enrol a second factor first
    give_second_factor(app, "test")
    assert client.get("/admin/isolation").status_code == 200


def test_page_details(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Unknown values and empty lists render with their reasons, on a tree with nothing."""
    collect = probe.collect
    monkeypatch.setattr(probe, "collect", lambda: collect(str(tmp_path), environ={}))
    client = page_app(tmp_path, ISOLATION_PAGE=True).test_client()
    login(client)
    html = client.get("/admin/isolation").get_data(as_text=True)
    assert "None listed: cannot read /proc" in html
    assert "unknown (cannot read /proc/self/status" in html
