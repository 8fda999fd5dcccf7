"""Organisations (issue #19, teams items 1 and 3): an owner creates one and invites people by
email; an invitation is accepted through its mailed link, by the invited address only, once;
resending replaces the link and revoking ends it. Owners and admins remove members; the owner
transfers ownership and cannot leave before. Members generate from the shared wallet with
``org_id`` (their own wallet untouched), within an optional monthly limit; the owner sees usage
per member (JSON and CSV). A non-member gets 404 from every organisation route and a removed
member at their very next request; a member lacking the role gets 403. Concurrent generations
of many members never overdraw the shared wallet."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

import pytest
from sqlalchemy import select

from multinotes.app import create_app
from multinotes.keys import DB
from multinotes.providers import Pricing
from multinotes.testing import ApiClient, app_client
from multinotes.wallet import service as wallet
from multinotes.wallet.models import OrganisationWallet
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, link_in, text_of, token_in
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.sse import parse_sse

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

METER = "script/meter"
PER_ANSWER = 5  # credits: 5 output tokens at 1 credit each, input free
ACCEPT = "/organisations/invitations/accept"


def meter_plugin(delay: float = 0.0) -> list[tuple[str, ScriptedPlugin]]:
    model = ScriptedModel(
        METER,
        Script(chunks=["one ", "two ", "three ", "four ", "five"], delay=delay),
        context_window=1000,
        max_output=PER_ANSWER,
        pricing=Pricing(input_per_million=0, output_per_million=1_000_000),
    )
    return [("script", ScriptedPlugin(model))]


@pytest.fixture
def plugins() -> Any:
    return meter_plugin()


@pytest.fixture
async def owner(api: ApiClient) -> ApiClient:
    await api.register_admin("olive@example.com")
    await api.mark_verified()
    return api


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def create(client: ApiClient, name: str = "Acme") -> dict[str, Any]:
    response = await client.post("/api/orgs", {"name": name})
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def invite(client: ApiClient, org_id: str, email: str, role: str = "member") -> Any:
    response = await client.post(f"/api/orgs/{org_id}/invitations", {"email": email, "role": role})
    assert response.status == 201, await response.text()
    return await response.json()


async def join(
    owner: ApiClient, org_id: str, newcomer: ApiClient, mailbox: Mailbox, role: str = "member"
) -> None:
    assert newcomer.user is not None
    email = newcomer.user["email"]
    await invite(owner, org_id, email, role)
    token = token_in(await mailbox.wait_for(email, subject="invited you"), ACCEPT)
    accepted = await newcomer.post("/api/orgs/invitations/accept", {"token": token})
    assert accepted.status == 200, await accepted.text()


async def ask(client: ApiClient, org_id: str | None, text: str = "Count to five") -> Any:
    body: dict[str, Any] = {"content": text, "models": [METER]}
    if org_id is not None:
        body["org_id"] = org_id
    return await client.post("/api/messages", body)


async def answered(response: Any) -> str:
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    return str(next(d for name, d in events if name == "done")["status"])


async def assert_org_balanced(api: ApiClient, org_id: str) -> None:
    """The shared wallet's balance is the sum of its ledger entries, never below zero."""
    async with api.app[DB].read() as session:
        row = await session.scalar(
            select(OrganisationWallet).where(OrganisationWallet.organisation_id == org_id)
        )
    assert row is not None
    assert row.balance == await wallet.organisation_ledger_sum(api.app[DB], org_id)
    assert row.balance >= 0 and row.balance - row.reserved >= 0


async def sent_long_ago(api: ApiClient, invitation_id: str) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from multinotes.db import utcnow
    from multinotes.organisations.models import OrganisationInvitation

    async with api.app[DB].transaction() as session:
        await session.execute(
            update(OrganisationInvitation)
            .where(OrganisationInvitation.id == invitation_id)
            .values(sent_at=utcnow() - timedelta(hours=1))
        )


# -- creating, inviting, accepting ---------------------------------------------------------------


async def test_an_invitation_is_accepted_once_through_its_mailed_link_by_the_invited_address(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner, "  Acme   Research ")
    assert (org["name"], org["role"]) == ("Acme Research", "owner")
    assert org["wallet"] == {"balance": 0, "reserved": 0, "available": 0}
    assert [o["id"] for o in (await owner.get_json("/api/orgs"))["organisations"]] == [org["id"]]

    pending = await invite(owner, org["id"], "Casey@Example.com")
    assert (pending["email"], pending["role"], pending["status"]) == (
        "casey@example.com",
        "member",
        "pending",
    )
    mail = await mailbox.wait_for("casey@example.com", subject="invited you to Acme Research")
    assert "Admin invited" in text_of(mail) and "as a member" in text_of(mail)
    first_token = token_in(mail, ACCEPT)
    listed = (await owner.get_json(f"/api/orgs/{org['id']}/invitations"))["invitations"]
    assert [i["email"] for i in listed] == ["casey@example.com"] and listed[0]["sent_at"]

    again = await owner.post(f"/api/orgs/{org['id']}/invitations", {"email": "casey@example.com"})
    assert again.status == 409
    assert (await again.json())["error"]["fields"] == {"email": "already invited"}

    # Resending at once is refused (a mail a moment ago); later it mails a new link and the
    # first one stops working.
    resend = f"/api/orgs/{org['id']}/invitations/{pending['id']}/resend"
    too_soon = await owner.post(resend)
    assert too_soon.status == 409 and (await too_soon.json())["error"]["code"] == "sent_recently"
    await sent_long_ago(owner, pending["id"])
    resent = await owner.post(resend)
    assert resent.status == 200, await resent.text()
    second = await mailbox.wait_for("casey@example.com", 2, subject="invited you")
    token = token_in(second, ACCEPT)
    assert token != first_token

    casey = await person(make_client, "casey@example.com")
    stale = await casey.post("/api/orgs/invitations/accept", {"token": first_token})
    assert stale.status == 422 and (await stale.json())["error"]["fields"] == {"token": "not valid"}
    # The link's page shows the invitation without accepting it (a GET changes nothing).
    assert link_in(second, ACCEPT).endswith(f"{ACCEPT}?token={token}")
    shown = await casey.get(f"{ACCEPT}?token={token}")
    assert shown.status == 200 and "Acme Research" in await shown.text()
    assert (await casey.get_json("/api/orgs"))["organisations"] == []

    # Someone else with the link cannot use it.
    eve = await person(make_client, "eve@example.com")
    refused = await eve.post("/api/orgs/invitations/accept", {"token": token})
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "wrong_account"

    accepted = await casey.post("/api/orgs/invitations/accept", {"token": token})
    assert accepted.status == 200
    assert (await accepted.json())["role"] == "member"
    used = await casey.post("/api/orgs/invitations/accept", {"token": token})
    assert used.status == 422
    members = (await owner.get_json(f"/api/orgs/{org['id']}/members"))["members"]
    assert [(m["email"], m["role"]) for m in members] == [
        ("olive@example.com", "owner"),
        ("casey@example.com", "member"),
    ]
    assert (await owner.get_json(f"/api/orgs/{org['id']}/invitations"))["invitations"] == []
    member_again = await owner.post(
        f"/api/orgs/{org['id']}/invitations", {"email": "casey@example.com"}
    )
    assert member_again.status == 409
    assert (await member_again.json())["error"]["code"] == "already_member"


async def test_a_revoked_invitation_link_does_not_work(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    pending = await invite(owner, org["id"], "dana@example.com")
    token = token_in(await mailbox.wait_for("dana@example.com", subject="invited you"), ACCEPT)
    assert (await owner.delete(f"/api/orgs/{org['id']}/invitations/{pending['id']}")).status == 204
    dana = await person(make_client, "dana@example.com")
    response = await dana.post("/api/orgs/invitations/accept", {"token": token})
    assert response.status == 422
    assert (await owner.delete(f"/api/orgs/{org['id']}/invitations/{pending['id']}")).status == 404


async def test_roles_decide_who_invites_removes_and_sees_usage(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    admin = await person(make_client, "ada@example.com")
    member = await person(make_client, "max@example.com")
    other = await person(make_client, "mo@example.com")
    await join(owner, org["id"], admin, mailbox, role="admin")
    await join(owner, org["id"], member, mailbox)
    await join(admin, org["id"], other, mailbox)  # an admin invites members

    as_member = await member.post(f"/api/orgs/{org['id']}/invitations", {"email": "x@example.com"})
    assert as_member.status == 403
    assert (await member.get(f"/api/orgs/{org['id']}/usage")).status == 403
    assert (await member.get(f"/api/orgs/{org['id']}/invitations")).status == 403
    admin_invite = await admin.post(
        f"/api/orgs/{org['id']}/invitations", {"email": "y@example.com", "role": "admin"}
    )
    assert admin_invite.status == 403  # only the owner makes admins
    assert admin.user and owner.user and member.user and other.user
    assert (await admin.delete(f"/api/orgs/{org['id']}/members/{owner.user['id']}")).status == 403
    promote = await admin.patch(
        f"/api/orgs/{org['id']}/members/{member.user['id']}", {"role": "admin"}
    )
    assert promote.status == 403
    assert (await member.delete(f"/api/orgs/{org['id']}/members/{other.user['id']}")).status == 403

    assert (await admin.delete(f"/api/orgs/{org['id']}/members/{other.user['id']}")).status == 204
    emails = [
        m["email"] for m in (await owner.get_json(f"/api/orgs/{org['id']}/members"))["members"]
    ]
    assert emails == ["olive@example.com", "ada@example.com", "max@example.com"]
    assert (await other.get(f"/api/orgs/{org['id']}")).status == 404


async def test_the_owner_transfers_ownership_before_leaving(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    casey = await person(make_client, "casey@example.com")
    await join(owner, org["id"], casey, mailbox)
    assert casey.user and owner.user

    stuck = await owner.post(f"/api/orgs/{org['id']}/leave")
    assert stuck.status == 409 and (await stuck.json())["error"]["code"] == "owner_cannot_leave"
    not_owner = await casey.post(f"/api/orgs/{org['id']}/transfer", {"user_id": owner.user["id"]})
    assert not_owner.status == 403
    nobody = await owner.post(f"/api/orgs/{org['id']}/transfer", {"user_id": "0" * 32})
    assert nobody.status == 404

    moved = await owner.post(f"/api/orgs/{org['id']}/transfer", {"user_id": casey.user["id"]})
    assert moved.status == 200 and (await moved.json())["role"] == "admin"
    assert (await casey.get_json(f"/api/orgs/{org['id']}"))["role"] == "owner"
    assert (await owner.post(f"/api/orgs/{org['id']}/leave")).status == 204
    assert (await owner.get(f"/api/orgs/{org['id']}")).status == 404
    members = (await casey.get_json(f"/api/orgs/{org['id']}/members"))["members"]
    assert [(m["email"], m["role"]) for m in members] == [("casey@example.com", "owner")]


# -- the shared wallet ---------------------------------------------------------------------------


async def test_members_generate_from_the_shared_wallet_and_the_owner_sees_usage_per_member(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    casey = await person(make_client, "casey@example.com")
    await join(owner, org["id"], casey, mailbox)
    empty = await ask(casey, org["id"])
    assert empty.status == 402
    assert (await empty.json())["error"]["code"] == "insufficient_credits"

    own_before = (await owner.get_json("/api/wallet"))["balance"]
    funded = await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 100})
    assert funded.status == 200
    assert await funded.json() == {"balance": 100, "reserved": 0, "available": 100}
    assert (await owner.get_json("/api/wallet"))["balance"] == own_before - 100
    too_much = await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 10**9})
    assert too_much.status == 402

    casey_before = await casey.get_json("/api/wallet")
    assert await answered(await ask(casey, org["id"])) == "complete"
    assert await answered(await ask(casey, org["id"])) == "complete"
    assert await answered(await ask(owner, org["id"])) == "complete"
    assert await answered(await ask(casey, None)) == "complete"  # personal: own wallet pays

    shared = await casey.get_json(f"/api/orgs/{org['id']}/wallet")
    assert shared == {"balance": 100 - 3 * PER_ANSWER, "reserved": 0, "available": 85}
    assert (await casey.get_json("/api/wallet"))["balance"] == casey_before["balance"] - PER_ANSWER
    detail = await casey.get_json(f"/api/orgs/{org['id']}")
    assert detail["spent_this_month"] == 2 * PER_ANSWER and detail["monthly_limit"] is None
    # The person's own ledger does not list the organisation's spending.
    personal = (await casey.get_json("/api/wallet/ledger?kind=usage"))["entries"]
    assert [e["amount"] for e in personal] == [-PER_ANSWER]

    usage = await owner.get_json(f"/api/orgs/{org['id']}/usage")
    assert usage["total"] == 3 * PER_ANSWER
    assert [(m["email"], m["credits"], m["answers"]) for m in usage["members"]] == [
        ("olive@example.com", PER_ANSWER, 1),
        ("casey@example.com", 2 * PER_ANSWER, 2),
    ]
    download = await owner.get(f"/api/orgs/{org['id']}/usage.csv?month={usage['month']}")
    assert download.status == 200 and download.content_type == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await download.text())))
    assert [(r["email"], r["credits"]) for r in rows] == [
        ("olive@example.com", "5"),
        ("casey@example.com", "10"),
    ]
    old = await owner.get_json(f"/api/orgs/{org['id']}/usage?month=2020-01")
    assert old["total"] == 0 and old["month"] == "2020-01"
    bad = await owner.get(f"/api/orgs/{org['id']}/usage?month=2020-13")
    assert bad.status == 422 and "month" in (await bad.json())["error"]["fields"]
    await assert_org_balanced(owner, org["id"])


async def test_a_monthly_limit_stops_a_member_before_the_shared_wallet_is_empty(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    casey = await person(make_client, "casey@example.com")
    await join(owner, org["id"], casey, mailbox)
    assert casey.user
    await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 1000})
    limited = await owner.patch(
        f"/api/orgs/{org['id']}/members/{casey.user['id']}", {"monthly_limit": 2 * PER_ANSWER}
    )
    assert limited.status == 200, await limited.text()
    assert await answered(await ask(casey, org["id"])) == "complete"
    assert await answered(await ask(casey, org["id"])) == "complete"
    stopped = await ask(casey, org["id"])
    assert stopped.status == 402
    assert (await stopped.json())["error"]["code"] == "member_limit_reached"
    assert await answered(await ask(owner, org["id"])) == "complete"  # others go on

    lifted = await owner.patch(
        f"/api/orgs/{org['id']}/members/{casey.user['id']}", {"monthly_limit": None}
    )
    assert lifted.status == 200
    assert await answered(await ask(casey, org["id"])) == "complete"
    negative = await owner.patch(
        f"/api/orgs/{org['id']}/members/{casey.user['id']}", {"monthly_limit": -1}
    )
    assert negative.status == 422
    assert "monthly_limit" in (await negative.json())["error"]["fields"]
    await assert_org_balanced(owner, org["id"])


async def test_a_removed_member_loses_access_at_the_next_request(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    casey = await person(make_client, "casey@example.com")
    await join(owner, org["id"], casey, mailbox)
    assert casey.user
    await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 100})
    assert await answered(await ask(casey, org["id"])) == "complete"

    assert (await owner.delete(f"/api/orgs/{org['id']}/members/{casey.user['id']}")).status == 204
    refused = await ask(casey, org["id"])
    assert refused.status == 404
    for path in ("", "/members", "/wallet", "/usage"):
        assert (await casey.get(f"/api/orgs/{org['id']}{path}")).status == 404
    assert (await casey.get(f"/organisations/{org['id']}")).status == 404
    # The usage still counts what they spent, as a former member.
    usage = (await owner.get_json(f"/api/orgs/{org['id']}/usage"))["members"]
    assert ("casey@example.com", "former member", PER_ANSWER) in [
        (m["email"], m["role"], m["credits"]) for m in usage
    ]


async def test_an_outsider_gets_404_and_bad_input_names_its_field(
    owner: ApiClient, make_client: Any
):
    org = await create(owner)
    outsider = await person(make_client, "out@example.com")
    for method, path, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "Mine"}),
        ("GET", "/members", None),
        ("GET", "/wallet", None),
        ("POST", "/wallet/fund", {"amount": 1}),
        ("GET", "/usage", None),
        ("GET", "/usage.csv", None),
        ("POST", "/invitations", {"email": "x@example.com"}),
        ("POST", "/leave", None),
    ]:
        response = await outsider.request(method, f"/api/orgs/{org['id']}{path}", json=body)
        assert response.status == 404, (method, path, response.status)
    assert (await ask(outsider, org["id"])).status == 404
    assert (await outsider.get("/api/orgs/nope")).status == 404

    for body, field in [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({}, "name"),
    ]:
        response = await owner.post("/api/orgs", body)
        assert response.status == 422 and field in (await response.json())["error"]["fields"]
    wrong = await owner.post(f"/api/orgs/{org['id']}/invitations", {"email": "not-an-address"})
    assert wrong.status == 422 and "email" in (await wrong.json())["error"]["fields"]
    role = await owner.post(
        f"/api/orgs/{org['id']}/invitations", {"email": "a@example.com", "role": "owner"}
    )
    assert role.status == 422 and "role" in (await role.json())["error"]["fields"]
    fund = await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 0})
    assert fund.status == 422 and "amount" in (await fund.json())["error"]["fields"]
    token = await owner.post("/api/orgs/invitations/accept", {"token": ""})
    assert token.status == 422 and "token" in (await token.json())["error"]["fields"]


async def test_an_administrator_grants_credits_to_an_organisation(
    owner: ApiClient, make_client: Any
):
    org = await create(owner)
    granted = await owner.post(
        f"/api/admin/orgs/{org['id']}/credits", {"amount": 500, "reason": "Pilot"}
    )
    assert granted.status == 200 and (await granted.json())["balance"] == 500
    below = await owner.post(
        f"/api/admin/orgs/{org['id']}/credits", {"amount": -501, "reason": "Too much"}
    )
    assert below.status == 409
    missing = await owner.post("/api/admin/orgs/nope/credits", {"amount": 1, "reason": "x"})
    assert missing.status == 404
    someone = await person(make_client, "someone@example.com")
    refused = await someone.post(
        f"/api/admin/orgs/{org['id']}/credits", {"amount": 1, "reason": "x"}
    )
    assert refused.status == 403
    await assert_org_balanced(owner, org["id"])


# -- never overdrawn, under concurrent generations of many members ---------------------------------


async def test_concurrent_generations_of_many_members_never_overdraw_the_shared_wallet(
    make_settings: Any,
):
    """Ten members send 60 prompts at once to a wallet that covers 20 answers: exactly 20 are
    answered, 40 are refused with 402 before any provider is called, and the wallet never goes
    below zero (watched while it runs)."""
    from aiohttp.test_utils import TestClient

    from multinotes.organisations import service as organisations
    from multinotes.sharing import access

    settings = make_settings(
        rate_limit_generation="1000/minute",
        rate_limit_api="5000/minute",
        rate_limit_auth="1000/minute",
        rate_limit_strict_auth="1000/minute",
    )
    app = create_app(settings, plugins=meter_plugin(delay=0.005))
    async with app_client(app) as owner:
        await owner.register_admin("olive@example.com")
        await owner.mark_verified()
        assert owner.user is not None
        db = owner.app[DB]
        org = await create(owner)
        who = await access.organisation(db, owner.user["id"], org["id"])
        members: list[ApiClient] = []
        opened: list[TestClient] = []
        try:
            for index in range(10):
                raw = TestClient(owner.client.server)
                await raw.start_server()
                opened.append(raw)
                member = ApiClient(raw)
                await member.register_and_login(f"m{index}@example.com")
                await member.mark_verified()
                assert member.user is not None
                invitation = await organisations.invite(db, who, f"m{index}@example.com", "member")
                token = await organisations.issue_link_token(db, invitation.id)
                assert token is not None
                await organisations.accept(db, member.user["id"], token)
                members.append(member)
            await wallet.adjust_organisation(
                db, org["id"], 20 * PER_ANSWER, "exactly 20", by=owner.user["id"]
            )

            lowest = {"available": 20 * PER_ANSWER, "balance": 20 * PER_ANSWER}
            done = asyncio.Event()

            async def watch() -> None:
                while not done.is_set():
                    current = await wallet.organisation_balance(db, org["id"])
                    lowest["available"] = min(lowest["available"], current.available)
                    lowest["balance"] = min(lowest["balance"], current.balance)
                    await asyncio.sleep(0.005)

            async def one(index: int) -> tuple[int, str]:
                response = await ask(members[index % len(members)], org["id"], f"Count #{index}")
                if response.status != 200:
                    return response.status, (await response.json())["error"]["code"]
                events = parse_sse(await response.text())
                return 200, next(d for name, d in events if name == "done")["status"]

            watcher = asyncio.create_task(watch())
            results = await asyncio.gather(*(one(i) for i in range(60)))
            done.set()
            await watcher
        finally:
            for raw in opened:
                await raw.session.close()

        statuses = [status for status, _ in results]
        assert statuses.count(200) == 20, sorted(set(results))
        assert statuses.count(402) == 40
        assert {detail for status, detail in results if status == 200} == {"complete"}
        assert {detail for status, detail in results if status == 402} == {"insufficient_credits"}
        final = await wallet.organisation_balance(db, org["id"])
        assert (final.balance, final.reserved) == (0, 0)
        assert lowest["available"] >= 0 and lowest["balance"] >= 0
        await assert_org_balanced(owner, org["id"])
        usage = await owner.get_json(f"/api/orgs/{org['id']}/usage")
        assert usage["total"] == 20 * PER_ANSWER
        assert sum(m["answers"] for m in usage["members"]) == 20


async def test_the_owner_of_an_organisation_with_members_cannot_delete_their_account(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    casey = await person(make_client, "casey@example.com")
    await join(owner, org["id"], casey, mailbox)
    assert casey.user
    alone = await create(casey, "Casey's own")
    assert alone["role"] == "owner"
    await owner.post(f"/api/orgs/{org['id']}/transfer", {"user_id": casey.user["id"]})
    from multinotes.testing import DEFAULT_PASSWORD

    kept = await casey.delete("/api/me", json={"password": DEFAULT_PASSWORD})
    assert kept.status == 409
    assert (await kept.json())["error"]["code"] == "organisation_owner"
    # Owning only an organisation of one's own does not hold the deletion up.
    assert owner.user
    back = await casey.post(f"/api/orgs/{org['id']}/transfer", {"user_id": owner.user["id"]})
    assert back.status == 200
    deleted = await casey.delete("/api/me", json={"password": DEFAULT_PASSWORD})
    assert deleted.status == 202, await deleted.text()


async def test_the_jump_to_palette_and_the_footer_lead_to_organisations(owner: ApiClient):
    items = (await owner.get_json("/api/palette?q=team"))["items"]
    assert {"title": "Organisations", "url": "/organisations"}.items() <= next(
        i for i in items if i.get("title") == "Organisations"
    ).items()
    page = await owner.get("/notes")
    assert '<a href="/organisations"' in await page.text()


async def test_an_answer_regenerated_in_the_organisation_context_is_paid_by_its_wallet(
    owner: ApiClient,
):
    org = await create(owner)
    await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 100})
    first = await ask(owner, None)
    assert await answered(first) == "complete"
    answer_id = next(d for name, d in parse_sse(await first.text()) if name == "done")["message_id"]
    personal = (await owner.get_json("/api/wallet"))["balance"]
    again = await owner.post(f"/api/messages/{answer_id}/regenerate", {"org_id": org["id"]})
    assert await answered(again) == "complete"
    assert (await owner.get_json("/api/wallet"))["balance"] == personal
    shared = await owner.get_json(f"/api/orgs/{org['id']}/wallet")
    assert shared["balance"] == 100 - PER_ANSWER
    stranger = await owner.post(f"/api/messages/{answer_id}/regenerate", {"org_id": "0" * 32})
    assert stranger.status == 404


async def test_a_hold_on_the_shared_wallet_settles_once_to_its_cost(owner: ApiClient):
    """What the crash sweep relies on: settling by the reservation's reference finds the
    organisation's wallet (not the member's), charges at most what was held, and a second
    settlement changes nothing."""
    assert owner.user is not None
    db = owner.app[DB]
    org = await create(owner)
    await wallet.adjust_organisation(db, org["id"], 50, "test", by=owner.user["id"])
    personal = await wallet.balance(db, owner.user["id"])
    async with db.transaction() as session:
        await wallet.hold_in(
            session,
            owner.user["id"],
            [(30, "gen:sweep-test", METER)],
            organisation=wallet.OrganisationHold(org["id"]),
        )
    held = await wallet.organisation_balance(db, org["id"])
    assert (held.balance, held.reserved) == (50, 30)
    assert await wallet.settle(db, "gen:sweep-test", 45) == 30  # never more than was held
    assert await wallet.settle(db, "gen:sweep-test", 10) == 30  # idempotent
    settled = await wallet.organisation_balance(db, org["id"])
    assert (settled.balance, settled.reserved) == (20, 0)
    assert await wallet.balance(db, owner.user["id"]) == personal
    await assert_org_balanced(owner, org["id"])


async def test_changes_from_the_pages_are_audited_like_those_through_the_api(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    """The organisation page and the API share one set of operations: the same change leaves
    the same audit entry whichever door it came through."""
    org = await create(owner)
    casey = await person(make_client, "casey@example.com")
    await join(owner, org["id"], casey, mailbox)
    assert casey.user
    member = f"/organisations/{org['id']}/members/{casey.user['id']}"
    by_page = await owner.client.post(
        member,
        data=[("csrf_token", owner.csrf or ""), ("monthly_limit", "40")],
        allow_redirects=False,
    )
    assert by_page.status == 303, await by_page.text()
    by_api = await owner.patch(
        f"/api/orgs/{org['id']}/members/{casey.user['id']}", {"monthly_limit": 50}
    )
    assert by_api.status == 200, await by_api.text()
    entries = await owner.get_json(
        f"/api/admin/audit?action=organisation.member_updated&target_id={org['id']}"
    )
    limits = sorted(e["details"]["monthly_limit"] for e in entries["entries"])
    assert limits == [40, 50]
    assert {e["details"]["user_id"] for e in entries["entries"]} == {casey.user["id"]}
