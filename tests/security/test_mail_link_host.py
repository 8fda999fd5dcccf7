"""Links in mails are built from the configured public URL, or (without one) from the address
the server listens on, never from request headers: a forgot-password request sent with a forged
``Host`` (or, behind a trusted proxy, ``X-Forwarded-Host``) still mails a link to this site. The
same holds for every other absolute link to this site, such as where a payment page sends the
buyer back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from yarl import URL

from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.fakes.smtp_server import FakeSMTP
from tests.support import mail as mail_fixtures
from tests.support.mail import LINK, Mailbox, link_in, text_of

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


async def test_no_mail_a_forged_host_asked_for_points_elsewhere(
    api: ApiClient, mailbox: Mailbox
) -> None:
    """The class, not one mail: the verification link, the 'someone tried to sign up' mail and
    an invitation, each asked for with forged headers, link only to this site."""
    for _ in range(2):  # a new address, then the same one taken
        body = {"email": "kim@example.com", "password": "a long passphrase 42", "name": "Kim"}
        assert (await api.post("/api/auth/register", body, headers=FORGED)).status == 201
    await api.login("kim@example.com", "a long passphrase 42")
    await api.mark_verified()
    note = await api.post("/api/documents", {"title": "Plans", "content": "x"})
    share = {"object_type": "document", "object_id": (await note.json())["id"]}
    shared = await api.post("/api/shares", {**share, "email": "guest@example.com"}, headers=FORGED)
    assert shared.status == 201, await shared.text()

    server = api.client.server
    site = f"http://{server.host}:{server.port}/"
    # (Generous waits: three mails from three tasks on a busy machine.)
    verify = await mailbox.wait_for("kim@example.com", subject="Verify", timeout=30)
    attempt = await mailbox.wait_for("kim@example.com", subject="Someone tried", timeout=30)
    invitation = await mailbox.wait_for("guest@example.com", timeout=30)
    for mail in (verify, attempt, invitation):
        links = LINK.findall(text_of(mail))
        assert links and all(link.startswith(site) for link in links), (mail["Subject"], links)
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


async def test_a_payment_page_sends_the_buyer_back_to_this_site_not_the_host_header(
    make_settings: Callable[..., Settings],
) -> None:
    from aiohttp.test_utils import TestServer

    from multinotes.app import create_app
    from multinotes.plugins.billing import stripe as stripe_plugin
    from multinotes.testing import app_client
    from tests.fakes.stripe_server import FakeStripe

    fake = FakeStripe()
    server = TestServer(fake.app())
    await server.start_server()
    try:
        stripe = {
            "secret_key": fake.secret_key,
            "webhook_secret": fake.webhook_secret,
            "api_base": str(server.make_url("")).rstrip("/"),
        }
        settings = make_settings(
            allowed_hosts=["*"], trusted_proxies=["127.0.0.1/32"], plugins={"stripe": stripe}
        )
        app = create_app(settings, plugins=[("stripe", stripe_plugin)])
        async with app_client(app) as api:
            await api.register_admin()
            plan = await api.post(
                "/api/admin/plans",
                {
                    "name": "Starter",
                    "kind": "credits",
                    "credits": 100,
                    "price": 1000,
                    "currency": "usd",
                    "interval": "once",
                },
            )
            assert plan.status == 201, await plan.text()
            plan_id = (await plan.json())["id"]
            started = await api.post("/api/billing/checkout", {"plan_id": plan_id}, headers=FORGED)
            assert started.status == 201, await started.text()
            own = api.client.server
            base = f"http://{own.host}:{own.port}"
    finally:
        await server.close()
    (session,) = fake.sessions.values()
    assert session["success_url"].startswith(f"{base}/billing/return?order="), session
    assert session["cancel_url"] == f"{base}/pricing"
