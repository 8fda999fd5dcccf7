"""A real SMTP server on a free local port (aiosmtpd), keeping every message it accepts.

Start it with ``FakeSMTP().start()`` (or ``FakeSMTP(username=..., password=...)`` to demand
credentials), point ``smtp_host``/``smtp_port`` at its ``host``/``port``, read ``received`` or
``await wait_for(address)``, and ``stop()`` it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import socket
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str | None


@dataclass
class FakeSMTP:
    username: str | None = None
    password: str | None = None
    #: Answer every DATA with this SMTP error (e.g. "451 4.3.0 try later") instead of accepting.
    fail_with: str | None = None
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    _controller: Controller | None = None

    # -- aiosmtpd handler -----------------------------------------------------------------------

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.fail_with:
            return self.fail_with
        message = email.message_from_bytes(
            envelope.original_content or envelope.content, policy=email.policy.default
        )
        assert isinstance(message, EmailMessage)
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, login))
        return "250 Message accepted for delivery"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeSMTP:
        # aiosmtpd traces every DATA line at debug level; that is the fake's log, not the app's.
        logging.getLogger("mail.log").setLevel(logging.INFO)
        options: dict[str, Any] = {}
        if self.username is not None:
            options.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=False
            )
        self._controller = Controller(self, hostname=self.host, port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # -- reading --------------------------------------------------------------------------------

    @property
    def messages(self) -> list[EmailMessage]:
        return [r.message for r in self.received]

    def to(self, address: str) -> list[EmailMessage]:
        return [r.message for r in self.received if address in r.recipients]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 10) -> EmailMessage:
        """The newest message to ``address`` once at least ``count`` have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail #{count} to {address} within {timeout}s")
            await asyncio.sleep(0.05)
        return self.to(address)[-1]
