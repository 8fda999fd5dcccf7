"""Reading the mail an app under test sent, in both runtime modes.

Embedded mode writes mail to ``<data dir>/outbox/``; production mode sends it through SMTP to a
real local server (``tests/fakes/smtp_server.py``), from the task worker that the ``api``
fixture runs over Redis. A test module takes the fixtures by assigning them::

    from tests.support import mail as mail_fixtures

    smtp_server = mail_fixtures.smtp_server
    settings = mail_fixtures.settings
    mailbox = mail_fixtures.mailbox

``settings`` replaces the shared fixture so production mode points SMTP at the fake server.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.fakes.smtp_server import FakeSMTP

LINK = re.compile(r"https?://[^\s<>\"]+")


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return str(part.get_content())


def link_in(message: EmailMessage, path: str) -> str:
    """The link to ``path`` in the plain-text part."""
    for link in LINK.findall(text_of(message)):
        if path in link:
            return str(link)
    raise AssertionError(f"no link to {path} in:\n{text_of(message)}")


def token_in(message: EmailMessage, path: str) -> str:
    return link_in(message, path).split("token=", 1)[1]


def read_outbox(folder: Path) -> list[EmailMessage]:
    messages = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        messages.append(parsed)
    return messages


class Mailbox:
    """Every mail the app sent, wherever it went."""

    def __init__(self, outbox: Path, smtp: FakeSMTP | None) -> None:
        self.outbox = outbox
        self.smtp = smtp

    def all(self) -> list[EmailMessage]:
        return self.smtp.messages if self.smtp else read_outbox(self.outbox)

    def to(self, address: str, subject: str = "") -> list[EmailMessage]:
        """Mail to ``address`` (whose subject contains ``subject``), oldest first."""
        return [m for m in self.all() if m["To"] == address and subject in m["Subject"]]

    async def wait_for(
        self, address: str, count: int = 1, *, subject: str = "", timeout: float = 10
    ) -> EmailMessage:
        """The newest such mail once at least ``count`` have arrived. Mails of different kinds
        are sent by concurrent tasks, so their order is not guaranteed: filter by subject."""
        deadline = time.monotonic() + timeout
        while len(self.to(address, subject)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail #{count} to {address} within {timeout}s")
            await asyncio.sleep(0.05)
        return self.to(address, subject)[-1]

    async def settle(self, seconds: float = 0.6) -> None:
        """Give queued mail time to arrive, before asserting that none did."""
        await asyncio.sleep(seconds)


@pytest.fixture
def smtp_server() -> Iterator[FakeSMTP]:
    server = FakeSMTP().start()
    yield server
    server.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mode: str, smtp_server: FakeSMTP) -> Settings:
    """Production mode mails through the fake SMTP server; embedded mode uses the outbox."""
    if mode == "production":
        return make_settings(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    return make_settings()


@pytest.fixture
def mailbox(api: ApiClient, mode: str, settings: Settings, smtp_server: FakeSMTP) -> Mailbox:
    """Production mode's mail goes through the fake SMTP server (sent by the worker the ``api``
    fixture runs); embedded mode's to the outbox folder."""
    return Mailbox(settings.outbox_dir, smtp_server if mode == "production" else None)
