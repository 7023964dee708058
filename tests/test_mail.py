"""flaskr/mail.py: the outbox's sender, against a real SMTP server (aiosmtpd, in this process)
speaking STARTTLS or TLS with a throwaway certificate, and asking for a login."""

from __future__ import annotations

import gc
import os
import signal
import smtplib
import ssl
import threading
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask
from sqlalchemy import update

from flaskr import mail
from flaskr.db import db
from flaskr.models import OutboxMessage
from tests.helpers import outbox
from toolkit.apps import make_app
from toolkit.ports import free_port
from toolkit.tls import issue, make_ca

PASSWORD = "smtp-password"


class Recorder:
    """Keeps what it is sent; refuses recipients whose local part says how (451, 550)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_RCPT(self, server, session, envelope, address, options) -> str:  # noqa: N802
        if address.startswith(("451", "550")):
            return f"{address[:3]} refused as asked"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        if envelope.rcpt_tos[0].startswith("data554"):
            return "554 refused after the data"
        self.messages.append(envelope)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, data) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A throwaway CA, and a certificate it signed for localhost and 127.0.0.1, with its key."""
    ca = make_ca(tmp_path_factory.mktemp("tls"), "mail test CA")
    return ca, *issue(ca, "smtp", ["localhost"], ips=("127.0.0.1",))


@pytest.fixture
def trusted(certificate, monkeypatch) -> ssl.SSLContext:
    """The sender trusts the throwaway CA; the server's TLS context holds its certificate."""
    ca, cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def start(handler: Recorder, context: ssl.SSLContext | None, implicit: bool = False) -> Controller:
    kwargs: dict[str, Any] = {"ssl_context": context, "auth_require_tls": False} if implicit else {
        "tls_context": context, "require_starttls": context is not None, "auth_require_tls": True
    }  # fmt: skip
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        server_hostname="localhost",
        authenticator=authenticate,
        **kwargs,
    )
    controller.start()
    return controller


def stop(controller: Controller) -> None:
    """Stop the server, and collect what its loop dropped now, not inside a later test.

    aiosmtpd's loop leaves the transports of connections a client closed without QUIT to
    the garbage collector, which warns about each (a ResourceWarning, an error here).
    """
    controller.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def smtp(recorder, trusted) -> Iterator[Controller]:
    controller = start(recorder, trusted)
    yield controller
    stop(controller)


def mail_app(
    tmp_path: Path, port: int, scheme: str = "smtp", login: str = "sender@", **overrides: Any
) -> Flask:
    password = tmp_path / "mail_password"
    password.write_text(PASSWORD + "\n")
    settings = {
        "MAIL_URL": f"{scheme}://{login}localhost:{port}",
        "MAIL_FROM": "blog@example.com",
        "MAIL_PASSWORD_FILE": str(password),
        "SITE_URL": "https://blog.example.com",
        "MAIL_TIMEOUT_SECONDS": 5,
        **overrides,
    }
    return make_app(tmp_path, **settings)


@pytest.fixture
def app(tmp_path, smtp) -> Iterator[Flask]:
    app = mail_app(tmp_path, smtp.port)
    yield app
    with app.app_context():
        db.engine.dispose()


def queue(app: Flask, *recipients: str) -> None:
    with app.app_context():
        for recipient in recipients:
            mail.queue(recipient, "Hello", f"Hello {recipient}")
        db.session.commit()


def send(app: Flask) -> int:
    with app.app_context():
        return mail.send_due()


def make_due(app: Flask) -> None:
    """As if the wait before the next attempt were over."""
    with app.app_context():
        db.session.execute(update(OutboxMessage).values(next_attempt=mail._now()))
        db.session.commit()


def test_queued_mail_is_sent_once_over_starttls_with_a_login(app, recorder) -> None:
    queue(app, "a@example.com", "b@example.com")
    assert send(app) == 2
    assert [m.rcpt_tos for m in recorder.messages] == [["a@example.com"], ["b@example.com"]]
    first = recorder.messages[0].content.decode()
    assert "From: blog@example.com" in first and "Subject: Hello" in first
    assert "Message-ID: <outbox.1." in first
    assert all(row.sent is not None and row.claimed_by is None for row in outbox(app))
    assert send(app) == 0  # sent is sent
    assert len(recorder.messages) == 2


def test_implicit_tls_without_a_login(tmp_path, recorder, trusted) -> None:
    controller = start(recorder, trusted, implicit=True)
    try:
        app = mail_app(tmp_path, controller.port, scheme="smtps", login="")
        queue(app, "a@example.com")
        assert send(app) == 1
    finally:
        stop(controller)
    assert len(recorder.messages) == 1


def test_a_server_down_loses_nothing_and_retries_with_backoff(tmp_path, recorder, trusted) -> None:
    port = free_port()
    app = mail_app(tmp_path, port, MAIL_RETRY_SECONDS=10)
    queue(app, "a@example.com")
    assert send(app) == 0
    (row,) = outbox(app)
    assert row.sent is None and row.failed is None and row.attempts == 1
    assert row.claimed_by is None
    assert "ConnectionRefusedError" in (row.last_error or "")
    assert row.next_attempt - mail._now() > timedelta(seconds=8)
    assert send(app) == 0  # not due yet
    make_due(app)
    assert send(app) == 0
    (row,) = outbox(app)
    assert row.attempts == 2 and row.next_attempt - mail._now() > timedelta(seconds=18)
    controller = Controller(
        recorder, hostname="127.0.0.1", port=port, server_hostname="localhost",
        tls_context=trusted, require_starttls=True, authenticator=authenticate,
    )  # fmt: skip
    controller.start()
    try:
        make_due(app)
        assert send(app) == 1
    finally:
        stop(controller)
    assert len(recorder.messages) == 1 and outbox(app)[0].sent is not None


def test_a_permanent_refusal_gives_up_a_temporary_one_retries(app, recorder) -> None:
    queue(app, "550@example.com", "451@example.com", "ok@example.com")
    assert send(app) == 1
    refused, later, sent = outbox(app)
    assert refused.failed is not None and "550" in (refused.last_error or "")
    assert later.failed is None and later.attempts == 1 and "451" in (later.last_error or "")
    assert sent.sent is not None
    make_due(app)
    assert send(app) == 0  # the refused one is never tried again; 451 again
    assert outbox(app)[0].attempts == 1


def test_a_message_refused_after_its_data_is_given_up(app, recorder) -> None:
    queue(app, "data554@example.com")
    assert send(app) == 0
    (row,) = outbox(app)
    assert row.failed is not None and "SMTPDataError" in (row.last_error or "")


def test_a_connection_lost_at_the_end_keeps_what_was_sent(app, recorder, monkeypatch) -> None:
    def lost(self: smtplib.SMTP) -> None:
        raise smtplib.SMTPServerDisconnected("gone")

    monkeypatch.setattr(smtplib.SMTP, "quit", lost)
    queue(app, "a@example.com")
    assert send(app) == 1
    assert outbox(app)[0].sent is not None


def test_a_message_is_given_up_after_its_attempts(tmp_path) -> None:
    app = mail_app(tmp_path, free_port(), MAIL_ATTEMPTS=2)
    queue(app, "a@example.com")
    send(app)
    make_due(app)
    send(app)
    (row,) = outbox(app)
    assert row.failed is not None and row.attempts == 2
    make_due(app)
    assert send(app) == 0 and outbox(app)[0].attempts == 2


def test_a_server_without_starttls_gets_nothing_in_clear_text(tmp_path, recorder) -> None:
    controller = start(recorder, None)
    try:
        app = mail_app(tmp_path, controller.port)
        queue(app, "a@example.com")
        assert send(app) == 0
    finally:
        stop(controller)
    assert recorder.messages == []
    assert "STARTTLS" in (outbox(app)[0].last_error or "")


def test_a_wrong_password_is_retried_not_given_up(tmp_path, smtp, recorder) -> None:
    """A 535 at login is the settings' fault, not the message's: it waits for a fix."""
    app = mail_app(tmp_path, smtp.port, MAIL_TIMEOUT_SECONDS=1)
    (tmp_path / "mail_password").write_text("wrong")
    queue(app, "a@example.com")
    assert send(app) == 0
    (row,) = outbox(app)
    assert row.failed is None and row.attempts == 1 and row.last_error
    assert recorder.messages == []


def test_two_senders_never_claim_the_same_row(app) -> None:
    queue(app, "a@example.com", "b@example.com")
    with app.app_context():
        first = mail.claim("a" * 32)
        assert [row.recipient for row in first] == ["a@example.com", "b@example.com"]
        assert mail.claim("b" * 32) == []
        # A sender that died: its claims lapse with the lease, and another takes the rows.
        db.session.execute(update(OutboxMessage).values(claimed_until=mail._now()))
        db.session.commit()
        assert len(mail.claim("b" * 32)) == 2


def test_a_row_claimed_meanwhile_is_not_claimed_again(app, monkeypatch) -> None:
    """Between the SELECT and the UPDATE another sender claims the row: this one skips it."""
    queue(app, "a@example.com")
    with app.app_context():
        due = mail._due

        def raced() -> list[int]:
            found = due()
            db.session.execute(
                update(OutboxMessage).values(
                    claimed_by="x" * 32, claimed_until=mail._now() + mail.LEASE
                )
            )
            db.session.commit()
            return found

        monkeypatch.setattr(mail, "_due", raced)
        assert mail.claim("b" * 32) == []


def test_the_password_comes_from_systemds_credentials(tmp_path, monkeypatch) -> None:
    app = mail_app(tmp_path, 25, MAIL_PASSWORD_FILE=None)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mail_password").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    with app.app_context():
        assert mail.server().password == "from-systemd"
        assert mail.server().username == "sender"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "instance"))  # none there
    with app.app_context():
        assert mail.server().password is None


def test_send_mail_command(app, recorder) -> None:
    queue(app, "a@example.com")
    result = app.test_cli_runner().invoke(args=["send-mail", "--once"])
    assert result.exit_code == 0, result.output
    assert "Sent 1 messages." in result.output
    assert len(recorder.messages) == 1


def test_send_mail_without_settings_says_so(tmp_path) -> None:
    result = make_app(tmp_path).test_cli_runner().invoke(args=["send-mail", "--once"])
    assert result.exit_code == 1
    assert "FLASKR_MAIL_URL and FLASKR_MAIL_FROM are not set" in result.output


def test_the_sender_runs_until_told_to_stop(app, recorder) -> None:
    """Without --once it looks again every MAIL_POLL_SECONDS, and SIGTERM stops it."""
    app.config["MAIL_POLL_SECONDS"] = 1
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def later() -> None:
        queue(app, "late@example.com")
        threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()

    threading.Timer(0.2, later).start()
    try:
        with app.app_context():
            assert mail.run(once=False) == 1
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert [m.rcpt_tos for m in recorder.messages] == [["late@example.com"]]


def test_enabled_needs_both_settings(tmp_path) -> None:
    app = make_app(tmp_path)
    with app.app_context():
        assert not mail.enabled()
        app.config["MAIL_URL"] = "smtp://localhost"
        assert not mail.enabled()
        app.config["MAIL_FROM"] = "blog@example.com"
        assert mail.enabled()
        assert mail.server().port == 587
        app.config["MAIL_URL"] = "smtps://localhost"
        assert mail.server().port == 465
