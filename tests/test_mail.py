"""Outgoing mail: rendered from templates as text + HTML, written to the outbox folder without
SMTP, sent through a real SMTP server (with credentials) when configured, retried, and queued
as a background task."""

from __future__ import annotations

import stat

import aiosmtplib
import pytest

from multinotes import mail
from multinotes.app import create_app
from multinotes.testing import ApiClient, embedded_settings
from tests.fakes.smtp_server import FakeSMTP
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, html_of, read_outbox, text_of

# The fake demands credentials over plain TCP (no certificates here); aiosmtpd warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

CONTEXT = {
    "name": "Ada <Lovelace>",
    "email": "ada@example.com",
    "link": "http://notes.test/verify?token=abc&x=1",
    "hours": 48,
}


def offline_app(tmp_path, **overrides):
    """An app that is built but not started: enough to render and deliver mail."""
    return create_app(embedded_settings(tmp_path, **overrides), plugins=[])


def test_mail_is_rendered_as_text_and_html_from_templates(tmp_path):
    rendered = mail.render_mail(offline_app(tmp_path), "verify_email", CONTEXT)
    assert rendered.subject == "Verify your email address for MultinotesAI"
    assert rendered.text.startswith("Hi Ada <Lovelace>,")  # plain text is not escaped
    assert CONTEXT["link"] in rendered.text
    assert "Ada &lt;Lovelace&gt;" in rendered.html  # HTML is
    assert 'href="http://notes.test/verify?token=abc&amp;x=1"' in rendered.html


async def test_without_smtp_mail_is_written_to_the_outbox_folder(tmp_path):
    app = offline_app(tmp_path)
    await mail.send_mail(app, template="reset_password", to="bob@example.com", context=CONTEXT)
    folder = tmp_path / "outbox"
    [path] = list(folder.glob("*.eml"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700  # the links in there are credentials
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [message] = read_outbox(folder)
    assert message["To"] == "bob@example.com"
    assert message["From"] == "MultinotesAI <no-reply@localhost>"
    assert message["Subject"] == "Reset your MultinotesAI password"
    assert message.get_content_type() == "multipart/alternative"
    assert CONTEXT["link"] in text_of(message)
    assert "Choose a new password" in html_of(message)
    assert not list(folder.glob(".*"))  # no partial files left behind


async def test_with_smtp_configured_mail_goes_through_the_server_with_credentials(tmp_path):
    server = FakeSMTP(username="mailer", password="smtp-pass-123").start()
    try:
        app = offline_app(
            tmp_path,
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_username="mailer",
            smtp_password="smtp-pass-123",
            mail_from="Notes <notes@example.org>",
        )
        await mail.send_mail(app, template="verify_email", to="cy@example.com", context=CONTEXT)
        [received] = server.received
        assert received.login == "mailer"
        assert received.recipients == ["cy@example.com"]
        assert received.sender == "notes@example.org"
        assert received.message["Message-ID"].endswith("@example.org>")
        assert not (tmp_path / "outbox").exists()
    finally:
        server.stop()


async def test_a_failing_smtp_server_is_retried_then_the_task_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(mail, "RETRY_DELAYS", (0.01, 0.01))
    server = FakeSMTP(fail_with="451 4.3.0 Try again later").start()
    try:
        app = offline_app(tmp_path, smtp_host=server.host, smtp_port=server.port)
        with pytest.raises(aiosmtplib.SMTPException):
            await mail.send_mail(app, template="verify_email", to="d@example.com", context=CONTEXT)
        assert server.attempts == 3
    finally:
        server.stop()


async def test_wrong_smtp_credentials_fail_loudly(tmp_path, monkeypatch):
    monkeypatch.setattr(mail, "RETRY_DELAYS", ())
    server = FakeSMTP(username="mailer", password="right").start()
    try:
        app = offline_app(
            tmp_path,
            smtp_host=server.host,
            smtp_port=server.port,
            smtp_username="mailer",
            smtp_password="wrong",
        )
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await mail.send_mail(app, template="verify_email", to="e@example.com", context=CONTEXT)
        assert server.received == []
    finally:
        server.stop()


async def test_queued_mail_is_sent_by_the_background_worker(api: ApiClient, mailbox: Mailbox):
    await mail.queue_mail(api.app, template="verify_email", to="fay@example.com", context=CONTEXT)
    message = await mailbox.wait_for("fay@example.com")
    assert message["Subject"] == "Verify your email address for MultinotesAI"
