"""What an organisation's space holds is where a member looks for it (issue #19, teams item 4):
its notes and conversations are found by search and the palette, and the conversations other
members keep there are listed in the chat sidebar, in a group of their own per organisation
("Shared in Acme": someone else's, read-only, opened in the read-only view). The same rule as
opening them (``multinotes.sharing.access``): a removed member stops finding and seeing them at
their next request, someone outside the organisation never does. Both runtime modes."""

from __future__ import annotations

import re
from typing import Any

from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox
from tests.test_organisation_spaces import move, note, person, team
from tests.test_search import ask, embedded, find, folder

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


async def chat(client: ApiClient, title: str) -> str:
    response = await client.post("/api/conversations", {"title": title})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


def space_group(html: str) -> list[tuple[str, str]]:
    """The sidebar's "Shared in ..." items: (link, title)."""
    return re.findall(
        r'data-space-conversation="[0-9a-f]+">\s*<a href="([^"]+)"[^>]*>([^<]+?) <small', html
    )


async def test_members_find_the_notes_and_conversations_of_the_space(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    stranger = await person(make_client, "sam@example.com")
    # Olive keeps a note, a folder (with a note in a subfolder) and a conversation in the space,
    # and a note of her own outside it.
    plan = await note(api, "Quince budget")
    team_folder = await folder(api, "Orchard")
    inside = await note(api, "Quince rows", folder_id=await folder(api, "Rows", team_folder))
    await note(api, "Private quince diary")
    tree = await ask(api, "quince harvest dates")
    for kind, item in (("document", plan), ("folder", team_folder), ("conversation", tree["id"])):
        assert (await move(api, kind, item, org_id)).status == 200
    await embedded(api)

    for mode in ("text", "semantic", "hybrid"):
        results = (await find(mia, "quince", mode=mode))["results"]
        urls = {r["id"]: r["url"] for r in results}
        assert {plan, inside, tree["id"]} <= set(urls), mode
        assert urls[plan] == f"/notes/{plan}"
        assert urls[tree["id"]] == f"/shared/conversations/{tree['id']}"
        assert all(r["shared"] for r in results)
        assert "Private quince diary" not in {r["title"] for r in results}
        assert (await find(stranger, "quince", mode=mode))["results"] == [], mode
    answers = (await find(mia, "quince", mode="text", kind="message"))["results"]
    assert {r["conversation_id"] for r in answers} == {tree["id"]}
    palette = await mia.get_json("/api/palette?q=quince")
    assert {i["id"] for i in palette["items"]} >= {plan, inside, tree["id"]}
    orchard = (await mia.get_json("/api/palette?q=orchard"))["items"]
    assert [i["id"] for i in orchard if i["kind"] == "folder"] == [team_folder]
    # The space's folder is a filter like any folder Mia sees; a stranger's is not found.
    within = (await find(mia, "quince", mode="text", folder_id=team_folder))["results"]
    assert [r["id"] for r in within] == [inside]
    assert (await stranger.get(f"/api/search?q=quince&folder_id={team_folder}")).status == 404

    # Taken out of the space: Olive's alone again.
    assert (await move(api, "document", plan, None)).status == 200
    assert plan not in {r["id"] for r in (await find(mia, "quince", mode="text"))["results"]}

    assert mia.user is not None
    assert (await api.delete(f"/api/orgs/{org_id}/members/{mia.user['id']}")).status == 204
    for mode in ("text", "semantic", "hybrid"):
        assert (await find(mia, "quince", mode=mode))["results"] == [], mode
    assert [i for i in (await mia.get_json("/api/palette?q=quince"))["items"]] == []


async def test_the_chat_sidebar_lists_what_other_members_keep_in_the_space(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    stranger = await person(make_client, "sam@example.com")
    launch = await chat(api, "Launch checklist")
    assert (await move(api, "conversation", launch, org_id)).status == 200
    await chat(api, "Olive private chat")
    mine = await chat(mia, "Draft by Mia")
    assert (await move(mia, "conversation", mine, org_id)).status == 200

    page = await (await mia.get("/chat")).text()
    assert "Shared in Acme" in page
    # Olive's, read-only: the read-only view, no menu of actions; Mia's own stays in her list.
    assert space_group(page) == [(f"/shared/conversations/{launch}", "Launch checklist")]
    shared_item = page.split(f'data-space-conversation="{launch}"')[1].split("</li>")[0]
    assert api.user is not None
    assert "conv-menu" not in shared_item
    assert f'class="space-owner">{api.user["name"]}</small>' in shared_item
    assert f'data-conversation="{mine}"' in page and "Olive private chat" not in page
    assert (await mia.get(f"/shared/conversations/{launch}")).status == 200
    # Searching the sidebar by title searches the group too.
    found = await (await mia.get("/chat/sidebar?q=launch")).text()
    assert space_group(found) == [(f"/shared/conversations/{launch}", "Launch checklist")]
    assert space_group(await (await mia.get("/chat/sidebar?q=zebra")).text()) == []
    # Only the first page and not the archive.
    assert "Shared in" not in await (await mia.get("/chat/sidebar?archived=1")).text()
    # Olive sees her own in her list, not in a group of others'.
    assert space_group(await (await api.get("/chat")).text()) == [
        (f"/shared/conversations/{mine}", "Draft by Mia")
    ]
    assert "Shared in" not in await (await stranger.get("/chat")).text()

    # The latest five per space, and a way to the rest on the organisation's page.
    for n in range(5):
        later = await chat(api, f"Standup {n}")
        assert (await move(api, "conversation", later, org_id)).status == 200
    listed = space_group(await (await mia.get("/chat")).text())
    assert [title for _, title in listed] == [f"Standup {n}" for n in (4, 3, 2, 1, 0)]
    assert f'href="/organisations/{org_id}">All of Acme' in await (await mia.get("/chat")).text()
    # An archived one leaves the group (as it leaves the organisation's page).
    assert (await api.patch(f"/api/conversations/{later}", {"archived": True})).status == 200
    listed = space_group(await (await mia.get("/chat")).text())
    assert [title for _, title in listed][:1] == ["Standup 3"]

    assert mia.user is not None
    assert (await api.delete(f"/api/orgs/{org_id}/members/{mia.user['id']}")).status == 204
    assert "Shared in" not in await (await mia.get("/chat")).text()
    assert (await mia.get(f"/shared/conversations/{launch}")).status == 404
