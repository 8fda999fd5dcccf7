"""Storage plans (issue #14 item 3): while a storage plan is active its limit replaces the default
storage quota, for uploads and the usage shown; when it ends the default applies again at once
(the hourly task then forgets it). A storage subscription's renewal moves its end on by one
period, once per invoice, and never touches the credit plan or the wallet. The Files feature
gets the limit through ``app[STORAGE_LIMIT]``: it does not import billing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from multinotes.billing.models import PlanPeriod
from multinotes.billing.storage_plans import end_lapsed
from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.plugins.billing import stripe as stripe_plugin
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.fakes.stripe_server import FakeStripe

DEFAULT_QUOTA = 1_000
PLAN_BYTES = 5_000


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
    return [("stripe", stripe_plugin)]


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], fake_stripe: tuple[FakeStripe, str]
) -> Settings:
    fake, url = fake_stripe
    return make_settings(
        default_storage_quota_bytes=DEFAULT_QUOTA,
        plugins={
            "stripe": {
                "secret_key": fake.secret_key,
                "webhook_secret": fake.webhook_secret,
                "api_base": url,
            }
        },
    )


@pytest.fixture
async def stripe(api: ApiClient, fake_stripe: tuple[FakeStripe, str]) -> FakeStripe:
    fake, _ = fake_stripe
    fake.webhook_url = str(api.client.server.make_url("/api/billing/stripe/webhook"))
    return fake


@pytest.fixture
async def owner(admin: ApiClient) -> ApiClient:
    await admin.mark_verified()
    return admin


def user_id(api: ApiClient) -> str:
    assert api.user is not None
    return str(api.user["id"])


async def make_plan(api: ApiClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/admin/plans", {"currency": "USD", "price": 500, **fields})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def buy(api: ApiClient, stripe: FakeStripe, plan_id: str) -> str:
    response = await api.post("/api/billing/checkout", {"plan_id": plan_id})
    assert response.status == 201, await response.text()
    sid = str((await response.json())["url"].rsplit("/", 1)[1])
    _, body = await stripe.deliver(stripe.event("checkout.session.completed", stripe.complete(sid)))
    assert body["outcome"] == "applied"
    return sid


async def upload(api: ApiClient, size: int, name: str = "notes.txt") -> Any:
    form = aiohttp.FormData()
    form.add_field("file", b"x" * size, filename=name, content_type="text/plain")
    return await api.post("/api/files", data=form)


async def quota(api: ApiClient) -> int:
    return int((await api.get_json("/api/files/usage"))["quota"])


async def period_of(api: ApiClient) -> PlanPeriod:
    async with api.app[DB].read() as session:
        period = await session.get(PlanPeriod, user_id(api))
    assert period is not None
    return period


async def test_a_storage_plan_raises_the_quota_while_it_lasts_then_the_default_returns(
    owner: ApiClient, stripe: FakeStripe
) -> None:
    plan = await make_plan(
        owner, name="Disk", kind="storage", storage_bytes=PLAN_BYTES, duration_days=30
    )
    assert await quota(owner) == DEFAULT_QUOTA
    refused = await upload(owner, 1_500)
    assert refused.status == 413
    assert (await refused.json())["error"]["code"] == "quota_exceeded"
    wallet_before = await owner.get_json("/api/wallet")

    await buy(owner, stripe, plan["id"])
    assert await quota(owner) == PLAN_BYTES
    stored = await upload(owner, 1_500)
    assert stored.status == 201, await stored.text()
    page = await (await owner.get("/billing")).text()
    assert 'id="storage-plan"' in page and "Disk" in page
    files_page = await (await owner.get("/files")).text()
    assert "4.9 KB" in files_page or "4.88 KB" in files_page  # the usage meter shows the plan
    # A storage plan sells bytes, not credits: the wallet and the credit plan are untouched.
    assert await owner.get_json("/api/wallet") == wallet_before
    period = await period_of(owner)
    assert period.plan_id is None and period.storage_expires_at is not None
    assert timedelta(days=29) < period.storage_expires_at - utcnow() <= timedelta(days=30)

    # The plan ends: the default quota is back at once, before any task ran.
    async with owner.app[DB].transaction() as session:
        await session.execute(
            update(PlanPeriod)
            .where(PlanPeriod.user_id == user_id(owner))
            .values(storage_expires_at=utcnow() - timedelta(minutes=1))
        )
    assert await quota(owner) == DEFAULT_QUOTA
    assert (await upload(owner, 10)).status == 413  # 1,500 kept, over the default
    assert 'id="storage-plan"' not in await (await owner.get("/billing")).text()
    assert await end_lapsed(owner.app) == 1
    assert await end_lapsed(owner.app) == 0
    period = await period_of(owner)
    assert (period.storage_plan_id, period.storage_bytes) == (None, None)


async def test_a_storage_subscription_renews_its_end_once_per_invoice(
    owner: ApiClient, stripe: FakeStripe
) -> None:
    credits = await make_plan(owner, name="Pack", kind="credits", credits=100_000)
    await buy(owner, stripe, credits["id"])
    monthly = await make_plan(
        owner, name="Disk monthly", kind="storage", storage_bytes=PLAN_BYTES, interval="month"
    )
    balance = (await owner.get_json("/api/wallet"))["balance"]
    response = await owner.post("/api/billing/checkout", {"plan_id": monthly["id"]})
    sid = (await response.json())["url"].rsplit("/", 1)[1]
    session = stripe.complete(sid)
    _, first = await stripe.deliver(
        stripe.event("invoice.paid", stripe.invoice(sid, "subscription_create"))
    )
    assert first["outcome"] == "applied"
    await stripe.deliver(stripe.event("checkout.session.completed", session))
    assert await quota(owner) == PLAN_BYTES
    ends = (await period_of(owner)).storage_expires_at
    assert ends is not None

    renewal = stripe.invoice(sid, "subscription_cycle")
    _, renewed = await stripe.deliver(stripe.event("invoice.paid", renewal))
    _, again = await stripe.deliver(stripe.event("invoice.payment_succeeded", renewal))
    assert (renewed["outcome"], again["outcome"]) == ("applied", "no_change")
    period = await period_of(owner)
    assert period.storage_expires_at == ends + timedelta(days=30)
    assert period.plan_id == credits["id"]  # the credit plan stays what it was
    assert (await owner.get_json("/api/wallet"))["balance"] == balance  # no credits for bytes
