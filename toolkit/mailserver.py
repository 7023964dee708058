"""A real SMTP server for the mail flows: aiosmtpd on 127.0.0.1, STARTTLS required, keeping
what it receives in a Maildir; `flask send-mail` senders beside it; and the messages read
back, as a person reads their mailbox, to follow the link they carry."""

from __future__ import annotations

import contextlib
import mailbox
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from pathlib import Path

from toolkit import ROOT, ToolkitError
from toolkit.ports import free_port
from toolkit.servers import VENV_BIN, running
from toolkit.wait import until


class Smtp:
    """aiosmtpd on ``host`` (127.0.0.1; a container engine's bridge gateway for containers)
    and a free port, with the certificate and key ``tls`` (CA, cert, key), STARTTLS required;
    started by ``up()`` as often as a test stops it."""

    def __init__(
        self, tmp_path: Path, tls: tuple[Path, Path, Path], host: str = "127.0.0.1"
    ) -> None:
        self.host, self.port = host, free_port()
        self.maildir = tmp_path / "maildir"
        self.tmp_path, self.tls = tmp_path, tls
        self.starts = 0

    @contextmanager
    def up(self) -> Iterator[None]:
        _, cert, key = self.tls
        self.starts += 1
        argv = [VENV_BIN / "python", "-m", "aiosmtpd", "-n", "-l", f"{self.host}:{self.port}",
                "--tlscert", cert, "--tlskey", key,
                "-c", "aiosmtpd.handlers.Mailbox", self.maildir]  # fmt: skip
        with running(argv, self.tmp_path / f"smtp-{self.starts}.log"):
            until(self.listening, 15, f"aiosmtpd on port {self.port}")
            yield

    def listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1):
                return True
        except OSError:
            return False

    def messages(self) -> list[Message]:
        if not self.maildir.exists():
            return []
        return list(mailbox.Maildir(self.maildir, create=False))

    def to(self, address: str, subject: str) -> list[Message]:
        """The messages received for ``address`` with ``subject``, oldest first or not."""
        return [m for m in self.messages() if m["To"] == address and m["Subject"] == subject]

    def link_path(self, site: str, address: str, subject: str, count: int = 1) -> str:
        """Wait for the ``count``th message to ``address``; the path of its link to ``site``."""
        found = until(
            lambda: len(self.to(address, subject)) >= count and self.to(address, subject),
            30,
            f"{subject!r} to {address}",
        )
        body = found[count - 1].get_payload(decode=True).decode()
        link = re.search(re.escape(site) + r"(/\S+)", body)
        if not link:
            raise ToolkitError(f"no link to {site} in {subject!r}:\n{body}")
        return link[1]


@contextmanager
def senders(env: dict[str, str], logs: Path, count: int = 1) -> Iterator[None]:
    """``count`` `flask send-mail` processes (logs ``logs``/sender-N.log), until the block ends."""
    with contextlib.ExitStack() as stack:
        for i in range(count):
            argv = [VENV_BIN / "flask", "--app", "flaskr", "send-mail"]
            stack.enter_context(running(argv, logs / f"sender-{i}.log", env=env, cwd=ROOT))
        yield
