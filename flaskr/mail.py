"""Mail: written to the outbox in the request's transaction, sent by ``flask send-mail``.

A request never talks to the SMTP server: ``queue`` adds a row to ``mail_outbox`` in the
request's own transaction, so a message exists exactly when what it announces was committed,
and a server that is down slows no request. The sender (``run``, its own long-running
process) claims due rows, sends them, and marks each sent in the same step; a failure
schedules the next attempt with a doubled wait (``MAIL_RETRY_SECONDS``, at most an hour),
and a permanent refusal (5xx) or ``MAIL_ATTEMPTS`` failures give the message up.

Two senders never send the same row: a sender claims a row with one conditional UPDATE
(its own token, until a lease ends) and only a sender whose UPDATE changed the row sends it.
A sender that dies holding claims leaves them to the others once the lease is over. The one
window no outbox closes: a server that accepted a message while the sender died before
marking it sent gets it again after the lease; the Message-ID is the row's, so the copies
are recognisably one message.
"""

from __future__ import annotations

import os
import secrets
import signal
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import current_app
from sqlalchemy import or_, select, update

from flaskr.db import db
from flaskr.models import OutboxMessage

#: How long a claim holds a row: longer than any send takes (a timeout per SMTP command).
LEASE = timedelta(minutes=5)
#: The longest wait between two attempts at one message.
MAX_RETRY = timedelta(hours=1)
#: Rows claimed at a time: what one connection sends before the sender looks again.
BATCH = 20


def _now() -> datetime:
    """UTC without tzinfo, as the database columns store times."""
    return datetime.now(UTC).replace(tzinfo=None)


def enabled() -> bool:
    """Whether this site sends mail: FLASKR_MAIL_URL and FLASKR_MAIL_FROM are set."""
    config = current_app.config
    return bool(config["MAIL_URL"] and config["MAIL_FROM"])


def queue(recipient: str, subject: str, body: str) -> None:
    """Add a message to the outbox; it is sent once the caller commits."""
    now = _now()
    db.session.add(
        OutboxMessage(
            recipient=recipient,
            subject=subject,
            body=body,
            created=now,
            next_attempt=now,
            attempts=0,
        )
    )


@dataclass(frozen=True)
class Server:
    """Where and how to send, from FLASKR_MAIL_URL and the password file."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None
    timeout: int


def password_path() -> str | None:
    """The password file: FLASKR_MAIL_PASSWORD_FILE, or systemd's ``mail_password`` credential."""
    named = current_app.config["MAIL_PASSWORD_FILE"]
    if named:
        return str(named)
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    path = os.path.join(directory, "mail_password") if directory else None
    return path if path and os.path.exists(path) else None


def server() -> Server:
    """The SMTP server the settings name (config.py checked the URL when the app started)."""
    config = current_app.config
    parts = urlsplit(config["MAIL_URL"])
    implicit_tls = parts.scheme == "smtps"
    path = password_path()
    return Server(
        host=parts.hostname or "",
        port=parts.port or (465 if implicit_tls else 587),
        implicit_tls=implicit_tls,
        username=unquote(parts.username) if parts.username else None,
        password=Path(path).read_text().strip() if path else None,
        timeout=config["MAIL_TIMEOUT_SECONDS"],
    )


def connect(where: Server) -> smtplib.SMTP:
    """A connection over TLS, logged in when a name is given; never in clear text.

    The certificate is checked against the system's CAs (``SSL_CERT_FILE`` names others).
    """
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if where.implicit_tls:
        smtp = smtplib.SMTP_SSL(where.host, where.port, timeout=where.timeout, context=context)
    else:
        smtp = smtplib.SMTP(where.host, where.port, timeout=where.timeout)
    try:
        if not where.implicit_tls:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
            smtp.starttls(context=context)
            smtp.ehlo()
        if where.username:
            smtp.login(where.username, where.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def message(row: OutboxMessage, sender: str) -> EmailMessage:
    """The message of ``row``; its Message-ID is the row's, the same on every attempt."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = row.recipient
    mail["Subject"] = row.subject
    mail["Date"] = format_datetime(row.created.replace(tzinfo=UTC))
    domain = sender.rpartition("@")[2] or "localhost"
    mail["Message-ID"] = f"<outbox.{row.id}.{row.created:%Y%m%d%H%M%S}@{domain}>"
    mail.set_content(row.body)
    return mail


def _due() -> list[int]:
    """Ids of rows to send now that no live claim holds."""
    now = _now()
    return list(
        db.session.scalars(
            select(OutboxMessage.id)
            .where(_claimable(now), OutboxMessage.next_attempt <= now)
            .order_by(OutboxMessage.id)
            .limit(BATCH)
        )
    )


def _claimable(now: datetime):  # type: ignore[no-untyped-def]  # a SQL expression
    return (
        OutboxMessage.sent.is_(None)
        & OutboxMessage.failed.is_(None)
        & or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now)
    )


def claim(token: str) -> list[OutboxMessage]:
    """Claim the due rows no other sender holds, each with one conditional UPDATE; committed."""
    claimed = []
    for row_id in _due():
        now = _now()
        result = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, _claimable(now))
            .values(claimed_by=token, claimed_until=now + LEASE)
        )
        db.session.commit()
        if result.rowcount == 1:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
            claimed.append(row_id)
    if not claimed:
        return []
    return list(
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(claimed)).order_by(OutboxMessage.id)
        )
    )


def _finish(row: OutboxMessage, token: str, **values: object) -> None:
    """Record an attempt's outcome, releasing the claim; committed."""
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row.id, OutboxMessage.claimed_by == token)
        .values(claimed_by=None, claimed_until=None, **values)
    )
    db.session.commit()


def refused_for_good(error: Exception) -> bool:
    """The server refused this message for good (5xx), not a failure worth another try."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(500 <= code < 600 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600


def _failed(row: OutboxMessage, token: str, error: Exception, permanent: bool) -> None:
    """Schedule the next attempt, or give the message up: refused for good, or out of tries."""
    config = current_app.config
    attempts = row.attempts + 1
    text = f"{type(error).__name__}: {error}"[:1000]
    now = _now()
    if permanent or attempts >= config["MAIL_ATTEMPTS"]:
        _finish(row, token, attempts=attempts, failed=now, last_error=text)
        current_app.logger.error(
            "mail %s to %s given up after %d attempts: %s", row.id, row.recipient, attempts, text
        )
        return
    wait = min(timedelta(seconds=config["MAIL_RETRY_SECONDS"] * 2 ** (attempts - 1)), MAX_RETRY)
    _finish(row, token, attempts=attempts, next_attempt=now + wait, last_error=text)
    current_app.logger.warning(
        "mail %s to %s not sent (attempt %d), next in %d s: %s",
        row.id,
        row.recipient,
        attempts,
        wait.total_seconds(),
        text,
    )


#: What a failed attempt raises: the server's answers, a network that fails, TLS that fails.
SEND_ERRORS = (smtplib.SMTPException, OSError)


def send_due() -> int:
    """Send what is due now over one connection; return how many were sent."""
    token = secrets.token_hex(16)
    rows = claim(token)
    if not rows:
        return 0
    sender = current_app.config["MAIL_FROM"]
    sent = 0
    try:
        smtp = connect(server())
    except SEND_ERRORS as e:  # the server, TLS or the login: never the message's fault
        for row in rows:
            _failed(row, token, e, permanent=False)
        return 0
    try:
        for row in rows:
            try:
                smtp.send_message(message(row, sender), to_addrs=[row.recipient])
            except SEND_ERRORS as e:
                _failed(row, token, e, permanent=refused_for_good(e))
                continue
            _finish(row, token, sent=_now(), last_error=None)
            current_app.logger.info("mail %s sent to %s", row.id, row.recipient)
            sent += 1
    finally:
        try:
            smtp.quit()
        except SEND_ERRORS:
            smtp.close()
    return sent


def run(once: bool) -> int:
    """Send what is due, and with ``once`` stop; else look again every MAIL_POLL_SECONDS.

    Runs until SIGTERM or SIGINT, finishing the message being sent first. Returns how many
    messages were sent.
    """
    stop = threading.Event()
    if not once:

        def stop_soon(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stop_soon)
        signal.signal(signal.SIGINT, stop_soon)
        current_app.logger.info("send-mail started on %s", socket.gethostname())
    sent = send_due()
    while not once and not stop.wait(current_app.config["MAIL_POLL_SECONDS"]):
        sent += send_due()
        db.session.remove()
    return sent


def settings_problem(config: Mapping[str, Any]) -> str | None:
    """Why the mail settings cannot be used, if so: the app stops at start, not the sender later."""
    url = config["MAIL_URL"]
    if not url:  # unset, or set empty (compose's `${FLASKR_MAIL_URL:-}`): no mail
        return None
    parts = urlsplit(str(url))
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname or not port_ok:
        return (
            f"flaskr: FLASKR_MAIL_URL must be smtp://host:port (STARTTLS) or smtps://host:port "
            f"(TLS), not {url!r}."
        )
    if parts.password is not None:
        return (
            "flaskr: FLASKR_MAIL_URL holds a password: put it in a file named by "
            "FLASKR_MAIL_PASSWORD_FILE instead, readable by this app alone."
        )
    for name, what in (
        ("MAIL_FROM", "the address the site's mail comes from"),
        ("SITE_URL", "the site's address for mailed links, such as https://blog.example.com"),
    ):
        if not config[name]:
            return f"flaskr: FLASKR_MAIL_URL is set but FLASKR_{name} is not: set it to {what}."
    return None
