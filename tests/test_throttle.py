from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import delete, event, func, select

from flaskr import accounts, create_app, second_factor
from flaskr.db import db
from flaskr.models import LoginFailure, RegistrationAttempt, User
from flaskr.throttle import DEVICE_COOKIE, _now
from tests.helpers import at_once
from toolkit.apps import config_for, make_app


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


def failures(app, model=LoginFailure) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def register(client, username: str, addr: str = "10.0.0.1", **kw):
    return client.post(
        "/auth/register",
        data={"username": username, "password": "a long password"},
        environ_base={"REMOTE_ADDR": addr},
        **kw,
    )


def users(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(User.username)))


def age(app, model, minutes: int) -> None:
    """Make every row counted in ``model`` ``minutes`` old."""
    with app.app_context():
        for row in db.session.scalars(select(model)):
            row.created = _now() - timedelta(minutes=minutes)
        db.session.commit()


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


def test_a_login_whose_attempt_another_login_forgot_is_still_answered(app, client) -> None:
    """Two logins of one account from one address at once: the first to succeed forgets the
    other's attempt, which can happen right after that attempt was committed. Reading its id
    then was a 500 (21 in 577 logins of the bench's login POST row)."""

    fired: list[bool] = []

    def another_login_succeeds(session) -> None:
        if not fired:  # once: right after the attempt's own commit
            fired.append(True)
            with db.engine.begin() as connection:
                connection.execute(delete(LoginFailure))

    with app.app_context():
        event.listen(db.session, "after_commit", another_login_succeeds)
        try:
            assert login(client).headers["Location"] == "/"
        finally:
            event.remove(db.session, "after_commit", another_login_succeeds)
    assert fired
    assert failures(app) == 0


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
    statuses = at_once(12, lambda _: fail(app.test_client()).status_code)
    assert sorted(set(statuses)) == [400, 429]
    assert statuses.count(400) <= 5


def test_failures_expire_after_the_window(client, app) -> None:
    for _ in range(5):
        fail(client)
    age(app, LoginFailure, minutes=16)
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
    names = ("LOGIN_", "REGISTRATION", "RENDER_")
    limits = {k: v for k, v in app.config.items() if k.startswith(names)}
    assert limits == {
        "LOGIN_WINDOW_SECONDS": 900,
        "LOGIN_FAILURES_PER_DEVICE": 5,
        "LOGIN_FAILURES_PER_ACCOUNT_ADDRESS": 5,
        "LOGIN_FAILURES_PER_ADDRESS": 20,
        "LOGIN_FAILURES_PER_USER": 20,
        "LOGIN_FAILURES_GLOBAL": 1000,
        "REGISTRATION_WINDOW_SECONDS": 3600,
        "REGISTRATIONS_PER_ADDRESS": 20,
        "REGISTRATIONS_PER_NETWORK": 60,
        "REGISTRATIONS_GLOBAL": 1000,
        "RENDER_WINDOW_SECONDS": 60,
        "RENDER_CPU_MS_PER_USER": 4000,
        "RENDER_CPU_MS_SITE": 30000,
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


# --- registrations ------------------------------------------------------------------------


def test_one_address_registers_a_few_accounts_then_waits(tmp_path: Path) -> None:
    app = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=3)  # 20 by default
    client = app.test_client()
    for i in range(3):
        assert register(client, f"new{i}").headers["Location"] == "/auth/login"
    response = register(client, "new3")
    assert response.status_code == 429
    assert 3590 <= int(response.headers["Retry-After"]) <= 3600
    assert (
        b"Too many registrations from this address or on this site. Try again in" in response.data
    )
    # The form again, filled as it was sent, ready to be sent later.
    assert b'<form method="post"' in response.data and b'value="new3"' in response.data
    assert "new3" not in users(app)
    # Another address is not held back by it.
    assert register(client, "elsewhere", addr="10.0.0.2").status_code == 302
    assert {"new0", "new1", "new2", "elsewhere"} <= users(app)


def test_registration_refusal_as_json(tmp_path: Path) -> None:
    client = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=1).test_client()
    register(client, "first")
    response = register(client, "second", headers={"Accept": "application/json"})
    assert response.status_code == 429
    assert response.get_json()["error"] == "Too Many Requests"
    assert "Too many registrations" in response.get_json()["message"]
    assert int(response.headers["Retry-After"]) > 3500


def test_a_taken_name_counts_a_form_error_does_not(tmp_path: Path) -> None:
    """A taken name is answered like a free one, so it costs the same; a form refused for its
    fields made nothing and counts nothing."""
    app = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=2)
    client = app.test_client()
    for _ in range(5):
        bad = client.post(
            "/auth/register",
            data={"username": "x", "password": "short"},
            environ_base={"REMOTE_ADDR": "10.0.0.1"},
        )
        assert bad.status_code == 400
    assert failures(app, RegistrationAttempt) == 0
    assert register(client, "test").status_code == 302  # taken: answered as free
    assert register(client, "newcomer").status_code == 302
    assert register(client, "another").status_code == 429


def test_the_whole_site_has_a_ceiling(tmp_path: Path) -> None:
    app = make_app(tmp_path, REGISTRATIONS_GLOBAL=3)  # 100 by default
    client = app.test_client()
    for i in range(3):
        assert register(client, f"far{i}", addr=f"10.3.0.{i}").status_code == 302
    assert register(client, "far9", addr="10.3.0.9").status_code == 429


def test_hammering_the_registration_limit_does_not_prolong_it(tmp_path: Path) -> None:
    app = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=2)
    client = app.test_client()
    for i in range(12):
        register(client, f"hammer{i}")
    assert failures(app, RegistrationAttempt) == 2  # refused attempts are taken back


def test_registrations_are_counted_across_instances(tmp_path: Path) -> None:
    """Two app instances on one database share the count, as gunicorn's workers do."""
    first = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=2)
    second = create_app(
        config_for(tmp_path, DATABASE_URL=first.config["DATABASE_URL"], REGISTRATIONS_PER_ADDRESS=2)
    )
    assert register(first.test_client(), "one").status_code == 302
    assert register(second.test_client(), "two").status_code == 302
    assert register(first.test_client(), "three").status_code == 429
    assert register(second.test_client(), "four").status_code == 429


def test_concurrent_registrations_cannot_pass_the_limit(tmp_path: Path) -> None:
    """Each registration is counted before its password is hashed: 12 at once from one
    address, with a limit of 5, make at most 5 accounts."""
    app = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=5)
    statuses = at_once(12, lambda i: register(app.test_client(), f"racer{i}").status_code)
    assert sorted(set(statuses)) == [302, 429]
    assert statuses.count(302) <= 5
    assert len({name for name in users(app) if name.startswith("racer")}) <= 5


def test_registrations_expire_after_the_window(tmp_path: Path) -> None:
    app = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=2)
    client = app.test_client()
    register(client, "early0")
    register(client, "early1")
    assert register(client, "early2").status_code == 429
    age(app, RegistrationAttempt, minutes=61)
    assert register(client, "later").status_code == 302
    assert failures(app, RegistrationAttempt) == 1  # old rows are pruned: the table stays small


# --- the owner's way in: an admin forgets the failures --------------------------------------


def test_an_admin_lets_the_owner_in_from_a_new_browser(tmp_path: Path) -> None:
    """Strangers exhausted the account's limit; the owner has no known browser. After `flask
    clear-login-failures NAME`, a new browser logs in at once."""
    app = make_app(tmp_path, LOGIN_FAILURES_PER_USER=3)
    for i in range(3):
        fail(app.test_client(), addr=f"10.4.0.{i}")
    fail(app.test_client(), "other", addr="10.4.1.1")
    assert login(app.test_client(), addr="192.0.2.8").status_code == 429
    result = app.test_cli_runner().invoke(args=["clear-login-failures", "TEST"])
    assert result.exit_code == 0, result.output
    assert "Forgot 3 failed logins counted against test." in result.output
    assert login(app.test_client(), addr="192.0.2.8").headers["Location"] == "/"
    assert failures(app) == 1  # other accounts' failures stay


def test_clear_login_failures_names_an_account(app) -> None:
    result = app.test_cli_runner().invoke(args=["clear-login-failures", "nobody"])
    assert result.exit_code == 1 and "No user named nobody." in result.output


def test_an_ipv6_subscriber_counts_as_one_address(tmp_path: Path) -> None:
    """One subscriber usually holds a whole /64: its 2^64 addresses share one allowance."""
    client = make_app(tmp_path, REGISTRATIONS_PER_ADDRESS=2).test_client()
    assert register(client, "six1", addr="2001:db8:1:2::1").status_code == 302
    assert register(client, "six2", addr="2001:db8:1:2:ffff::9").status_code == 302
    assert register(client, "six3", addr="2001:db8:1:2:abcd::3").status_code == 429
    assert register(client, "six4", addr="2001:db8:1:3::1").status_code == 302  # another /64
    # An IPv4 client reaching an IPv6 socket (::ffff:a.b.c.d) is its IPv4 address.
    assert register(client, "four1", addr="::ffff:10.0.0.7").status_code == 302
    assert register(client, "four2", addr="10.0.0.7").status_code == 302
    assert register(client, "four3", addr="::ffff:10.0.0.7").status_code == 429


def test_guesses_from_one_ipv6_subscriber_share_its_limit(tmp_path: Path) -> None:
    client = make_app(tmp_path, LOGIN_FAILURES_PER_ADDRESS=2).test_client()
    codes = [fail(client, f"nobody{i}", addr=f"2001:db8::{i + 1:x}").status_code for i in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2]


@pytest.mark.parametrize(
    ("first", "second", "third", "elsewhere"),
    [
        # A home's /56 holds 256 /64s, a tunnel's /48 65,536: one network's allowance.
        ("2001:db8:aa00:1::1", "2001:db8:aa00:2::1", "2001:db8:aa00:ff03::1", "2001:db8:ab00::1"),
        ("198.51.100.1", "198.51.100.2", "198.51.100.250", "198.51.101.1"),
    ],
)
def test_one_network_cannot_fill_the_sites_ceiling(tmp_path: Path, first, second, third, elsewhere):
    """The outside review closed registration for everyone from one IPv6 /56."""
    client = make_app(tmp_path, REGISTRATIONS_PER_NETWORK=2).test_client()
    assert register(client, "net1", addr=first).status_code == 302
    assert register(client, "net2", addr=second).status_code == 302
    assert register(client, "net3", addr=third).status_code == 429
    assert register(client, "net4", addr=elsewhere).status_code == 302


def test_a_new_password_ends_the_device_cookies_of_the_old_one(app) -> None:
    """Whoever logged in with the password before it changed keeps no guesses of their own:
    their device cookie counts as a stranger's."""
    old = app.test_client()
    login(old)
    with app.app_context():
        user = db.session.get_one(User, 1)
        accounts.set_password(user, "a brand new password")
        db.session.commit()
    for _ in range(5):
        assert fail(old, addr="10.5.0.1").status_code == 400
    # Counted with strangers: one more from that address is past its five for the account.
    assert fail(app.test_client(), addr="10.5.0.1").status_code == 429


def test_second_factor_codes_count_for_the_account_from_every_device(tmp_path: Path) -> None:
    """Device cookies are free to collect for whoever has the password (a login each, before
    the owner adds a factor): each gives its own password guesses, but the codes sent from
    all of them together meet the account's limit. The 24 logins' hashes cost some 4 s of
    CPU, about the account's render budget (RENDER_CPU_MS_PER_USER): that limit is not the
    one tested here, so it is out of reach."""
    app = make_app(tmp_path, LOGIN_FAILURES_PER_USER=8, RENDER_CPU_MS_PER_USER=10**6)
    browsers = [app.test_client() for _ in range(12)]
    for browser in browsers:
        assert login(browser).headers["Location"] == "/"  # a device cookie each
    with app.app_context():
        second_factor.enable(db.session.get_one(User, 1), pyotp.random_base32(32), 0)
        db.session.commit()
    statuses = []
    for browser in browsers:
        assert login(browser).headers["Location"] == "/auth/code"
        statuses.append(browser.post("/auth/code", data={"code": "000000"}).status_code)
    assert statuses == [400] * 8 + [429] * 4
