"""Organisation plans and seats (issue #19, teams item 3: "organisation plans and seats are
bought like any plan"). An administrator sells a plan priced per seat; the organisation's owner
or an admin buys it through the same Stripe checkout as any plan (the fake Stripe speaks its
wire protocol and signs its webhook); only the signed webhook pays: the plan's credits times the
seats go to the organisation's wallet (the buyer's own wallet is untouched) and the organisation
keeps the seats, which cap its members and pending invitations: inviting beyond them is a 409
``seats_full``. A plain member cannot buy (403), an outsider is told it does not exist (404),
and a plan bought per seat is never bought for oneself, nor another plan for an organisation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from multinotes.keys import DB
from multinotes.organisations import service as organisations
from multinotes.sharing import access
from multinotes.testing import ApiClient
from tests.fakes.stripe_server import FakeStripe
from tests.test_billing import balance, fake_stripe, plugins, settings, stripe

__all__ = ["fake_stripe", "plugins", "settings", "stripe"]  # the Stripe fixtures

PER_SEAT_CREDITS = 1_000
PER_SEAT_PRICE = 500


@pytest.fixture
async def team_plan(admin: ApiClient) -> dict[str, Any]:
    response = await admin.post(
        "/api/admin/plans",
        {
            "name": "Team",
            "kind": "organisation",
            "credits": PER_SEAT_CREDITS,
            "price": PER_SEAT_PRICE,
            "currency": "usd",
        },
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def person(make_client: Callable[[], Any], email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def add_member(owner: ApiClient, org_id: str, newcomer: ApiClient) -> None:
    """Invite and accept through the service (the link's token, as the mailed link holds)."""
    assert owner.user is not None and newcomer.user is not None
    db = owner.app[DB]
    who = await access.organisation(db, owner.user["id"], org_id)
    invitation = await organisations.invite(db, who, newcomer.user["email"], "member")
    token = await organisations.issue_link_token(db, invitation.id)
    assert token is not None
    await organisations.accept(db, newcomer.user["id"], token)


async def test_an_owner_buys_seats_and_the_organisation_wallet_gets_the_credits(
    admin: ApiClient,
    stripe: FakeStripe,
    team_plan: dict[str, Any],
    make_client: Callable[[], Any],
) -> None:
    assert team_plan["kind"] == "organisation" and team_plan["credits"] == PER_SEAT_CREDITS
    org = await (await admin.post("/api/orgs", {"name": "Acme"})).json()
    mia = await person(make_client, "mia@example.com")
    await add_member(admin, org["id"], mia)

    quote = await admin.post(
        "/api/billing/quote", {"plan_id": team_plan["id"], "org_id": org["id"], "seats": 3}
    )
    assert quote.status == 200, await quote.text()
    assert {k: v for k, v in (await quote.json()).items() if k != "plan_id"} == {
        "currency": "USD",
        "subtotal": 3 * PER_SEAT_PRICE,
        "discount": 0,
        "total": 3 * PER_SEAT_PRICE,
        "credits": 3 * PER_SEAT_CREDITS,
        "bonus_credits": 0,
        "coupon_code": None,
        "seats": 3,
    }

    own_before = await balance(admin)
    started = await admin.post(
        "/api/billing/checkout", {"plan_id": team_plan["id"], "org_id": org["id"], "seats": 3}
    )
    assert started.status == 201, await started.text()
    checkout = await started.json()
    method, path, params, _ = stripe.requests[-1]
    assert (method, path) == ("POST", "/v1/checkout/sessions")
    assert params["line_items"][0]["price_data"]["unit_amount"] == str(3 * PER_SEAT_PRICE)
    wallet = await admin.get_json(f"/api/orgs/{org['id']}/wallet")
    assert wallet["balance"] == 0  # coming back proves nothing: only the webhook pays

    async with admin.client.session.post(checkout["url"], allow_redirects=False) as paid:
        assert paid.status == 303
    assert stripe.sent[-1][1] == 200
    order = await admin.get_json(f"/api/billing/orders/{checkout['order_id']}")
    assert order["status"] == "paid"
    assert (order["organisation_id"], order["seats"]) == (org["id"], 3)
    assert order["credits"] == 3 * PER_SEAT_CREDITS
    wallet = await mia.get_json(f"/api/orgs/{org['id']}/wallet")
    assert wallet["balance"] == 3 * PER_SEAT_CREDITS
    assert await balance(admin) == own_before  # the buyer's own wallet is untouched
    assert (await mia.get_json(f"/api/orgs/{org['id']}"))["seats"] == 3
    # The same payment's event delivered again grants nothing more.
    session = checkout["url"].rsplit("/", 1)[1]
    again = stripe.event("checkout.session.completed", stripe.complete(session))
    status, answer = await stripe.deliver(again)
    assert status == 200 and answer["outcome"] in ("no_change", "duplicate")
    assert (await mia.get_json(f"/api/orgs/{org['id']}/wallet"))["balance"] == (
        3 * PER_SEAT_CREDITS
    )

    # Two members and one pending invitation fill three seats; a fourth is refused.
    assert (
        await admin.post(f"/api/orgs/{org['id']}/invitations", {"email": "kim@example.com"})
    ).status == 201
    full = await admin.post(f"/api/orgs/{org['id']}/invitations", {"email": "lee@example.com"})
    assert full.status == 409
    error = (await full.json())["error"]
    assert error["code"] == "seats_full" and "3" in error["message"]
    # Buying fewer seats than members and invitations is refused before any payment.
    fewer = await admin.post(
        "/api/billing/checkout", {"plan_id": team_plan["id"], "org_id": org["id"], "seats": 2}
    )
    assert fewer.status == 409
    assert (await fewer.json())["error"]["code"] == "seats_below_members"

    # A refund takes the unspent credits back from the organisation's wallet, not the buyer's.
    spent = await admin.post(
        f"/api/admin/orgs/{org['id']}/credits", {"amount": -1_000, "reason": "spent"}
    )
    assert spent.status in (200, 201), await spent.text()
    refunded = await admin.post(
        f"/api/admin/orders/{checkout['order_id']}/refund", {"reason": "Team disbanded"}
    )
    assert refunded.status == 200, await refunded.text()
    assert (await refunded.json())["status"] == "refunded"
    assert (await mia.get_json(f"/api/orgs/{org['id']}/wallet"))["balance"] == 0
    assert await balance(admin) == own_before


async def test_who_may_buy_an_organisation_plan_and_for_whom(
    admin: ApiClient,
    stripe: FakeStripe,
    team_plan: dict[str, Any],
    make_client: Callable[[], Any],
) -> None:
    org = await (await admin.post("/api/orgs", {"name": "Acme"})).json()
    mia = await person(make_client, "mia@example.com")
    stranger = await person(make_client, "sam@example.com")
    await add_member(admin, org["id"], mia)
    body = {"plan_id": team_plan["id"], "org_id": org["id"], "seats": 5}

    plain = await mia.post("/api/billing/checkout", body)
    assert plain.status == 403
    assert (await plain.json())["error"]["code"] == "organisation_admin_only"
    assert (await stranger.post("/api/billing/checkout", body)).status == 404
    assert (await stranger.post("/api/billing/quote", body)).status == 404

    for wrong, field in (
        ({"plan_id": team_plan["id"]}, "org_id"),  # per seat: for an organisation only
        ({"plan_id": team_plan["id"], "org_id": org["id"], "seats": 0}, "seats"),
        ({"plan_id": team_plan["id"], "org_id": "no spaces"}, "org_id"),
    ):
        refused = await admin.post("/api/billing/checkout", wrong)
        assert refused.status == 422, wrong
        assert field in (await refused.json())["error"]["fields"], wrong

    personal = await admin.post(
        "/api/admin/plans",
        {"name": "Starter", "kind": "credits", "credits": 100, "price": 100, "currency": "usd"},
    )
    starter = await personal.json()
    for_org = await admin.post(
        "/api/billing/checkout", {"plan_id": starter["id"], "org_id": org["id"]}
    )
    assert for_org.status == 422
    assert (await for_org.json())["error"]["code"] == "not_an_organisation_plan"
    assert await admin.get_json("/api/billing/orders") == []  # nothing was opened
    # No seats named: as many as the organisation has members and invitations.
    quoted = await admin.post(
        "/api/billing/quote", {"plan_id": team_plan["id"], "org_id": org["id"]}
    )
    assert (await quoted.json())["seats"] == 2


async def test_a_segment_naming_an_organisation_plan_takes_the_organisations_members(
    admin: ApiClient,
    stripe: FakeStripe,
    team_plan: dict[str, Any],
    make_client: Callable[[], Any],
) -> None:
    """Segments (announcements, flags) read an organisation's plan as its members' plan: while
    the organisation's plan is current, every member is "on" it (and no longer on "none"); a
    refund ends that at once."""
    org = await (await admin.post("/api/orgs", {"name": "Acme"})).json()
    mia = await person(make_client, "mia@example.com")
    sam = await person(make_client, "sam@example.com")
    await add_member(admin, org["id"], mia)
    started = await admin.post(
        "/api/billing/checkout", {"plan_id": team_plan["id"], "org_id": org["id"], "seats": 2}
    )
    checkout = await started.json()
    async with admin.client.session.post(checkout["url"], allow_redirects=False) as paid:
        assert paid.status == 303

    for title, plans in (("Team plan news", [team_plan["id"]]), ("Free tier", ["none"])):
        published = await admin.post(
            "/api/admin/announcements",
            {"title": title, "body": "x", "segment": {"plans": plans}},
        )
        assert published.status == 201, await published.text()
    flag = await admin.post(
        "/api/admin/flags",
        {"name": "team_tools", "enabled": True, "segment": {"plans": [team_plan["id"]]}},
    )
    assert flag.status == 201, await flag.text()

    async def seen(client: ApiClient) -> tuple[set[str], bool]:
        listed = await client.get_json("/api/announcements")
        flags = (await client.get_json("/api/me/flags"))["flags"]
        return {a["title"] for a in listed["announcements"]}, "team_tools" in flags

    # The member and the owner who bought it are on the plan; the outsider is on none.
    assert await seen(mia) == ({"Team plan news"}, True)
    assert await seen(admin) == ({"Team plan news"}, True)
    assert await seen(sam) == ({"Free tier"}, False)
    # The console offers the organisation plan among the plans a segment may name.
    form = await (await admin.get("/admin/announcements")).text()
    assert team_plan["id"] in form

    refunded = await admin.post(
        f"/api/admin/orders/{checkout['order_id']}/refund", {"reason": "Team disbanded"}
    )
    assert refunded.status == 200, await refunded.text()
    assert await seen(mia) == ({"Free tier"}, False)
