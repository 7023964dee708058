from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from flaskr import create_app
from flaskr.db import db
from flaskr.models import LoginFailure
from flaskr.throttle import _now
from tests.conftest import config_for, make_app


def fail(client, username: str = "test", addr: str = "10.0.0.1"):
    return client.post(
        "/auth/login",
        data={"username": username, "password": "wrong"},
        environ_base={"REMOTE_ADDR": addr},
    )


def test_locked_after_five_failures_with_retry_after(client, auth) -> None:
    for _ in range(5):
        assert fail(client).status_code == 400
    response = fail(client)
    assert response.status_code == 429
    assert 890 <= int(response.headers["Retry-After"]) <= 900
    assert b"Too many failed logins. Try again in 1" in response.data
    # even the right password waits: guessing must not find it
    assert auth.login().status_code == 429
    # other users are not locked out by it
    assert fail(client, "other", addr="10.0.0.2").status_code == 400


def test_success_forgives_earlier_failures(client, auth) -> None:
    for _ in range(4):
        fail(client)
    assert auth.login().headers["Location"] == "/"
    for _ in range(4):
        assert fail(client).status_code == 400


def test_one_address_guessing_many_names_is_throttled(client, app) -> None:
    for i in range(20):
        assert fail(client, f"user{i}").status_code == 400
    assert fail(client, "user99").status_code == 429
    assert fail(client, "user99", addr="10.9.9.9").status_code == 400


def test_failures_expire_after_the_window(client, app) -> None:
    for _ in range(5):
        fail(client)
    with app.app_context():
        for row in db.session.scalars(select(LoginFailure)):
            row.created = _now() - timedelta(minutes=16)
        db.session.commit()
    assert fail(client).status_code == 400
    with app.app_context():  # old rows are pruned when a new failure is recorded
        assert db.session.scalar(select(func.count()).select_from(LoginFailure)) == 1


def test_throttle_holds_across_instances(tmp_path: Path) -> None:
    """Two app instances on one database: failures seen by one lock the other."""
    first = make_app(tmp_path)
    second = create_app(config_for(tmp_path, DATABASE_URL=first.config["DATABASE_URL"]))
    for _ in range(5):
        fail(first.test_client())
    assert fail(second.test_client()).status_code == 429


def test_429_as_json(client) -> None:
    for _ in range(5):
        fail(client)
    response = client.post(
        "/auth/login",
        data={"username": "test", "password": "x"},
        environ_base={"REMOTE_ADDR": "10.0.0.1"},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 429
    assert response.get_json()["error"] == "Too Many Requests"
    assert "Retry-After" in response.headers
