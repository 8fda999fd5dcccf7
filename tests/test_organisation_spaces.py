"""Organisation spaces (issue #19, teams item 4): a note or folder moved into an organisation's
space (an explicit, audited action) is read and edited by every member, as in a Notion team
space; deleting it stays with the person who made it; the owner and admins may take any item
out. A removed member loses access at their next request. The switcher in the top bar sets the
space someone works in with a POST; loading it changes nothing."""

from __future__ import annotations

from typing import Any

from multinotes.organisations.workspace import WORKSPACE_COOKIE
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, token_in

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

ACCEPT = "/organisations/invitations/accept"


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def team(api: ApiClient, make_client: Any, mailbox: Mailbox) -> tuple[str, ApiClient]:
    """Olive's organisation (she is the instance's admin too) with Mia as a plain member."""
    await api.register_admin("olive@example.com")
    await api.mark_verified()
    org_id = str((await (await api.post("/api/orgs", {"name": "Acme"})).json())["id"])
    mia = await person(make_client, "mia@example.com")
    assert (
        await api.post(f"/api/orgs/{org_id}/invitations", {"email": "mia@example.com"})
    ).status == 201
    token = token_in(await mailbox.wait_for("mia@example.com", subject="invited you"), ACCEPT)
    assert (await mia.post("/api/orgs/invitations/accept", {"token": token})).status == 200
    return org_id, mia


async def note(client: ApiClient, title: str, folder_id: str | None = None) -> str:
    body: dict[str, Any] = {"title": title, "content": "Plans"}
    if folder_id:
        body["folder_id"] = folder_id
    response = await client.post("/api/documents", body)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def move(client: ApiClient, kind: str, item_id: str, org_id: str | None) -> Any:
    return await client.post(f"/api/{kind}s/{item_id}/move-space", {"org_id": org_id})


async def test_members_read_and_edit_what_the_organisation_space_holds(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    stranger = await person(make_client, "sam@example.com")
    plan = await note(api, "Roadmap")
    assert (await mia.get(f"/api/documents/{plan}")).status == 404  # personal until moved
    moved = await move(api, "document", plan, org_id)
    assert moved.status == 200, await moved.text()
    assert (await moved.json()) == {"id": plan, "organisation_id": org_id}

    assert (await mia.get_json(f"/api/documents/{plan}"))["title"] == "Roadmap"
    edited = await mia.patch(f"/api/documents/{plan}", {"version": 1, "title": "Roadmap 2027"})
    assert edited.status == 200, await edited.text()
    assert (await api.get_json(f"/api/documents/{plan}"))["title"] == "Roadmap 2027"
    assert (await mia.delete(f"/api/documents/{plan}")).status == 403  # deleting is Olive's
    assert (await stranger.get(f"/api/documents/{plan}")).status == 404
    space = await mia.get_json(f"/api/orgs/{org_id}/space")
    assert [d["title"] for d in space["documents"]] == ["Roadmap 2027"]
    assert (await stranger.get(f"/api/orgs/{org_id}/space")).status == 404
    page = await (await mia.get(f"/organisations/{org_id}")).text()
    assert f'href="/notes/{plan}"' in page
    assert (await mia.get(f"/notes/{plan}")).status == 200

    # A folder moves with what is inside it, and what is made in it later belongs too.
    folder = (await (await api.post("/api/folders", {"name": "Design"})).json())["id"]
    inside = await note(api, "Sketches", folder)
    assert (await move(api, "folder", folder, org_id)).status == 200
    later = await note(api, "Later", folder)
    listing = await mia.get_json(f"/api/folders/{folder}")
    assert {d["title"] for d in listing["documents"]} == {"Sketches", "Later"}
    for document_id in (inside, later):
        assert (await mia.get(f"/api/documents/{document_id}")).status == 200

    entries = await api.get_json("/api/admin/audit?action=document.space_moved")
    assert [(e["target_id"], e["details"]) for e in entries["entries"]] == [
        (plan, {"from": None, "to": org_id})
    ]


async def test_a_removed_member_loses_access_to_the_space_at_once(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    plan = await note(api, "Roadmap")
    assert (await move(api, "document", plan, org_id)).status == 200
    assert (await mia.get(f"/api/documents/{plan}")).status == 200
    assert mia.user is not None
    assert (await api.delete(f"/api/orgs/{org_id}/members/{mia.user['id']}")).status == 204
    assert (await mia.get(f"/api/documents/{plan}")).status == 404
    assert (await mia.patch(f"/api/documents/{plan}", {"version": 1, "title": "x"})).status == 404
    assert (await mia.get(f"/notes/{plan}")).status == 404
    assert (await mia.get(f"/api/orgs/{org_id}/space")).status == 404


async def test_who_moves_items_between_spaces(api: ApiClient, make_client: Any, mailbox: Mailbox):
    org_id, mia = await team(api, make_client, mailbox)
    olives = await note(api, "Olive's")
    assert (await move(api, "document", olives, org_id)).status == 200
    # A plain member cannot take someone else's note out of the space...
    refused = await move(mia, "document", olives, None)
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "organisation_admin_only"
    # ... but brings her own in and takes it out again; the owner may take it out too.
    mias = await note(mia, "Mia's")
    assert (await move(mia, "document", mias, org_id)).status == 200
    assert (await api.get(f"/api/documents/{mias}")).status == 200
    taken_out = await move(api, "document", mias, None)
    assert taken_out.status == 200 and (await taken_out.json())["organisation_id"] is None
    assert (await api.get(f"/api/documents/{mias}")).status == 404  # back in Mia's own space
    assert (await mia.get(f"/api/documents/{mias}")).status == 200
    # Nobody moves into an organisation they are not in, nor moves what they cannot see.
    other = str((await (await api.post("/api/orgs", {"name": "Other"})).json())["id"])
    assert (await move(mia, "document", mias, other)).status == 404
    stranger = await person(make_client, "sam@example.com")
    assert (await move(stranger, "document", olives, None)).status == 404
    bad = await move(mia, "document", mias, "no/such id")
    assert bad.status == 422 and "org_id" in (await bad.json())["error"]["fields"]
    # The organisation page's buttons do the same.
    page_move = await mia.client.post(
        f"/organisations/{org_id}/space/move",
        data={
            "csrf_token": mia.csrf or "",
            "kind": "document",
            "item_id": mias,
            "direction": "in",
        },
        allow_redirects=False,
    )
    assert page_move.status == 303
    assert (await api.get(f"/api/documents/{mias}")).status == 200
    # The page offers "Take out" for what each may take out: a member her own, the owner all.
    mias_page = await (await mia.get(f"/organisations/{org_id}")).text()
    assert 'aria-label="Take out Mia&#39;s"' in mias_page
    assert "Take out Olive" not in mias_page
    olives_page = await (await api.get(f"/organisations/{org_id}")).text()
    assert 'aria-label="Take out Mia&#39;s"' in olives_page
    assert 'aria-label="Take out Olive&#39;s"' in olives_page


async def test_the_switcher_sets_the_space_with_a_post_only(
    api: ApiClient, make_client: Any, mailbox: Mailbox
):
    org_id, mia = await team(api, make_client, mailbox)
    drawn = await (await mia.get("/workspace/switcher?next=/notes")).text()
    assert 'value="personal" selected' in drawn and "Acme" in drawn
    assert WORKSPACE_COOKIE not in {c.key for c in mia.client.session.cookie_jar}
    switched = await mia.client.post(
        "/workspace",
        data={"csrf_token": mia.csrf or "", "space": org_id, "next": "/notes"},
        allow_redirects=False,
    )
    assert switched.status == 303 and switched.headers["Location"] == "/notes"
    drawn = await (await mia.get("/workspace/switcher")).text()
    assert f'value="{org_id}" selected' in drawn
    stranger = await person(make_client, "sam@example.com")
    assert "workspace-switcher" not in await (await stranger.get("/workspace/switcher")).text()
    refused = await stranger.client.post(
        "/workspace",
        data={"csrf_token": stranger.csrf or "", "space": org_id},
        allow_redirects=False,
    )
    assert refused.status == 404
    back = await mia.client.post(
        "/workspace",
        data={"csrf_token": mia.csrf or "", "space": "personal"},
        allow_redirects=False,
    )
    assert back.status == 303
    assert 'value="personal" selected' in await (await mia.get("/workspace/switcher")).text()
