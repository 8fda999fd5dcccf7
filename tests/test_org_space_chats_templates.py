"""Conversations and prompt templates in an organisation's space (issue #19, teams item 4), like
notes and folders: moving one in or out is an explicit, audited action (its owner moves it in;
its owner or the organisation's owner and admins take it out). Members read a conversation in
the space (only its owner writes in it, and the organisation's wallet pays for those prompts
without the request naming it); members see and use a template in the space, and its owner and
the organisation's owner and admins change it. The organisation's space lists both. A removed
member loses access at their very next request; outsiders get 404 throughout."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import ApiClient
from tests.support.mail import Mailbox
from tests.support.sse import parse_sse
from tests.test_organisations import (
    METER,
    PER_ANSWER,
    answered,
    create,
    join,
    mailbox,
    meter_plugin,
    person,
    settings,
    smtp_server,
)

__all__ = ["mailbox", "settings", "smtp_server"]  # the mail fixtures


@pytest.fixture
def plugins() -> Any:
    return meter_plugin()


@pytest.fixture
async def owner(api: ApiClient) -> ApiClient:
    await api.register_admin("olive@example.com")
    await api.mark_verified()
    return api


async def start_chat(client: ApiClient, org_id: str | None = None) -> str:
    body: dict[str, Any] = {"content": "Count to five", "models": [METER]}
    if org_id:
        body["org_id"] = org_id
    response = await client.post("/api/messages", body)
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    return str(next(d for name, d in events if name == "prompt")["conversation_id"])


async def move(client: ApiClient, kind: str, item_id: str, org_id: str | None) -> Any:
    return await client.post(f"/api/{kind}s/{item_id}/move-space", {"org_id": org_id})


async def template(client: ApiClient, title: str = "Weekly report") -> str:
    response = await client.post(
        "/api/templates",
        {
            "title": title,
            "body": "Summarise {{topic}} for the team.",
            "variables": [{"name": "topic", "type": "text"}],
        },
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def test_members_read_a_conversation_in_the_space_and_its_wallet_pays_for_it(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    mia = await person(make_client, "mia@example.com")
    stranger = await person(make_client, "sam@example.com")
    await join(owner, org["id"], mia, mailbox)
    await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 100})

    chat = await start_chat(mia)  # personal: Mia's own wallet paid
    assert (await owner.get(f"/api/conversations/{chat}")).status == 404
    assert (await move(owner, "conversation", chat, org["id"])).status == 404  # not hers to see
    moved = await move(mia, "conversation", chat, org["id"])
    assert moved.status == 200, await moved.text()
    assert await moved.json() == {"id": chat, "organisation_id": org["id"]}

    seen = await owner.get_json(f"/api/conversations/{chat}")
    assert seen["organisation_id"] == org["id"] and seen["messages"]
    assert (await owner.get(f"/shared/conversations/{chat}")).status == 200
    assert (await stranger.get(f"/api/conversations/{chat}")).status == 404
    # Reading is not writing: only Mia prompts in her conversation.
    refused = await owner.post(
        f"/api/conversations/{chat}/messages", {"content": "More", "models": [METER]}
    )
    assert refused.status == 403
    assert (await owner.delete(f"/api/conversations/{chat}")).status == 403

    # Mia's prompt there is paid by the organisation without naming it; naming another
    # organisation is refused before anything is spent.
    own_before = (await mia.get_json("/api/wallet"))["balance"]
    again = await mia.post(
        f"/api/conversations/{chat}/messages", {"content": "Again", "models": [METER]}
    )
    assert await answered(again) == "complete"
    assert (await mia.get_json("/api/wallet"))["balance"] == own_before
    shared = await mia.get_json(f"/api/orgs/{org['id']}/wallet")
    assert shared["balance"] == 100 - PER_ANSWER
    other = await create(mia, "Mia's side project")
    wrong = await mia.post(
        f"/api/conversations/{chat}/messages",
        {"content": "Again", "models": [METER], "org_id": other["id"]},
    )
    assert wrong.status == 409
    assert (await wrong.json())["error"]["code"] == "conversation_in_other_space"

    # The space lists it; the organisation's page links members to the read-only view.
    space = await owner.get_json(f"/api/orgs/{org['id']}/space")
    assert [c["id"] for c in space["conversations"]] == [chat]
    page = await (await owner.get(f"/organisations/{org['id']}")).text()
    assert f'href="/shared/conversations/{chat}"' in page

    # An admin of the organisation takes it out; then it is Mia's alone again.
    taken = await move(owner, "conversation", chat, None)
    assert taken.status == 200 and (await taken.json())["organisation_id"] is None
    assert (await owner.get(f"/api/conversations/{chat}")).status == 404
    audit = await owner.get_json(f"/api/admin/audit?target_id={chat}")
    assert [e["action"] for e in audit["entries"]] == [
        "conversation.space_moved",
        "conversation.space_moved",
    ]


async def test_members_use_a_template_in_the_space_and_admins_change_it(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    mia = await person(make_client, "mia@example.com")
    max_ = await person(make_client, "max@example.com")
    stranger = await person(make_client, "sam@example.com")
    await join(owner, org["id"], mia, mailbox)
    await join(owner, org["id"], max_, mailbox)

    report = await template(mia)
    assert (await max_.get(f"/api/templates/{report}")).status == 404  # private until moved
    moved = await move(mia, "template", report, org["id"])
    assert moved.status == 200, await moved.text()

    seen = await max_.get_json(f"/api/templates/{report}")
    assert seen["organisation_id"] == org["id"] and seen["can_edit"] is False
    used = await max_.post(f"/api/templates/{report}/render", {"values": {"topic": "sales"}})
    assert used.status == 200
    assert (await used.json())["prompt"] == "Summarise sales for the team."
    listed = await max_.get_json("/api/templates?scope=all")
    assert report in [t["id"] for t in listed["templates"]]
    # A plain member does not change it; the organisation's owner (an admin there) does.
    assert (await max_.patch(f"/api/templates/{report}", {"title": "Mine"})).status == 403
    assert (await owner.get_json(f"/api/templates/{report}"))["can_edit"] is True
    changed = await owner.patch(f"/api/templates/{report}", {"title": "Team weekly report"})
    assert changed.status == 200, await changed.text()
    assert (await mia.get_json(f"/api/templates/{report}"))["title"] == "Team weekly report"
    assert (await stranger.get(f"/api/templates/{report}")).status == 404
    space = await max_.get_json(f"/api/orgs/{org['id']}/space")
    assert [t["title"] for t in space["templates"]] == ["Team weekly report"]

    # Only its owner moves it in; a plain member does not take someone else's out.
    theirs = await template(max_, "Max's template")
    assert (await move(mia, "template", theirs, org["id"])).status == 404
    assert (await move(max_, "template", report, None)).status == 403
    assert (await move(stranger, "template", report, None)).status == 404
    assert (await move(mia, "template", report, "0" * 32)).status == 404  # not a member there
    bad = await move(mia, "template", report, "no spaces")
    assert bad.status == 422 and "org_id" in (await bad.json())["error"]["fields"]


async def test_a_removed_member_loses_the_spaces_conversations_and_templates_at_once(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    org = await create(owner)
    mia = await person(make_client, "mia@example.com")
    await join(owner, org["id"], mia, mailbox)
    await owner.post(f"/api/orgs/{org['id']}/wallet/fund", {"amount": 100})
    chat = await start_chat(owner, org["id"])
    assert (await move(owner, "conversation", chat, org["id"])).status == 200
    report = await template(owner)
    assert (await move(owner, "template", report, org["id"])).status == 200
    assert (await mia.get(f"/api/conversations/{chat}")).status == 200
    assert (await mia.get(f"/api/templates/{report}")).status == 200

    assert mia.user is not None
    removed = await owner.delete(f"/api/orgs/{org['id']}/members/{mia.user['id']}")
    assert removed.status == 204, await removed.text()
    assert (await mia.get(f"/api/conversations/{chat}")).status == 404
    assert (await mia.get(f"/shared/conversations/{chat}")).status == 404
    assert (await mia.get(f"/api/templates/{report}")).status == 404
    assert report not in [
        t["id"] for t in (await mia.get_json("/api/templates?scope=all"))["templates"]
    ]
    assert (await mia.get(f"/api/orgs/{org['id']}/space")).status == 404


async def test_the_library_names_each_templates_organisation_and_filters_by_it(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
):
    """In the prompt library (the page and ``GET /api/templates``) a template in an
    organisation's space carries a badge naming the organisation, and ``scope=organisation``
    shows only those of the organisations one belongs to (``mine``: one's own, ``all``:
    everything one can see)."""
    org = await create(owner, "Acme Research")
    mia = await person(make_client, "mia@example.com")
    await join(owner, org["id"], mia, mailbox)
    team = await template(owner, "Team weekly report")
    assert (await move(owner, "template", team, org["id"])).status == 200
    own = await template(mia, "Mia private notes")

    async def titles(scope: str) -> dict[str, Any]:
        listed = await mia.get_json(f"/api/templates?scope={scope}")
        return {t["title"]: t["organisation_name"] for t in listed["templates"]}

    assert await titles("organisation") == {"Team weekly report": "Acme Research"}
    assert await titles("mine") == {"Mia private notes": None}
    everything = await titles("all")
    assert everything["Team weekly report"] == "Acme Research"
    assert everything["Mia private notes"] is None
    assert (await mia.get_json(f"/api/templates/{own}"))["organisation_name"] is None

    page = await (await mia.get("/prompts?scope=organisation")).text()
    assert "Team weekly report" in page and "Mia private notes" not in page
    assert 'data-organisation="' + org["id"] + '"' in page and "Acme Research" in page
    assert '<option value="organisation" selected' in page
    everything_page = await (await mia.get("/prompts")).text()
    assert "Mia private notes" in everything_page and "Acme Research" in everything_page

    # The filter is in the API's documented query.
    spec = await mia.get_json("/api/openapi.json")
    parameters = spec["paths"]["/api/templates"]["get"]["parameters"]
    scope = next(p for p in parameters if p["name"] == "scope")["schema"]
    assert "organisation" in scope["enum"] and "`organisation`" in scope["description"]
