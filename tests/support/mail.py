"""Reading the mail an app under test sent, in both runtime modes.

Embedded mode writes mail to ``<data dir>/outbox/``; production mode sends it through SMTP to a
real local server (``tests/fakes/smtp_server.py``), from a taskiq worker over Redis. Test modules
import the fixtures::

    from tests.support.mail import mailbox, settings, smtp_server  # noqa: F401

``settings`` replaces the shared fixture so production mode points SMTP at the fake server;
``mailbox`` also runs a task worker in production mode, as ``multinotes worker`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from multinotes.keys import TASKS
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

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.all() if m["To"] == address]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 10) -> EmailMessage:
        """The newest mail to ``address`` once at least ``count`` have arrived."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail #{count} to {address} within {timeout}s")
            await asyncio.sleep(0.05)
        return self.to(address)[-1]

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


@contextlib.asynccontextmanager
async def running_worker(api: ApiClient) -> AsyncIterator[None]:
    """A taskiq receiver in this process, consuming the app's Redis stream like a worker."""
    from taskiq.api import run_receiver_task

    worker = asyncio.create_task(run_receiver_task(api.app[TASKS].broker))
    try:
        yield
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker


@pytest.fixture
async def mailbox(
    api: ApiClient, mode: str, settings: Settings, smtp_server: FakeSMTP
) -> AsyncIterator[Mailbox]:
    if mode == "production":
        async with running_worker(api):
            yield Mailbox(settings.outbox_dir, smtp_server)
    else:
        yield Mailbox(settings.outbox_dir, None)
