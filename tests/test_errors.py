import pytest
from flask import g
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from flaskr.db import db
from flaskr.models import Post


def test_404_page_in_layout(client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert b"404 Not Found" in response.data
    assert b"<nav>" in response.data


def test_404_json_for_api_clients(client) -> None:
    response = client.get("/nope", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "Not Found"


def test_405_keeps_allow_header(client, auth) -> None:
    auth.login()
    response = client.get("/1/delete")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "GET" not in response.headers["Allow"]
    assert b"405 Method Not Allowed" in response.data


def test_413_for_oversize_bodies(client, auth, app) -> None:
    auth.login()
    too_big = app.config["MAX_CONTENT_LENGTH"] + 1
    response = client.post("/create", data={"title": "t", "body": "b" * too_big})
    assert response.status_code == 413
    assert b"413 Request Entity Too Large" in response.data
    assert db_posts(app) == 1


def db_posts(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Post))


def test_500_page_without_traceback(app, client) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    response = client.get("/boom")
    assert response.status_code == 500
    assert b"500 Internal Server Error" in response.data
    assert b"secret internals" not in response.data
    assert b"Traceback" not in response.data


def test_database_unavailable_is_503(app, client) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/locked")
    def locked() -> str:
        raise OperationalError("UPDATE post", {}, Exception("database is locked"))

    response = client.get("/locked")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_redirects_are_not_errors(client) -> None:
    response = client.get("/create")
    assert response.status_code == 302


@pytest.mark.parametrize(
    "path", ("/abc/update", "/-1/update", "/1.5", "/99999999999999999999999/delete")
)
def test_bad_ids_are_404(client, auth, path) -> None:
    auth.login()
    assert client.post(path).status_code == 404


def test_database_outage_is_503_for_a_logged_in_user_too(app, client, auth) -> None:
    """The database goes away in the middle of a logged-in request: the error page must not
    need it (the rollback expires the user that the page's header would show)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/outage")
    def outage() -> str:
        assert g.user is not None
        # What a database that is down answers to every later query, g.user's refresh included.
        db.session.execute(text("ALTER TABLE user RENAME TO user_gone"))
        db.session.commit()
        raise OperationalError("SELECT post", {}, Exception("server closed the connection"))

    auth.login()
    response = client.get("/outage")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert b"The database is busy or unavailable" in response.data
