"""Auto-reload and failed renewals (issue #14 items 6 and 9).

A first payment through Stripe Checkout saves the card (``setup_future_usage=off_session`` on a
Customer). A user who switched auto-reload on gets their chosen plan bought off-session when an
answer leaves their available credits under their threshold: the Stripe plugin creates a
confirmed off-session PaymentIntent with the official SDK against the local fake Stripe, and
the credits come only with the signed ``payment_intent.succeeded`` webhook. At most one reload
is pending and at most a few run a day; a declined card (or one that needs its holder to
authenticate) switches auto-reload off and mails the user. A subscription renewal that fails
mails the user a link to the customer portal, once per invoice however often Stripe retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

import plugins.providers.demo as demo
from multinotes.billing.auto_reload import run_auto_reload
from multinotes.billing.models import Order
from multinotes.keys import DB
from multinotes.plugins.billing import stripe as stripe_plugin
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.fakes.smtp_server import FakeSMTP
from tests.fakes.stripe_server import FakeStripe
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, link_in, text_of
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

smtp_server = mail_fixtures.smtp_server
mailbox = mail_fixtures.mailbox

CREDITS = 500_000


@pytest.fixture
async def fake_stripe() -> AsyncIterator[tuple[FakeStripe, str]]:
    fake = FakeStripe()
    server = TestServer(fake.app())
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await fake.settled()
    await server.close()


@pytest.fixture
def plugins() -> Any:
    return [("stripe", stripe_plugin), ("demo", demo)]


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings],
    mode: str,
    smtp_server: FakeSMTP,
    fake_stripe: tuple[FakeStripe, str],
) -> Settings:
    fake, url = fake_stripe
    stripe_config = {
        "stripe": {
            "secret_key": fake.secret_key,
            "webhook_secret": fake.webhook_secret,
            "api_base": url,
        }
    }
    if mode == "production":
        return make_settings(
            plugins=stripe_config, smtp_host=smtp_server.host, smtp_port=smtp_server.port
        )
    return make_settings(plugins=stripe_config)


@pytest.fixture
async def stripe(api: ApiClient, fake_stripe: tuple[FakeStripe, str]) -> FakeStripe:
    fake, _ = fake_stripe
    fake.webhook_url = str(api.client.server.make_url("/api/billing/stripe/webhook"))
    return fake


@pytest.fixture
async def buyer(admin: ApiClient) -> ApiClient:
    """The admin, verified, with the demo provider on: someone who can ask and pay."""
    await admin.mark_verified()
    assert (await admin.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    return admin


async def make_plan(admin: ApiClient, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Top-up",
        "kind": "credits",
        "credits": CREDITS,
        "price": 1000,
        "currency": "USD",
        "interval": "once",
        **overrides,
    }
    response = await admin.post("/api/admin/plans", body)
    assert response.status == 201, await response.text()
    return dict(await response.json())


@pytest.fixture
async def plan(buyer: ApiClient) -> dict[str, Any]:
    return await make_plan(buyer)


async def pay_once(api: ApiClient, stripe: FakeStripe, plan_id: str) -> str:
    """Buy ``plan_id`` through Checkout; the session saves the card on a new customer."""
    response = await api.post("/api/billing/checkout", {"plan_id": plan_id})
    assert response.status == 201, await response.text()
    started = await response.json()
    session = stripe.complete(started["url"].rsplit("/", 1)[1])
    status, body = await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert (status, body["outcome"]) == (200, "applied")
    return str(session["customer"])


def user_of(api: ApiClient) -> dict[str, Any]:
    assert api.user is not None, "log in first"
    return api.user


async def available(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["available"])


async def set_reload(api: ApiClient, **body: Any) -> Any:
    return await api.request("PUT", "/api/billing/auto-reload", json=body)


async def ask(api: ApiClient) -> None:
    conversation = await api.post("/api/conversations", {})
    conversation_id = (await conversation.json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation_id}/messages",
        {"content": "teal", "models": ["demo/echo"]},
    )
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    assert not [data for name, data in events if name == "error"], events


async def reload_orders(api: ApiClient) -> list[Order]:
    from multinotes.billing.reload_models import AutoReloadCharge

    async with api.app[DB].read() as session:
        rows = await session.scalars(
            select(Order)
            .join(AutoReloadCharge, AutoReloadCharge.order_id == Order.id)
            .order_by(Order.created_at)
        )
        return list(rows)


# -- auto-reload --------------------------------------------------------------------------------


async def test_an_answer_under_the_threshold_buys_the_plan_off_session_once_the_webhook_lands(
    buyer: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    checkout_params = None
    customer = await pay_once(buyer, stripe, plan["id"])
    _, path, checkout_params, _ = stripe.requests[0]
    assert path == "/v1/checkout/sessions"
    assert checkout_params["payment_intent_data"]["setup_future_usage"] == "off_session"
    assert checkout_params["customer_creation"] == "always"
    state = await buyer.get_json("/api/billing/auto-reload")
    assert state["enabled"] is False and state["has_payment_method"] is True

    before = await available(buyer)
    switched = await set_reload(buyer, enabled=True, threshold=before, plan_id=plan["id"])
    assert switched.status == 200, await switched.text()
    assert (await switched.json())["enabled"] is True

    await ask(buyer)  # the answer costs a few credits: under the threshold now

    async def reloaded() -> bool:
        orders = await reload_orders(buyer)
        return bool(orders) and orders[0].status == "paid"

    await eventually(reloaded, timeout=15)
    [intent] = stripe.payment_intents.values()
    assert intent["customer"] == customer and intent["payment_method"] == "pm_card_visa"
    assert intent["off_session"] is True and intent["amount"] == 1000
    [order] = await reload_orders(buyer)
    assert order.payment_reference == intent["id"] and order.total == 1000
    _, _, intent_params, key = next(r for r in stripe.requests if r[1] == "/v1/payment_intents")
    assert (intent_params["confirm"], key) == ("true", f"auto-reload-{order.id}")
    spent = before - (await available(buyer) - CREDITS)
    assert 0 < spent < 10_000  # the answer's cost; the reload added the plan's credits once

    # Above the threshold again: the next answer buys nothing.
    await ask(buyer)
    await asyncio.sleep(0.3)
    assert len(await reload_orders(buyer)) == 1
    await stripe.settled()
    orders = await buyer.get_json("/api/billing/orders")
    assert [o["status"] for o in orders] == ["paid", "paid"]


async def test_one_pending_reload_at_a_time_and_a_daily_cap(
    buyer: ApiClient, stripe: FakeStripe, plan: dict[str, Any]
) -> None:
    await pay_once(buyer, stripe, plan["id"])
    # Always under the threshold, so only the guards stop a storm of reloads.
    assert (
        await set_reload(buyer, enabled=True, threshold=10**12, plan_id=plan["id"])
    ).status == 200
    user_id = user_of(buyer)["id"]
    stripe.webhook_url = ""  # hold the webhooks: the first reload stays pending
    outcomes = await asyncio.gather(
        *(run_auto_reload(buyer.app, user_id=user_id) for _ in range(5))
    )
    assert sorted(outcomes) == ["charged", "skipped", "skipped", "skipped", "skipped"]
    assert len(stripe.payment_intents) == 1

    stripe.webhook_url = str(buyer.client.server.make_url("/api/billing/stripe/webhook"))
    for _ in range(3):
        [pending] = [o for o in await reload_orders(buyer) if o.status == "pending"]
        intent = stripe.payment_intents[str(pending.payment_reference)]
        _, body = await stripe.deliver(stripe.event("payment_intent.succeeded", intent))
        assert body["outcome"] == "applied"
        if len(stripe.payment_intents) < 3:
            stripe.webhook_url = ""
            assert await run_auto_reload(buyer.app, user_id=user_id) == "charged"
            stripe.webhook_url = str(buyer.client.server.make_url("/api/billing/stripe/webhook"))
    assert await run_auto_reload(buyer.app, user_id=user_id) == "skipped"  # 3 today: the cap
    state = await buyer.get_json("/api/billing/auto-reload")
    assert (state["reloads_last_24h"], state["max_per_day"], state["enabled"]) == (3, 3, True)
    assert [o.status for o in await reload_orders(buyer)] == ["paid"] * 3
    assert len(stripe.payment_intents) == 3


@pytest.mark.parametrize(
    ("card", "code"),
    [
        ("pm_card_chargeDeclined", "card_declined"),
        ("pm_card_authenticationRequired", "authentication_required"),
    ],
)
async def test_a_declined_card_switches_auto_reload_off_and_mails_once(
    buyer: ApiClient,
    stripe: FakeStripe,
    plan: dict[str, Any],
    mailbox: Mailbox,
    card: str,
    code: str,
) -> None:
    stripe.card = card  # the hosted page takes it; only an off-session charge is refused
    await pay_once(buyer, stripe, plan["id"])
    before = await available(buyer)
    assert (
        await set_reload(buyer, enabled=True, threshold=before, plan_id=plan["id"])
    ).status == 200
    await ask(buyer)

    mail = await mailbox.wait_for(user_of(buyer)["email"], subject="Auto-reload is off", timeout=15)
    assert "declined" in text_of(mail).lower() and "Top-up" in text_of(mail)
    assert link_in(mail, "/billing").endswith("/billing#auto-reload")
    state = await buyer.get_json("/api/billing/auto-reload")
    assert state["enabled"] is False and code in state["disabled_reason"]
    [order] = await reload_orders(buyer)
    assert order.status == "failed"
    await stripe.settled()  # payment_intent.payment_failed arrived too: nothing more happens
    assert stripe.sent[-1][0]["type"] == "payment_intent.payment_failed"
    assert stripe.sent[-1][1] == 200
    await ask(buyer)  # still under the threshold, but switched off: no new charge
    await mailbox.settle()
    assert len(mailbox.to(user_of(buyer)["email"], "Auto-reload is off")) == 1
    assert len(stripe.payment_intents) == 1
    assert await available(buyer) < before  # no credits from a declined charge

    page = await (await buyer.get("/billing")).text()
    assert "Auto-reload" in page and code in page
    # Switching it on again (say, after a new card) clears the reason.
    again = await set_reload(buyer, enabled=True, threshold=1, plan_id=plan["id"])
    assert (await again.json())["disabled_reason"] is None


async def test_switching_auto_reload_on_needs_a_saved_card_and_a_one_time_credits_plan(
    buyer: ApiClient, stripe: FakeStripe, plan: dict[str, Any], make_client: Callable[[], Any]
) -> None:
    refused = await set_reload(buyer, enabled=True, threshold=1000, plan_id=plan["id"])
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "no_saved_payment_method"
    off = await set_reload(buyer, enabled=False, threshold=1000, plan_id=plan["id"])
    assert off.status == 200  # choosing while it is off is fine
    monthly = await make_plan(buyer, name="Monthly", interval="month")
    storage = await make_plan(buyer, name="Disk", kind="storage", storage_bytes=2**30)
    for wrong in (monthly["id"], storage["id"], "nope"):
        bad = await set_reload(buyer, enabled=False, threshold=1000, plan_id=wrong)
        assert bad.status == 422 and "plan_id" in (await bad.json())["error"]["fields"]
    zero = await set_reload(buyer, enabled=False, threshold=0, plan_id=plan["id"])
    assert zero.status == 422 and "threshold" in (await zero.json())["error"]["fields"]
    anonymous: ApiClient = await make_client()
    assert (await anonymous.get("/api/billing/auto-reload")).status == 401

    await pay_once(buyer, stripe, plan["id"])
    form = {"csrf_token": buyer.csrf, "enabled": "on", "threshold": "2,000", "plan_id": plan["id"]}
    async with buyer.client.post("/billing/auto-reload", data=form, allow_redirects=False) as sent:
        assert (sent.status, sent.headers["Location"]) == (303, "/billing#auto-reload")
    state = await buyer.get_json("/api/billing/auto-reload")
    assert (state["enabled"], state["threshold"], state["plan_id"]) == (True, 2000, plan["id"])
    page = await (await buyer.get("/billing")).text()
    assert 'id="auto-reload"' in page and 'value="2000"' in page


# -- failed renewals ----------------------------------------------------------------------------


async def test_a_failed_renewal_mails_a_portal_link_once_per_invoice(
    buyer: ApiClient, stripe: FakeStripe, mailbox: Mailbox
) -> None:
    monthly = await make_plan(buyer, name="Monthly", interval="month")
    response = await buyer.post("/api/billing/checkout", {"plan_id": monthly["id"]})
    sid = (await response.json())["url"].rsplit("/", 1)[1]
    session = stripe.complete(sid)
    await stripe.deliver(stripe.event("checkout.session.completed", session))

    failed = stripe.invoice(sid, "subscription_cycle", paid=False)
    outcomes = []
    for _ in range(3):  # Stripe's retries of one invoice: a new event each time
        _, body = await stripe.deliver(stripe.event("invoice.payment_failed", failed))
        outcomes.append(body["outcome"])
    assert outcomes == ["applied", "no_change", "no_change"]
    mail = await mailbox.wait_for(user_of(buyer)["email"], subject="subscription payment failed")
    assert "Monthly" in text_of(mail)
    link = link_in(mail, "/billing/portal")
    assert link.endswith("/billing/portal")
    await mailbox.settle()
    assert len(mailbox.to(user_of(buyer)["email"], "subscription payment failed")) == 1

    # The link: a page (a GET makes nothing) whose button opens a fresh portal session.
    page = await (await buyer.get("/billing/portal")).text()
    assert 'action="/billing/portal"' in page and "Open the customer portal" in page
    async with buyer.client.post("/billing/portal", data={"csrf_token": buyer.csrf}) as sent:
        assert f"/portal/{session['customer']}" in await sent.text()

    # The card was fixed and the next period paid; a later invoice failing is news again.
    await stripe.deliver(stripe.event("invoice.paid", stripe.invoice(sid, "subscription_cycle")))
    later = stripe.invoice(sid, "subscription_cycle", paid=False)
    _, body = await stripe.deliver(stripe.event("invoice.payment_failed", later))
    assert body["outcome"] == "applied"
    await mailbox.wait_for(user_of(buyer)["email"], 2, subject="subscription payment failed")


async def test_a_backend_that_cannot_charge_off_session_offers_no_auto_reload(
    buyer: ApiClient, stripe: FakeStripe, plan: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from multinotes.billing import BillingBackend, Checkout
    from multinotes.keys import PLUGINS

    class CashOnly(BillingBackend):
        backend_id = "cash"
        name = "Cash"

        async def create_checkout(self, **kwargs: Any) -> Checkout:
            raise AssertionError("not used")

    await pay_once(buyer, stripe, plan["id"])  # a saved card, but at Stripe
    backends = buyer.app[PLUGINS].registries.billing
    monkeypatch.setitem(backends, "cash", ("cash", CashOnly()))
    monkeypatch.delitem(backends, "stripe")
    state = await buyer.get_json("/api/billing/auto-reload")
    assert state["has_payment_method"] is False
    refused = await set_reload(buyer, enabled=True, threshold=1000, plan_id=plan["id"])
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "no_saved_payment_method"
