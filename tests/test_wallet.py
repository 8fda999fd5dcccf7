"""The credit wallet: trial credits, balance, ledger, usage per day and model, admin grants and
deductions, and the invariant that matters most: never below zero, even under a stampede."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from multinotes.app import create_app
from multinotes.domain_events import EVENTS, DomainEvent
from multinotes.keys import DB
from multinotes.testing import ApiClient, app_client
from multinotes.wallet import service as wallet
from multinotes.wallet.models import Wallet
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin, scripted_plugins
from tests.support.sse import by_model, parse_sse
from tests.support.statements import Statements, mentions

A, B = "script/alpha", "script/beta"
DEFAULT_TRIAL = 10_000


@pytest.fixture
def scripts():
    return {A: Script(chunks=["a", "b", "c"]), B: Script(chunks=["x", "y"])}


@pytest.fixture
def plugins(scripts):
    return scripted_plugins(scripts, context_window=1000, max_output=100)


@pytest.fixture
async def member(admin: ApiClient, make_client) -> ApiClient:
    client = await make_client()
    await client.register_and_login("member@example.com")
    await client.mark_verified()
    return client


async def assert_balanced(api: ApiClient, user_id: str) -> None:
    """The balance is always the sum of the ledger, and never below zero."""
    async with api.app[DB].read() as session:
        row = await session.get(Wallet, user_id)
    assert row is not None
    assert row.balance == await wallet.ledger_sum(api.app[DB], user_id)
    assert row.balance >= 0 and row.balance - row.reserved >= 0


async def grant(admin: ApiClient, user_id: str, amount: int, reason: str = "test") -> dict:
    response = await admin.post(
        f"/api/admin/users/{user_id}/credits", {"amount": amount, "reason": reason}
    )
    body = await response.json()
    assert response.status == 201, body
    return body


async def all_entries(api: ApiClient, query: str = "") -> list[dict]:
    page = await api.get_json(f"/api/wallet/ledger?{query}")
    return page["entries"]


# -- trial credits and the wallet ---------------------------------------------------------------


async def test_a_new_user_gets_the_trial_credits_once(member: ApiClient):
    current = await member.get_json("/api/wallet")
    assert current == {
        "balance": DEFAULT_TRIAL,
        "reserved": 0,
        "available": DEFAULT_TRIAL,
        "low_balance": False,
    }
    await member.get_json("/api/wallet")
    entries = await all_entries(member)
    assert [(e["kind"], e["amount"]) for e in entries] == [("trial", DEFAULT_TRIAL)]
    await assert_balanced(member, member.user["id"])


async def test_admins_configure_the_trial_credits_for_new_users(admin: ApiClient, make_client):
    response = await admin.patch("/api/admin/pricing", {"trial_credits": 2500})
    assert (await response.json())["trial_credits"] == 2500
    first = await make_client()
    await first.register_and_login("first@example.com")
    assert (await first.get_json("/api/wallet"))["balance"] == 2500

    await admin.patch("/api/admin/pricing", {"trial_credits": 0})
    second = await make_client()
    await second.register_and_login("second@example.com")
    assert (await second.get_json("/api/wallet"))["balance"] == 0
    assert await all_entries(second) == []  # no zero-credit entry
    # Existing wallets keep what they were given.
    assert (await first.get_json("/api/wallet"))["balance"] == 2500
    assert (await admin.get_json("/api/admin/pricing"))["trial_credits"] == 0


async def test_the_low_balance_flag_follows_the_admins_threshold(
    admin: ApiClient, member: ApiClient
):
    assert (await member.get_json("/api/wallet"))["low_balance"] is False
    await admin.patch("/api/admin/pricing", {"low_balance_credits": DEFAULT_TRIAL + 1})
    assert (await member.get_json("/api/wallet"))["low_balance"] is True
    page = await member.get("/usage")
    assert "Your balance is low" in await page.text()


async def test_the_wallet_summary_of_every_live_update_is_one_statement(
    admin: ApiClient, member: ApiClient
):
    """wallet.changed goes out after every hold and settle (issue #17: it cost three SELECTs,
    six per answer); the balance and the admin's threshold come back in one."""

    await admin.patch("/api/admin/pricing", {"low_balance_credits": DEFAULT_TRIAL + 1})
    db = member.app[DB]
    await wallet.ensure_wallet(db, member.user["id"])
    # Only these tables: other tasks' work shares the engines.
    with Statements(member.app, mentions("wallets", "app_settings")) as statements:
        summary = await wallet.summary(db, member.user["id"])
    assert [s.split()[0].upper() for s in statements] == ["SELECT"]
    assert summary == {
        "balance": DEFAULT_TRIAL,
        "reserved": 0,
        "available": DEFAULT_TRIAL,
        "low_balance": True,
    }


LIVE_SUMMARY = "SELECT wallets.balance, wallets.reserved, (SELECT app_settings.value"


async def test_settling_a_hold_reads_the_balance_and_the_threshold_with_its_own_statements(
    admin: ApiClient, member: ApiClient
):
    """A settlement runs after every answer (issue #17): it finds out whether its charge took
    the balance across the low-balance threshold from the statements it needs anyway (the
    reservation's read on SQLite, whose write transaction holds the lock from its start; the
    wallet's lock on MariaDB), not from a SELECT of the wallet after charging it. The crossing
    is still noticed exactly once."""
    user_id = member.user["id"]
    db = member.app[DB]
    await wallet.ensure_wallet(db, user_id)
    await admin.patch("/api/admin/pricing", {"low_balance_credits": DEFAULT_TRIAL - 10})
    seen_events: list[DomainEvent] = []

    async def remember(app: object, event: DomainEvent) -> None:
        seen_events.append(event)

    member.app[EVENTS].subscribe_all(remember)
    for reference, amount, cost in (("gen:first", 50, 5), ("gen:second", 50, 20)):
        async with db.transaction() as session:
            await wallet.hold_in(session, user_id, [(amount, reference, "script/alpha")])
        with Statements(member.app, mentions("wallets", "app_settings", "reservations")) as seen:
            assert await wallet.settle(db, reference, cost) == cost
        # The live channel's summaries after the hold and the settlement are its own (above).
        own = [s for s in seen if not " ".join(s.split()).startswith(LIVE_SUMMARY)]
        kinds = [" ".join(s.split()[:3]).upper() for s in own]
        reads = [k for k in kinds if k.startswith("SELECT")]
        assert len(reads) == (1 if db.is_sqlite else 2), own  # + the lock on MariaDB
        assert "UPDATE WALLETS SET" in kinds
    # 10,000 → 9,995 stays above 9,990; 9,995 → 9,975 crosses it: one event, the second time.
    low = [e for e in seen_events if e.name == "credits.low"]
    assert [(e.user_id, e.payload) for e in low] == [
        (user_id, {"balance": DEFAULT_TRIAL - 25, "threshold": DEFAULT_TRIAL - 10})
    ]
    await assert_balanced(member, user_id)


# -- the ledger ---------------------------------------------------------------------------------


async def test_the_ledger_pages_newest_first_with_a_cursor(admin: ApiClient, member: ApiClient):
    user_id = member.user["id"]
    await member.get_json("/api/wallet")  # the trial entry comes first
    for n in range(1, 8):
        await grant(admin, user_id, n * 10, f"grant {n}")
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        query = "limit=3" + (f"&before={cursor}" if cursor else "")
        page = await member.get_json(f"/api/wallet/ledger?{query}")
        seen.extend(page["entries"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert [e["reason"] for e in seen] == [
        *(f"grant {n}" for n in range(7, 0, -1)),
        "Free trial credits",
    ]
    assert len({e["id"] for e in seen}) == 8
    assert sum(e["amount"] for e in seen) == (await member.get_json("/api/wallet"))["balance"]
    await assert_balanced(member, user_id)


async def test_the_ledger_filters_by_kind_and_date(admin: ApiClient, member: ApiClient):
    user_id = member.user["id"]
    await member.get_json("/api/wallet")
    await grant(admin, user_id, 300, "bonus for feedback")
    await grant(admin, user_id, -100, "correction")
    assert [e["kind"] for e in await all_entries(member, "kind=grant")] == ["grant"]
    assert [e["amount"] for e in await all_entries(member, "kind=deduct")] == [-100]
    assert [e["kind"] for e in await all_entries(member, "kind=trial")] == ["trial"]

    now = datetime.now(UTC)
    later = (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    earlier = (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(await all_entries(member, f"since={earlier}")) == 3
    assert await all_entries(member, f"since={later}") == []
    assert await all_entries(member, f"until={earlier}") == []
    assert len(await all_entries(member, f"since={earlier}&until={later}&kind=grant")) == 1

    response = await member.get("/api/wallet/ledger?kind=stolen")
    assert response.status == 422
    assert "kind" in (await response.json())["error"]["fields"]


async def test_the_usage_page_filters_and_pages_the_ledger(admin: ApiClient, member: ApiClient):
    user_id = member.user["id"]
    await member.get_json("/api/wallet")
    for n in range(30):
        await grant(admin, user_id, 1, f"drip {n}")
    text = await (await member.get("/usage")).text()
    assert "drip 29" in text and "drip 5" in text and "drip 4" not in text  # 25 a page
    assert "Older entries" in text and "Free trial credits" not in text
    cursor = text.split("before=")[1].split("#")[0].split('"')[0]
    older = await (await member.get(f"/usage?before={cursor}")).text()
    assert "drip 4" in older and "Free trial credits" in older and "Older entries" not in older

    trial_only = await (await member.get("/usage?kind=trial")).text()
    assert "Free trial credits" in trial_only and "drip" not in trial_only
    today = datetime.now(UTC).date()
    future = (today + timedelta(days=2)).isoformat()
    empty = await (await member.get(f"/usage?from={future}")).text()
    assert "No entries match these filters." in empty
    bad = await member.get(f"/usage?from={today.isoformat()}&to=not-a-date")
    assert bad.status == 200 and "Use a date like" in await bad.text()


# -- usage per day and model --------------------------------------------------------------------


async def test_usage_per_day_and_model_after_a_generation(member: ApiClient):
    conversation = (await (await member.post("/api/conversations", {})).json())["id"]
    response = await member.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [A, B]}
    )
    events = parse_sse(await response.text())
    costs = {model: items[-1][1]["cost"] for model, items in by_model(events).items()}
    # 10 input tokens at 1 credit, then 2 credits per output token (one per chunk).
    assert costs == {A: 10 + 2 * 3, B: 10 + 2 * 2}

    usage = await member.get_json("/api/wallet/usage?days=30")
    assert len(usage["days"]) == 30 == len(usage["total"])
    assert usage["days"][-1] == datetime.now(UTC).date().isoformat()
    assert usage["total"][-1] == sum(costs.values()) and sum(usage["total"][:-1]) == 0
    assert {m: series[-1] for m, series in usage["by_model"].items()} == costs
    assert len((await member.get_json("/api/wallet/usage?days=7"))["days"]) == 7
    assert (await member.get("/api/wallet/usage?days=0")).status == 422

    usage_entries = await all_entries(member, "kind=usage")
    assert sorted((e["model"], e["amount"]) for e in usage_entries) == sorted(
        (m, -c) for m, c in costs.items()
    )
    page = await (await member.get("/usage")).text()
    assert "<svg" in page and "Alpha" in page and "Beta" in page
    assert f"{sum(costs.values())} credits in total" in page
    await assert_balanced(member, member.user["id"])


# -- admin grants and deductions ----------------------------------------------------------------


async def test_admins_grant_and_deduct_credits_with_a_reason(admin: ApiClient, member: ApiClient):
    user_id = member.user["id"]
    granted = await grant(admin, user_id, 5000, "Conference voucher")
    assert (granted["kind"], granted["amount"], granted["reason"]) == (
        "grant",
        5000,
        "Conference voucher",
    )
    deducted = await grant(admin, user_id, -1500, "Refunded purchase reversed")
    assert (deducted["kind"], deducted["amount"]) == ("deduct", -1500)
    assert (await member.get_json("/api/wallet"))["balance"] == DEFAULT_TRIAL + 3500
    reasons = [e["reason"] for e in await all_entries(member)]
    assert reasons[:2] == ["Refunded purchase reversed", "Conference voucher"]
    await assert_balanced(member, user_id)


async def test_a_deduction_below_zero_is_refused_and_changes_nothing(
    admin: ApiClient, member: ApiClient
):
    user_id = member.user["id"]
    before = await member.get_json("/api/wallet")
    entries_before = await all_entries(member)
    response = await admin.post(
        f"/api/admin/users/{user_id}/credits",
        {"amount": -(before["balance"] + 1), "reason": "too much"},
    )
    body = await response.json()
    assert response.status == 409
    assert body["error"]["code"] == "insufficient_balance"
    assert "below zero" in body["error"]["message"]
    assert await member.get_json("/api/wallet") == before
    assert await all_entries(member) == entries_before
    # Exactly everything is allowed.
    await grant(admin, user_id, -before["balance"], "close account")
    assert (await member.get_json("/api/wallet"))["balance"] == 0
    await assert_balanced(member, user_id)


async def test_credit_adjustments_need_an_admin_a_known_user_and_a_reason(
    admin: ApiClient, member: ApiClient
):
    user_id = member.user["id"]
    response = await member.post(
        f"/api/admin/users/{user_id}/credits", {"amount": 10**6, "reason": "me"}
    )
    assert response.status == 403
    response = await admin.post(
        "/api/admin/users/0000000000000000000000000000dead/credits", {"amount": 5, "reason": "x"}
    )
    assert response.status == 404
    response = await admin.post(f"/api/admin/users/{user_id}/credits", {"amount": 5})
    assert response.status == 422
    assert "reason" in (await response.json())["error"]["fields"]
    assert (await member.get_json("/api/wallet"))["balance"] == DEFAULT_TRIAL


async def test_the_credits_page_grants_and_refuses_below_zero(admin: ApiClient, member: ApiClient):
    form = {"email": "MEMBER@example.com", "amount": "1,000", "reason": "Welcome gift"}
    response = await admin.post("/admin/credits", data=form, allow_redirects=False)
    assert response.status == 303
    assert (await member.get_json("/api/wallet"))["balance"] == DEFAULT_TRIAL + 1000
    shown = await (await admin.get(response.headers["Location"])).text()
    assert "Granted 1,000 credits to member@example.com" in shown and "Welcome gift" in shown

    too_much = {**form, "amount": str(-(DEFAULT_TRIAL + 1001))}
    response = await admin.post("/admin/credits", data=too_much)
    assert response.status == 409
    assert "would take member@example.com below zero" in await response.text()
    assert (await member.get_json("/api/wallet"))["balance"] == DEFAULT_TRIAL + 1000

    response = await admin.post("/admin/credits", data={**form, "email": "nobody@example.com"})
    assert response.status == 422
    assert "No user has the email address nobody@example.com" in await response.text()
    response = await admin.post("/admin/credits", data={**form, "amount": "lots", "reason": ""})
    text = await response.text()
    assert response.status == 422 and "whole number" in text and "Say why" in text
    assert (await member.post("/admin/credits", data=form)).status == 403
    await assert_balanced(member, member.user["id"])


# -- never below zero, under 200 concurrent requests --------------------------------------------

METER = "script/meter"
PER_REQUEST = 5  # credits: 5 output tokens at 1 credit each, input free


async def test_two_hundred_concurrent_requests_against_a_wallet_that_covers_fifty(
    make_settings,
):
    from multinotes.providers import Pricing

    script = Script(chunks=["one ", "two ", "three ", "four ", "five"], delay=0.005)
    meter = ScriptedModel(
        METER,
        script,
        context_window=1000,
        max_output=PER_REQUEST,
        pricing=Pricing(input_per_million=0, output_per_million=1_000_000),
    )
    settings = make_settings(rate_limit_generation="1000/minute", rate_limit_api="5000/minute")
    app = create_app(settings, plugins=[("script", ScriptedPlugin(meter))])
    async with app_client(app) as api:
        await api.register_admin("stampede@example.com")
        await api.mark_verified()
        user_id = api.user["id"]
        db = api.app[DB]
        current = (await api.get_json("/api/wallet"))["balance"]
        await wallet.adjust(db, user_id, 50 * PER_REQUEST - current, "exactly fifty", by=None)
        conversation = (await (await api.post("/api/conversations", {})).json())["id"]

        lowest = {"balance": 50 * PER_REQUEST, "available": 50 * PER_REQUEST}
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                async with db.read() as session:
                    row = await session.scalar(select(Wallet).where(Wallet.user_id == user_id))
                assert row is not None
                lowest["balance"] = min(lowest["balance"], row.balance)
                lowest["available"] = min(lowest["available"], row.balance - row.reserved)
                await asyncio.sleep(0.005)

        async def one(index: int) -> tuple[int, str | None]:
            response = await api.post(
                f"/api/conversations/{conversation}/messages",
                {"content": f"Count to five, #{index}", "models": [METER]},
            )
            if response.status != 200:
                return response.status, (await response.json())["error"]["code"]
            events = parse_sse(await response.text())
            finished = [d for name, d in events if name == "done"]
            return 200, finished[0]["status"] if finished else "no done event"

        watcher = asyncio.create_task(watch())
        results = await asyncio.gather(*(one(i) for i in range(200)))
        done.set()
        await watcher

        statuses = [status for status, _ in results]
        assert statuses.count(200) == 50, sorted(set(results))
        assert statuses.count(402) == 150
        assert {detail for status, detail in results if status == 200} == {"complete"}
        assert {detail for status, detail in results if status == 402} == {"insufficient_credits"}
        assert script.calls == 50
        final = await api.get_json("/api/wallet")
        assert (final["balance"], final["reserved"]) == (0, 0)
        assert lowest["balance"] >= 0 and lowest["available"] >= 0
        assert await wallet.ledger_sum(db, user_id) == 0
        usage = await all_entries(api, "kind=usage&limit=200")
        assert len(usage) == 50 and {e["amount"] for e in usage} == {-PER_REQUEST}
        await assert_balanced(api, user_id)


async def test_ledger_date_filters_accept_dates_without_a_zone(api):
    await api.register_and_login("zone@example.com")
    await api.get_json("/api/wallet")  # the trial grant
    found = await api.get_json("/api/wallet/ledger?since=2000-01-01T00:00:00&until=2999-01-01")
    assert [e["kind"] for e in found["entries"]] == ["trial"]
    none = await api.get_json("/api/wallet/ledger?since=2999-01-01T00:00:00")
    assert none["entries"] == []
