import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from flaskr import create_app
from flaskr.db import db
from flaskr.models import LoginFailure
from flaskr.throttle import DEVICE_COOKIE, _now
from tests.helpers import config_for, make_app


def fail(client, username: str = "test", addr: str = "10.0.0.1"):
    return client.post(
        "/auth/login",
        data={"username": username, "password": "wrong"},
        environ_base={"REMOTE_ADDR": addr},
    )


def login(client, addr: str = "10.0.0.1"):
    return client.post(
        "/auth/login",
        data={"username": "test", "password": "test"},
        environ_base={"REMOTE_ADDR": addr},
    )


def failures(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(LoginFailure))


def test_one_account_from_one_address_five_tries_with_retry_after(client) -> None:
    for _ in range(5):
        assert fail(client).status_code == 400
    response = fail(client)
    assert response.status_code == 429
    assert 890 <= int(response.headers["Retry-After"]) <= 900
    assert b"Too many failed logins. Try again in 1" in response.data
    # even the right password waits: guessing must not find it
    assert login(client).status_code == 429
    # the owner, from another address, is not locked out by it
    assert login(client, addr="10.0.0.2").headers["Location"] == "/"


def test_hammering_a_limit_does_not_prolong_it(app, client) -> None:
    for _ in range(5):
        fail(client)
    for _ in range(10):
        assert fail(client).status_code == 429
    assert failures(app) == 5  # refused attempts are taken back


def test_success_forgives_earlier_failures(client, auth) -> None:
    for _ in range(4):
        fail(client)
    assert login(client).headers["Location"] == "/"
    client.delete_cookie(DEVICE_COOKIE)
    for _ in range(5):
        assert fail(client).status_code == 400


def test_one_address_guessing_many_names_is_throttled(tmp_path: Path) -> None:
    client = make_app(tmp_path, LOGIN_FAILURES_PER_ADDRESS=3).test_client()  # 20 by default
    for i in range(3):
        assert fail(client, f"user{i}").status_code == 400
    assert fail(client, "user99").status_code == 429
    assert fail(client, "user99", addr="10.9.9.9").status_code == 400


def test_many_addresses_guessing_one_account_cannot_lock_its_owner_out(tmp_path: Path) -> None:
    """Strangers exhaust the account's budget from many addresses; a browser that logged in
    before (its device cookie) still gets in, from any address."""
    app = make_app(tmp_path, LOGIN_FAILURES_PER_USER=3)  # 20 by default
    client, owner = app.test_client(), app.test_client()
    assert login(owner, addr="192.0.2.7").headers["Location"] == "/"
    assert owner.get_cookie(DEVICE_COOKIE) is not None
    owner.post("/auth/logout")
    for i in range(3):
        assert fail(client, addr=f"10.1.0.{i}").status_code == 400
    assert fail(client, addr="10.1.1.1").status_code == 429  # per account, from anywhere
    assert login(app.test_client(), addr="10.1.1.2").status_code == 429
    assert login(owner, addr="198.51.100.9").headers["Location"] == "/"


def test_a_trusted_device_has_its_own_budget(app) -> None:
    owner = app.test_client()
    login(owner)
    for _ in range(5):
        assert fail(owner).status_code == 400
    assert fail(owner).status_code == 429
    # strangers at the same address are counted apart, and so not locked out by it
    assert fail(app.test_client()).status_code == 400


def test_a_device_cookie_is_for_its_own_account(app) -> None:
    owner = app.test_client()
    login(owner)
    for _ in range(5):
        fail(owner, "other")
    assert fail(owner, "other").status_code == 429  # counted as a stranger to "other"


def test_forged_device_cookie_counts_as_a_stranger(app, client) -> None:
    client.set_cookie(DEVICE_COOKIE, "forged.cookie")
    for _ in range(5):
        fail(client)
    assert fail(client).status_code == 429


def test_global_ceiling(tmp_path: Path) -> None:
    app = make_app(tmp_path, LOGIN_FAILURES_GLOBAL=3)
    client = app.test_client()
    for i in range(3):
        assert fail(client, f"u{i}", addr=f"10.2.0.{i}").status_code == 400
    assert fail(client, "u9", addr="10.2.0.9").status_code == 429


def test_concurrent_guesses_cannot_pass_the_limit(app) -> None:
    """Each attempt is written before its password is checked: 12 guesses at once, with
    a limit of 5, get at most 5 answers about the password."""
    barrier = threading.Barrier(12)
    statuses: list[int] = []

    def guess() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(fail(client).status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(statuses)) == [400, 429]
    assert statuses.count(400) <= 5


def test_failures_expire_after_the_window(client, app) -> None:
    for _ in range(5):
        fail(client)
    with app.app_context():
        for row in db.session.scalars(select(LoginFailure)):
            row.created = _now() - timedelta(minutes=16)
        db.session.commit()
    assert fail(client).status_code == 400
    assert failures(app) == 1  # old rows are pruned when a new attempt is recorded


def test_throttle_holds_across_instances(tmp_path: Path) -> None:
    """Two app instances on one database: failures seen by one lock the other."""
    first = make_app(tmp_path)
    second = create_app(config_for(tmp_path, DATABASE_URL=first.config["DATABASE_URL"]))
    for _ in range(5):
        fail(first.test_client())
    assert fail(second.test_client()).status_code == 429


def test_default_limits(app) -> None:
    """The figures docs/security.md gives."""
    limits = {k: v for k, v in app.config.items() if k.startswith("LOGIN_")}
    assert limits == {
        "LOGIN_WINDOW_SECONDS": 900,
        "LOGIN_FAILURES_PER_DEVICE": 5,
        "LOGIN_FAILURES_PER_ACCOUNT_ADDRESS": 5,
        "LOGIN_FAILURES_PER_ADDRESS": 20,
        "LOGIN_FAILURES_PER_USER": 20,
        "LOGIN_FAILURES_GLOBAL": 1000,
    }


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


def test_password_change_is_throttled_too(client) -> None:
    login(client)
    for _ in range(5):
        response = client.post(
            "/auth/password", data={"current": "wrong", "password": "a long password"}
        )
        assert response.status_code == 400
    response = client.post("/auth/password", data={"current": "test", "password": "a long pw"})
    assert response.status_code == 429
