"""Links in mails are built from the configured public URL, or (without one) from the address
the server listens on, never from request headers: a forgot-password request sent with a forged
``Host`` (or, behind a trusted proxy, ``X-Forwarded-Host``) still mails a link to this site."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from yarl import URL

from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.fakes.smtp_server import FakeSMTP
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, link_in

smtp_server = mail_fixtures.smtp_server
mailbox = mail_fixtures.mailbox

RESET_SUBJECT = "Reset your MultinotesAI password"
FORGED = {"Host": "evil.example:8443", "X-Forwarded-Host": "evil.example:8443"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mode: str, smtp_server: FakeSMTP) -> Settings:
    # Every host is served and the test client counts as a trusted proxy: the forged headers
    # reach the handlers, which must not believe them.
    values: dict[str, object] = {"allowed_hosts": ["*"], "trusted_proxies": ["127.0.0.1/32"]}
    if mode == "production":
        values.update(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    return make_settings(**values)


async def reset_link(api: ApiClient, mailbox: Mailbox) -> URL:
    await api.register("kim@example.com", name="Kim")
    response = await api.post(
        "/api/auth/password/forgot", {"email": "kim@example.com"}, headers=FORGED
    )
    assert response.status == 202, await response.text()
    mail = await mailbox.wait_for("kim@example.com", subject=RESET_SUBJECT)
    return URL(link_in(mail, "/password/reset?token="))


async def test_reset_link_points_at_the_listening_address_not_the_host_header(
    api: ApiClient, mailbox: Mailbox
) -> None:
    link = await reset_link(api, mailbox)
    server = api.client.server
    assert (link.host, link.port) == (server.host, server.port), link
    assert link.scheme == "http" and link.path == "/password/reset"
    for mail in mailbox.all():
        assert "evil.example" not in mail.as_string()


async def test_reset_link_uses_the_configured_public_url(
    make_settings: Callable[..., Settings], mode: str, smtp_server: FakeSMTP
) -> None:
    from multinotes.app import create_app
    from multinotes.testing import app_client
    from tests.conftest import worker_for

    values: dict[str, object] = {
        "allowed_hosts": ["*"],
        "trusted_proxies": ["127.0.0.1/32"],
        "public_url": "https://notes.example.com/",
    }
    if mode == "production":
        values.update(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    settings = make_settings(**values)
    app = create_app(settings)
    async with app_client(app) as api, worker_for(app):
        box = Mailbox(settings.outbox_dir, smtp_server if mode == "production" else None)
        link = await reset_link(api, box)
    assert str(link.origin()) == "https://notes.example.com"
