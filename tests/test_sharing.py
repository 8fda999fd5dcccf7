"""Sharing: an owner shares a note, folder, file or conversation with a person (viewer or
editor) or by public link. The server enforces every verb: viewers read, editors also edit a
note's title and content, nobody but the owner deletes, restores, moves, re-runs or shares, and
everyone else gets 404. A folder share covers what is inside it, present and future. Revoking and
expiry hold on the very next request. Public links work logged out, count views, can expire and
take a password, and a logged-in visitor can save a copy into their own workspace."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select, update

from multinotes.keys import DB
from multinotes.sharing.models import Notification, Share
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support import people
from tests.support.mail import Mailbox, text_of
from tests.support.sse import parse_sse

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


ann = people.ann
eve = people.eve
person = people.person
bob = people.bob


async def note(api: ApiClient, title: str = "Plan", content: str = "v1", **extra: Any) -> str:
    response = await api.post("/api/documents", {"title": title, "content": content, **extra})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def folder(api: ApiClient, name: str, parent_id: str | None = None) -> str:
    response = await api.post("/api/folders", {"name": name, "parent_id": parent_id})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def share(api: ApiClient, status: int = 201, **body: Any) -> dict[str, Any]:
    response = await api.post("/api/shares", body)
    data = await response.json()
    assert response.status == status, data
    return dict(data)


async def status_of(response: Any) -> int:
    await response.read()
    return int(response.status)


# -- a note shared with a person -----------------------------------------------------------------


async def test_a_viewer_reads_the_note_and_its_versions_but_changes_nothing(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    doc = await note(ann, "Plan", "# Plan\n\n<script>x</script>first")
    await ann.patch(f"/api/documents/{doc}", {"version": 1, "content": "# Plan\n\nsecond"})
    created = await share(ann, object_type="document", object_id=doc, email="BOB@example.com")
    assert len(created["id"]) == 32 and created["url"] is None
    assert created["role"] == "viewer" and created["status"] == "active"
    assert created["email"] == "bob@example.com" and created["recipient"]["name"] == "Bob Colleague"

    seen = await bob.get_json(f"/api/documents/{doc}")
    assert seen["title"] == "Plan" and seen["version"] == 2
    assert "<h1>Plan</h1>" in seen["html"] and "<script" not in seen["html"]
    versions = (await bob.get_json(f"/api/documents/{doc}/versions"))["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    first = await bob.get_json(f"/api/documents/{doc}/versions/1")
    assert "first" in first["content"] and "<script" not in first["html"]
    diff = await bob.get_json(f"/api/documents/{doc}/versions/2/diff")
    assert diff["from_version"] == 1

    refused = {
        "edit": await bob.patch(f"/api/documents/{doc}", {"version": 2, "content": "mine"}),
        "delete": await bob.delete(f"/api/documents/{doc}"),
        "restore a version": await bob.post(f"/api/documents/{doc}/versions/1/restore"),
        "duplicate": await bob.post(f"/api/documents/{doc}/duplicate"),
        "re-run": await bob.post(f"/api/documents/{doc}/rerun", {}),
        "re-share": await bob.post(
            "/api/shares", {"object_type": "document", "object_id": doc, "email": "x@example.com"}
        ),
    }
    assert {k: await status_of(r) for k, r in refused.items()} == dict.fromkeys(refused, 403)
    body = await refused["edit"].json()
    assert body["error"]["code"] == "editor_only"

    # Someone it is not shared with learns nothing, not even that it exists.
    for path in (f"/api/documents/{doc}", f"/api/documents/{doc}/versions"):
        assert (await eve.get(path)).status == 404
    assert await status_of(await eve.delete(f"/api/documents/{doc}")) == 404
    unchanged = await ann.get_json(f"/api/documents/{doc}")
    assert unchanged["version"] == 2 and "second" in unchanged["content"]


async def test_an_editor_edits_title_and_content_with_optimistic_concurrency_but_no_more(
    ann: ApiClient, bob: ApiClient
):
    home = await folder(ann, "Home")
    doc = await note(ann, "Draft", "one", folder_id=home)
    await share(ann, object_type="document", object_id=doc, email="bob@example.com", role="editor")

    response = await bob.patch(f"/api/documents/{doc}", {"version": 1, "content": "one two"})
    assert response.status == 200, await response.text()
    assert (await response.json())["version"] == 2
    # Ann's tab, still on version 1, is told what Bob saved.
    stale = await ann.patch(f"/api/documents/{doc}", {"version": 1, "content": "one three"})
    assert stale.status == 409
    assert (await stale.json())["error"]["current"]["content"] == "one two"
    versions = (await ann.get_json(f"/api/documents/{doc}/versions"))["versions"]
    assert versions[0]["created_by"] == bob.user["id"]  # the edit is Bob's, on Ann's note

    bob_folder = await folder(bob, "Bob's")
    moved = await bob.patch(f"/api/documents/{doc}", {"version": 2, "folder_id": bob_folder})
    assert moved.status == 403 and (await moved.json())["error"]["code"] == "owner_only"
    assert await status_of(await bob.delete(f"/api/documents/{doc}")) == 403
    assert await status_of(await bob.post(f"/api/documents/{doc}/rerun", {})) == 403
    # Restoring an old version is an edit: allowed, and it is Bob's too.
    restored = await bob.post(f"/api/documents/{doc}/versions/1/restore")
    assert restored.status == 200 and (await restored.json())["content"] == "one"
    versions = (await ann.get_json(f"/api/documents/{doc}/versions"))["versions"]
    assert versions[0]["version"] == 3 and versions[0]["created_by"] == bob.user["id"]
    reshare = await bob.post(
        "/api/shares",
        {"object_type": "document", "object_id": doc, "email": "eve@example.com"},
    )
    assert reshare.status == 403
    doc_now = await ann.get_json(f"/api/documents/{doc}")
    assert doc_now["folder_id"] == home and doc_now["version"] == 3
    assert (await ann.get_json("/api/shares"))["shares"][0]["email"] == "bob@example.com"


async def test_sharing_again_with_the_same_person_changes_the_role(ann: ApiClient, bob: ApiClient):
    doc = await note(ann)
    first = await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    again = await share(
        ann, object_type="document", object_id=doc, email="bob@example.com", role="editor"
    )
    assert again["id"] == first["id"] and again["role"] == "editor"
    assert len((await ann.get_json("/api/shares"))["shares"]) == 1
    assert (await bob.patch(f"/api/documents/{doc}", {"version": 1, "title": "T2"})).status == 200


# -- folders ------------------------------------------------------------------------------------


async def test_a_folder_share_covers_everything_inside_present_and_future(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    team = await folder(ann, "Team")
    specs = await folder(ann, "Specs", team)
    outside = await note(ann, "Private", "not shared")
    inside = await note(ann, "Spec A", "a", folder_id=specs)
    form = aiohttp.FormData()
    form.add_field("folder_id", specs)
    form.add_field("file", b"spec text", filename="spec.txt", content_type="text/plain")
    upload = await ann.post("/api/files", data=form)
    file_id = (await upload.json())["id"]
    await share(ann, object_type="folder", object_id=team, email="bob@example.com")

    listing = await bob.get_json(f"/api/folders/{team}")
    assert listing["role"] == "viewer" and listing["folder"]["name"] == "Team"
    assert [f["name"] for f in listing["folders"]] == ["Specs"]
    sub = await bob.get_json(f"/api/folders/{specs}")
    assert [d["title"] for d in sub["documents"]] == ["Spec A"]
    assert [f["name"] for f in sub["files"]] == ["spec.txt"]
    listed = await bob.get_json(f"/api/documents?folder_id={specs}")
    assert [d["title"] for d in listed["documents"]] == ["Spec A"]
    assert (await bob.get_json(f"/api/documents/{inside}"))["content"] == "a"
    assert await (await bob.get(f"/api/files/{file_id}/content")).read() == b"spec text"
    assert (await bob.get(f"/api/documents/{outside}")).status == 404

    # Added after sharing: visible too, with nothing to do for anyone.
    later = await note(ann, "Spec B", "b", folder_id=specs)
    assert (await bob.get_json(f"/api/documents/{later}"))["title"] == "Spec B"
    # Moved out of the shared folder: no longer visible, on the very next request.
    await ann.patch(f"/api/documents/{later}", {"version": 1, "folder_id": None})
    assert (await bob.get(f"/api/documents/{later}")).status == 404
    # Bob's own lists are his: the shared folder is not in his tree.
    assert (await bob.get_json("/api/folders"))["folders"] == []

    for path in (f"/api/folders/{team}", f"/api/documents/{inside}", f"/api/files/{file_id}"):
        assert (await eve.get(path)).status == 404
    assert (await eve.get(f"/api/documents?folder_id={team}")).status == 404
    # Nobody but Ann renames, moves or deletes the folder.
    assert await status_of(await bob.patch(f"/api/folders/{team}", {"name": "Mine"})) == 403
    assert await status_of(await bob.delete(f"/api/folders/{specs}")) == 403
    assert await status_of(await eve.delete(f"/api/folders/{specs}")) == 404
    assert await status_of(await bob.delete(f"/api/files/{file_id}")) == 403


async def test_an_editor_of_a_folder_edits_the_notes_inside(ann: ApiClient, bob: ApiClient):
    team = await folder(ann, "Team")
    doc = await note(ann, "Inside", "x", folder_id=team)
    await share(ann, object_type="folder", object_id=team, email="bob@example.com", role="editor")
    response = await bob.patch(f"/api/documents/{doc}", {"version": 1, "content": "x y"})
    assert response.status == 200
    assert (await bob.get_json(f"/api/folders/{team}"))["role"] == "editor"


async def test_a_trashed_note_or_folder_is_no_longer_visible_and_comes_back_on_restore(
    ann: ApiClient, bob: ApiClient
):
    team = await folder(ann, "Team")
    doc = await note(ann, "Inside", folder_id=team)
    await share(ann, object_type="folder", object_id=team, email="bob@example.com")
    assert (await ann.delete(f"/api/folders/{team}")).status == 204
    assert (await bob.get(f"/api/documents/{doc}")).status == 404
    assert (await bob.get_json("/api/shared-with-me"))["items"] == []
    assert (await ann.post(f"/api/folders/{team}/restore")).status == 200
    assert (await bob.get(f"/api/documents/{doc}")).status == 200


# -- revoking and expiry ------------------------------------------------------------------------


async def test_revoking_takes_effect_on_the_very_next_request(ann: ApiClient, bob: ApiClient):
    doc = await note(ann)
    created = await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    assert (await bob.get(f"/api/documents/{doc}")).status == 200
    assert (await ann.delete(f"/api/shares/{created['id']}")).status == 204
    assert (await bob.get(f"/api/documents/{doc}")).status == 404
    assert (await bob.get_json("/api/shared-with-me"))["items"] == []
    assert (await ann.get_json("/api/shares"))["shares"] == []
    # Gone means gone: revoking or changing it again finds nothing.
    assert (await ann.delete(f"/api/shares/{created['id']}")).status == 404
    assert (await ann.patch(f"/api/shares/{created['id']}", {"role": "editor"})).status == 404


async def test_only_the_sharer_changes_or_revokes_a_share(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    doc = await note(ann)
    created = await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    for client in (bob, eve):
        assert (await client.delete(f"/api/shares/{created['id']}")).status == 404
        assert (
            await client.patch(f"/api/shares/{created['id']}", {"role": "editor"})
        ).status == 404
    assert (await bob.get(f"/api/documents/{doc}")).status == 200


async def test_an_expired_share_grants_nothing_until_it_is_extended(ann: ApiClient, bob: ApiClient):
    doc = await note(ann)
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = await share(
        ann, object_type="document", object_id=doc, email="bob@example.com", expires_at=soon
    )
    assert created["expires_at"] is not None
    assert (await bob.get(f"/api/documents/{doc}")).status == 200
    async with ann.app[DB].transaction() as session:  # an hour passes
        await session.execute(
            update(Share)
            .where(Share.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await bob.get(f"/api/documents/{doc}")).status == 404
    listed = (await ann.get_json("/api/shares"))["shares"]
    assert listed[0]["status"] == "expired"
    response = await ann.patch(f"/api/shares/{created['id']}", {"expires_at": None})
    assert response.status == 200 and (await response.json())["status"] == "active"
    assert (await bob.get(f"/api/documents/{doc}")).status == 200


# -- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "ann@example.com"}, "email"),  # yourself
        ({}, "email"),  # neither a person nor public
        ({"email": "bob@example.com", "public": True}, "email"),  # both
        ({"email": "not an address"}, "email"),
        ({"public": True, "role": "editor"}, "role"),
        ({"email": "bob@example.com", "password": "secret-pass"}, "password"),
        ({"email": "bob@example.com", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"public": True, "password": "123"}, "password"),
        ({"email": "bob@example.com", "role": "owner"}, "role"),
        ({"email": "bob@example.com", "owner_id": "x"}, "owner_id"),
    ],
)
async def test_bad_share_requests_are_422_naming_the_field(
    ann: ApiClient, body: dict[str, Any], field: str
):
    doc = await note(ann)
    response = await ann.post("/api/shares", {"object_type": "document", "object_id": doc, **body})
    data = await response.json()
    assert response.status == 422, data
    assert field in data["error"]["fields"]
    assert (await ann.get_json("/api/shares"))["shares"] == []


async def test_files_and_conversations_are_shared_read_only(ann: ApiClient, bob: ApiClient):
    conversation = (await (await ann.post("/api/conversations", {"title": "Chat"})).json())["id"]
    response = await ann.post(
        "/api/shares",
        {
            "object_type": "conversation",
            "object_id": conversation,
            "email": "bob@example.com",
            "role": "editor",
        },
    )
    assert response.status == 422 and "role" in (await response.json())["error"]["fields"]


async def test_only_what_you_own_can_be_shared(ann: ApiClient, bob: ApiClient, eve: ApiClient):
    doc = await note(ann)
    for object_type in ("document", "folder", "file", "conversation"):
        response = await eve.post(
            "/api/shares",
            {"object_type": object_type, "object_id": doc, "email": "bob@example.com"},
        )
        assert response.status == 404, object_type
    response = await ann.post(
        "/api/shares", {"object_type": "document", "object_id": "0" * 32, "public": True}
    )
    assert response.status == 404


# -- people without an account yet -------------------------------------------------------------


async def test_a_share_with_an_unregistered_address_reaches_its_account_once_verified(
    ann: ApiClient, make_client: Any, mailbox: Mailbox
):
    doc = await note(ann, "Welcome pack")
    created = await share(ann, object_type="document", object_id=doc, email="cy@example.com")
    assert created["status"] == "pending" and created["recipient"] is None
    invite = await mailbox.wait_for("cy@example.com", subject="A note was shared with you")
    assert "create an account with this address (cy@example.com)" in text_of(invite)
    assert re.search(r"https?://\S+/register", text_of(invite))

    cy: ApiClient = await make_client()
    await cy.register_and_login("cy@example.com", name="Cy Newcomer")
    # Registering someone's address is not enough: the address must be proven first.
    assert (await cy.get(f"/api/documents/{doc}")).status == 404
    assert (await cy.get_json("/api/shared-with-me"))["items"] == []
    await cy.mark_verified()
    assert (await cy.get_json(f"/api/documents/{doc}"))["title"] == "Welcome pack"
    [item] = (await cy.get_json("/api/shared-with-me"))["items"]
    assert item["title"] == "Welcome pack" and item["owner"]["name"] == "Ann Owner"
    listed = (await ann.get_json("/api/shares"))["shares"][0]
    assert listed["status"] == "active" and listed["recipient"]["name"] == "Cy Newcomer"


# -- the lists ----------------------------------------------------------------------------------


async def test_shared_with_me_and_shared_by_me(ann: ApiClient, bob: ApiClient, eve: ApiClient):
    doc = await note(ann, "Roadmap")
    team = await folder(ann, "Team")
    await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    await share(ann, object_type="folder", object_id=team, email="bob@example.com", role="editor")
    await share(ann, object_type="document", object_id=doc, public=True)

    items = (await bob.get_json("/api/shared-with-me"))["items"]
    assert [(i["object_type"], i["title"], i["role"]) for i in items] == [
        ("folder", "Team", "editor"),
        ("document", "Roadmap", "viewer"),
    ]
    assert items[1]["url"] == f"/notes/{doc}" and items[0]["owner"]["email"] == "ann@example.com"
    assert (await eve.get_json("/api/shared-with-me"))["items"] == []
    assert (await ann.get_json("/api/shared-with-me"))["items"] == []

    mine = (await ann.get_json("/api/shares"))["shares"]
    assert [(s["object_type"], s["public"], s["email"]) for s in mine] == [
        ("document", True, None),
        ("folder", False, "bob@example.com"),
        ("document", False, "bob@example.com"),
    ]
    of_doc = await ann.get_json(f"/api/shares?object_type=document&object_id={doc}")
    assert len(of_doc["shares"]) == 2
    assert (await bob.get(f"/api/shares?object_type=document&object_id={doc}")).status == 403
    assert (await eve.get(f"/api/shares?object_type=document&object_id={doc}")).status == 404
    assert (await bob.get_json("/api/shares"))["shares"] == []


# -- files and conversations --------------------------------------------------------------------


async def test_a_shared_file_is_readable_not_changeable(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    form = aiohttp.FormData()
    form.add_field("file", b"hello file", filename="hello.txt", content_type="text/plain")
    file_id = (await (await ann.post("/api/files", data=form)).json())["id"]
    await share(ann, object_type="file", object_id=file_id, email="bob@example.com")
    assert (await bob.get_json(f"/api/files/{file_id}"))["name"] == "hello.txt"
    assert await (await bob.get(f"/api/files/{file_id}/content")).read() == b"hello file"
    assert (await bob.get(f"/api/files/{file_id}/preview")).status == 200
    assert await status_of(await bob.patch(f"/api/files/{file_id}", {"name": "b.txt"})) == 403
    assert await status_of(await bob.delete(f"/api/files/{file_id}")) == 403
    assert (await eve.get(f"/api/files/{file_id}/content")).status == 404


async def test_a_shared_conversation_is_readable_with_its_media(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    assert (await ann.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    conversation = (await (await ann.post("/api/conversations", {})).json())["id"]
    streamed = await ann.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "teal", "models": ["demo/swatch", "demo/echo"]},
    )
    media = next(d for name, d in parse_sse(await streamed.text()) if name == "media")
    await share(ann, object_type="conversation", object_id=conversation, email="bob@example.com")

    tree = await bob.get_json(f"/api/conversations/{conversation}")
    assert {m["role"] for m in tree["messages"]} == {"user", "assistant"}
    assert (await bob.get(f"/api/media/{media['id']}")).status == 200
    assert (await eve.get(f"/api/media/{media['id']}")).status == 404
    for response in (
        await bob.patch(f"/api/conversations/{conversation}", {"title": "Mine"}),
        await bob.delete(f"/api/conversations/{conversation}"),
        await bob.post(
            f"/api/conversations/{conversation}/messages",
            {"content": "hi", "models": ["demo/echo"]},
        ),
    ):
        assert await status_of(response) == 403
    assert (await eve.get(f"/api/conversations/{conversation}")).status == 404


# -- public links -------------------------------------------------------------------------------


def token_of(url: str) -> str:
    match = re.search(r"/s/([A-Za-z0-9_-]+)$", url)
    assert match, url
    return match.group(1)


async def anonymous(make_client: Any) -> ApiClient:
    return await make_client()


async def test_a_public_link_shows_the_note_to_anyone_and_counts_views(
    ann: ApiClient, make_client: Any
):
    doc = await note(ann, "Launch plan", "# Launch\n\n**soon** <script>alert(1)</script>")
    created = await share(ann, object_type="document", object_id=doc, public=True)
    assert created["public"] and created["url"].startswith("http")
    assert created["email"] is None and created["role"] == "viewer"
    path = f"/s/{token_of(created['url'])}"

    visitor = await anonymous(make_client)
    for _ in range(2):
        response = await visitor.get(path)
        html = await response.text()
        assert response.status == 200
        assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
        assert '<meta name="robots" content="noindex, nofollow">' in html
        assert "Launch plan" in html and "<strong>soon</strong>" in html
        assert "<script>alert(1)" not in html
        assert "Log in</a> to save a copy" in html
    assert (await visitor.request("HEAD", path)).status == 200  # a link preview: not a view
    [listed] = (await ann.get_json("/api/shares"))["shares"]
    assert listed["view_count"] == 2 and listed["last_viewed_at"] is not None
    # The token is never shown again; only its hash is kept.
    assert "url" not in listed and token_of(created["url"]) not in str(listed)
    # A made-up token names nothing.
    assert (await visitor.get("/s/" + "x" * 43)).status == 404


async def test_a_revoked_or_expired_public_link_answers_410(ann: ApiClient, make_client: Any):
    doc = await note(ann, "Short-lived")
    revoked = await share(ann, object_type="document", object_id=doc, public=True)
    expiring = await share(
        ann,
        object_type="document",
        object_id=doc,
        public=True,
        expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat(),
    )
    visitor = await anonymous(make_client)
    revoked_path = f"/s/{token_of(revoked['url'])}"
    expiring_path = f"/s/{token_of(expiring['url'])}"
    assert (await visitor.get(revoked_path)).status == 200
    assert (await ann.delete(f"/api/shares/{revoked['id']}")).status == 204
    response = await visitor.get(revoked_path)
    assert response.status == 410 and "no longer works" in await response.text()

    assert (await visitor.get(expiring_path)).status == 200
    async with ann.app[DB].transaction() as session:
        await session.execute(
            update(Share)
            .where(Share.id == expiring["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert (await visitor.get(expiring_path)).status == 410
    # A trashed note takes its links with it (404: there is nothing to show).
    live = await share(ann, object_type="document", object_id=doc, public=True)
    await ann.delete(f"/api/documents/{doc}")
    assert (await visitor.get(f"/s/{token_of(live['url'])}")).status == 404


async def test_a_password_protected_link_asks_for_it_and_limits_guesses(
    ann: ApiClient, make_client: Any
):
    doc = await note(ann, "Secret plan", "the content")
    created = await share(
        ann, object_type="document", object_id=doc, public=True, password="open sesame"
    )
    assert created["has_password"]
    path = f"/s/{token_of(created['url'])}"
    visitor = await anonymous(make_client)
    locked = await visitor.get(path)
    html = await locked.text()
    assert locked.status == 200 and "the content" not in html and 'name="password"' in html

    wrong = await visitor.client.post(f"{path}/unlock", data={"password": "guess"})
    assert wrong.status == 403 and "not right" in await wrong.text()
    right = await visitor.client.post(
        f"{path}/unlock", data={"password": "open sesame"}, allow_redirects=False
    )
    assert right.status == 303 and right.headers["Location"] == path
    opened = await visitor.get(path)
    assert "the content" in await opened.text()
    [listed] = (await ann.get_json("/api/shares"))["shares"]
    assert listed["view_count"] == 1  # the password form is not a view

    # A new password locks everyone out again.
    await ann.patch(f"/api/shares/{created['id']}", {"password": "another one"})
    assert "the content" not in await (await visitor.get(path)).text()

    # Guessing is rate limited per link, whoever guesses.
    guesser = await anonymous(make_client)
    statuses = [
        (await guesser.client.post(f"{path}/unlock", data={"password": f"guess {i}"})).status
        for i in range(12)
    ]
    assert 429 in statuses and statuses[0] == 403


async def test_a_cross_site_password_post_is_refused(ann: ApiClient, make_client: Any):
    doc = await note(ann)
    created = await share(
        ann, object_type="document", object_id=doc, public=True, password="pw1234"
    )
    visitor = await anonymous(make_client)
    response = await visitor.client.post(
        f"/s/{token_of(created['url'])}/unlock",
        data={"password": "pw1234"},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert response.status == 403


async def test_a_public_folder_lists_its_notes_and_opens_only_those(
    ann: ApiClient, make_client: Any
):
    team = await folder(ann, "Team")
    sub = await folder(ann, "Sub", team)
    inside = await note(ann, "Inside note", "in here", folder_id=sub)
    outside = await note(ann, "Outside note", "not here")
    form = aiohttp.FormData()
    form.add_field("folder_id", team)
    form.add_field(
        "file",
        b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        filename="doc.pdf",
        content_type="application/pdf",
    )
    pdf = (await (await ann.post("/api/files", data=form)).json())["id"]
    created = await share(ann, object_type="folder", object_id=team, public=True)
    base = f"/s/{token_of(created['url'])}"
    visitor = await anonymous(make_client)

    root = await (await visitor.get(base)).text()
    assert "Team" in root and f"{base}/folders/{sub}" in root and "doc.pdf" in root
    listing = await (await visitor.get(f"{base}/folders/{sub}")).text()
    assert f"{base}/documents/{inside}" in listing
    opened = await visitor.get(f"{base}/documents/{inside}")
    assert opened.status == 200 and "in here" in await opened.text()
    assert (await visitor.get(f"{base}/documents/{outside}")).status == 404
    assert (await visitor.get(f"{base}/folders/{'0' * 32}")).status == 404
    download = await visitor.get(f"{base}/files/{pdf}?download=1")
    assert download.status == 200
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert (await download.read()).startswith(b"%PDF")
    # Only the landing page counts as a view.
    assert (await ann.get_json("/api/shares"))["shares"][0]["view_count"] == 1


async def test_a_public_file_link_downloads_as_an_attachment_when_it_could_run(
    ann: ApiClient, make_client: Any
):
    form = aiohttp.FormData()
    form.add_field("file", b"plain words", filename="words.txt", content_type="text/plain")
    file_id = (await (await ann.post("/api/files", data=form)).json())["id"]
    created = await share(ann, object_type="file", object_id=file_id, public=True)
    base = f"/s/{token_of(created['url'])}"
    visitor = await anonymous(make_client)
    assert "words.txt" in await (await visitor.get(base)).text()
    content = await visitor.get(f"{base}/files/{file_id}")
    assert await content.read() == b"plain words"
    assert content.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in content.headers["Content-Security-Policy"]
    forced = await visitor.get(f"{base}/files/{file_id}?download=1")
    assert forced.headers["Content-Disposition"].startswith("attachment")


async def test_a_public_conversation_is_a_read_only_thread(ann: ApiClient, make_client: Any):
    assert (await ann.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    conversation = (await (await ann.post("/api/conversations", {"title": "Colours"})).json())["id"]
    streamed = await ann.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "name a teal thing", "models": ["demo/echo", "demo/swatch"]},
    )
    media = next(d for name, d in parse_sse(await streamed.text()) if name == "media")
    created = await share(ann, object_type="conversation", object_id=conversation, public=True)
    base = f"/s/{token_of(created['url'])}"
    visitor = await anonymous(make_client)
    html = await (await visitor.get(base)).text()
    assert "Colours" in html and "name a teal thing" in html and "demo/echo" in html
    assert f"{base}/media/{media['id']}" in html
    assert (await visitor.get(f"{base}/media/{media['id']}")).status == 200
    assert "Save a copy" not in html and 'action="/api' not in html


async def test_a_logged_in_visitor_saves_a_copy_of_a_note_or_folder(
    ann: ApiClient, bob: ApiClient, make_client: Any
):
    doc = await note(ann, "Recipe", "flour, water")
    note_link = await share(ann, object_type="document", object_id=doc, public=True)
    note_base = f"/s/{token_of(note_link['url'])}"
    copied = await bob.client.post(
        f"{note_base}/copy", data={"csrf_token": bob.csrf}, allow_redirects=False
    )
    assert copied.status == 303
    new_id = copied.headers["Location"].rsplit("/", 1)[1]
    mine = await bob.get_json(f"/api/documents/{new_id}")
    assert mine["title"] == "Recipe" and mine["content"] == "flour, water"
    assert mine["folder_id"] is None and mine["version"] == 1
    # The copy is Bob's own: changing it leaves Ann's note alone.
    await bob.patch(f"/api/documents/{new_id}", {"version": 1, "content": "mine now"})
    assert (await ann.get_json(f"/api/documents/{doc}"))["content"] == "flour, water"

    team = await folder(ann, "Kitchen")
    sub = await folder(ann, "Bread", team)
    await note(ann, "Sourdough", "starter", folder_id=sub)
    await note(ann, "Menu", "list", folder_id=team)
    await folder(bob, "Kitchen")  # Bob already has one: the copy gets another name
    folder_link = await share(ann, object_type="folder", object_id=team, public=True)
    copied = await bob.client.post(
        f"/s/{token_of(folder_link['url'])}/copy",
        data={"csrf_token": bob.csrf},
        allow_redirects=False,
    )
    assert copied.status == 303 and "/notes?folder=" in copied.headers["Location"]
    tree = {f["name"]: f for f in (await bob.get_json("/api/folders"))["folders"]}
    assert set(tree) == {"Kitchen", "Kitchen (copy)", "Bread"}
    assert tree["Bread"]["parent_id"] == tree["Kitchen (copy)"]["id"]
    titles = {d["title"] for d in (await bob.get_json("/api/documents"))["documents"]}
    assert {"Sourdough", "Menu", "Recipe"} <= titles

    # Anonymous visitors are asked to log in; a cross-site post is refused.
    visitor = await anonymous(make_client)
    response = await visitor.client.post(f"{note_base}/copy", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/login")
    response = await bob.client.post(f"{note_base}/copy", data={}, allow_redirects=False)
    assert response.status == 403  # no CSRF token


# -- pages --------------------------------------------------------------------------------------


async def test_the_share_dialog_shares_and_lists_and_revokes(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    doc = await note(ann, "Dialog note")
    url = f"/share/dialog?object_type=document&object_id={doc}"
    fragment = await ann.get(url, headers={"HX-Request": "true"})
    html = await fragment.text()
    assert fragment.status == 200 and html.lstrip().startswith("<dialog")
    assert "Share “Dialog note”" in html and "Only you can see this note" in html
    assert "<html" not in html
    page = await (await ann.get(url)).text()
    assert "<html" in page and 'id="share-dialog"' in page  # works without JavaScript

    form = {
        "csrf_token": ann.csrf,
        "object_type": "document",
        "object_id": doc,
        "kind": "person",
        "email": "bob@example.com",
        "role": "editor",
    }
    shared = await ann.client.post("/share/dialog", data=form, headers={"HX-Request": "true"})
    html = await shared.text()
    assert shared.status == 200 and "Shared with bob@example.com." in html
    assert "Bob Colleague" in html
    assert (await bob.get(f"/api/documents/{doc}")).status == 200

    bad = await ann.client.post(
        "/share/dialog", data={**form, "email": "ann@example.com"}, headers={"HX-Request": "true"}
    )
    assert bad.status == 200 and "this is you" in await bad.text()
    bad_page = await ann.client.post("/share/dialog", data={**form, "email": "ann@example.com"})
    assert bad_page.status == 422

    link = await ann.client.post(
        "/share/dialog",
        data={**form, "kind": "public", "email": "", "role": "viewer", "expires": "2999-01-01"},
        headers={"HX-Request": "true"},
    )
    html = await link.text()
    new_link = re.search(r'id="share-new-link" type="text" readonly value="([^"]+)"', html)
    assert new_link and "/s/" in new_link.group(1)
    assert "until <time" in html

    shares = (await ann.get_json("/api/shares"))["shares"]
    person = next(s for s in shares if not s["public"])
    revoked = await ann.client.post(
        f"/share/{person['id']}/revoke",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
    )
    assert "bob@example.com removed." in await revoked.text()
    assert (await bob.get(f"/api/documents/{doc}")).status == 404

    # Nobody else opens the dialog, and the person it is shared with cannot share it further.
    assert (await eve.get(url)).status == 404
    await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    assert (await bob.get(url)).status == 403


async def test_shared_pages_list_and_open_what_was_shared(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    assert (await ann.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    team = await folder(ann, "Team")
    doc = await note(ann, "Team note", folder_id=team)
    conversation = (await (await ann.post("/api/conversations", {"title": "Talk"})).json())["id"]
    await ann.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "hello there", "models": ["demo/echo"]},
    )
    form = aiohttp.FormData()
    form.add_field("file", b"notes", filename="n.txt", content_type="text/plain")
    file_id = (await (await ann.post("/api/files", data=form)).json())["id"]
    for object_type, object_id in (
        ("folder", team),
        ("conversation", conversation),
        ("file", file_id),
    ):
        await share(ann, object_type=object_type, object_id=object_id, email="bob@example.com")

    with_me = await (await bob.get("/shared")).text()
    assert f'href="/shared/folders/{team}"' in with_me
    assert f'href="/shared/conversations/{conversation}"' in with_me
    assert f'href="/shared/files/{file_id}"' in with_me
    folder_page = await (await bob.get(f"/shared/folders/{team}")).text()
    assert f'href="/notes/{doc}"' in folder_page and "Shared by Ann Owner" in folder_page
    talk = await (await bob.get(f"/shared/conversations/{conversation}")).text()
    assert "hello there" in talk and "demo/echo" in talk
    assert "n.txt" in await (await bob.get(f"/shared/files/{file_id}")).text()
    by_me = await (await ann.get("/shared?tab=by-me")).text()
    assert by_me.count("bob@example.com") >= 3 and "Stop sharing" in by_me
    for path in (
        f"/shared/folders/{team}",
        f"/shared/conversations/{conversation}",
        f"/shared/files/{file_id}",
    ):
        assert (await eve.get(path)).status == 404
    empty = await (await eve.get("/shared")).text()
    assert "Nothing is shared with you yet." in empty


async def test_a_shared_note_opens_in_the_note_page_read_only_or_editable(
    ann: ApiClient, bob: ApiClient, eve: ApiClient, make_client: Any
):
    doc = await note(ann, "Page note", "# Heading")
    await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    viewer = await bob.get(f"/notes/{doc}")
    html = await viewer.text()
    assert viewer.status == 200 and "Page note" in html
    assert 'data-can-edit="false"' in html and "Read only" in html
    assert f'hx-get="/documents/{doc}/collab"' in html  # comments and activity are embedded
    assert f"object_id={doc}" not in html  # no share button for someone it is shared with

    cy = await person(make_client, "cy@example.com", "Cy Editor")
    await share(ann, object_type="document", object_id=doc, email="cy@example.com", role="editor")
    editor = await (await cy.get(f"/notes/{doc}")).text()
    assert 'data-can-edit="true"' in editor
    owner = await (await ann.get(f"/notes/{doc}")).text()
    assert f"/share/dialog?object_type=document&amp;object_id={doc}" in owner
    assert (await eve.get(f"/notes/{doc}")).status == 404


async def test_deleting_an_account_takes_its_shares_and_comments_and_leaves_others_intact(
    ann: ApiClient, bob: ApiClient, make_client: Any
):
    from multinotes.privacy import deletion
    from multinotes.testing import DEFAULT_PASSWORD

    doc = await note(ann, "Ann's")
    await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    await ann.post(f"/api/documents/{doc}/comments", {"body": "ann's comment"})
    await bob.post(f"/api/documents/{doc}/comments", {"body": "bob's comment"})
    bobs_doc = await note(bob, "Bob's")
    await share(bob, object_type="document", object_id=bobs_doc, email="ann@example.com")
    cy = await person(make_client, "cy@example.com", "Cy")
    cys_doc = await note(cy, "Cy's")
    await share(cy, object_type="document", object_id=cys_doc, email="ann@example.com")
    await ann.post(f"/api/documents/{cys_doc}/comments", {"body": "ann on cy's"})

    # Bob leaves: his comment and his shares go; what he did stays in the feed, unnamed.
    assert (await bob.delete("/api/me", json={"password": DEFAULT_PASSWORD})).status == 202
    assert await deletion.hard_delete(bob.app, bob.user["id"])
    comments = (await ann.get_json(f"/api/documents/{doc}/comments"))["comments"]
    assert [c["body"] for c in comments] == ["ann's comment"]
    assert (await ann.get_json("/api/shares"))["shares"] == []  # the share with Bob went too
    assert [i["title"] for i in (await ann.get_json("/api/shared-with-me"))["items"]] == ["Cy's"]
    feed = (await ann.get_json(f"/api/documents/{doc}/activity"))["items"]
    [bobs] = [i for i in feed if i["kind"] == "comment" and i["actor"] is None]
    assert bobs["detail"]["excerpt"] is None  # his comment went with him
    notices = (await ann.get_json("/api/notifications"))["notifications"]
    assert [n["actor"]["name"] for n in notices] == ["Cy", "Bob Colleague"]  # kept, by name

    # Cy leaves: her note goes, with Ann's comment on it and her share with Ann.
    assert (await cy.delete("/api/me", json={"password": DEFAULT_PASSWORD})).status == 202
    assert await deletion.hard_delete(cy.app, cy.user["id"])
    assert (await ann.get_json("/api/shared-with-me"))["items"] == []
    assert (await ann.get(f"/api/documents/{cys_doc}")).status == 404
    assert (await ann.get_json(f"/api/documents/{doc}/comments"))["comments"][0]["body"] == (
        "ann's comment"
    )


async def test_shares_of_what_is_gone_for_good_are_purged_by_a_scheduled_task(
    ann: ApiClient, bob: ApiClient
):
    from multinotes.keys import TASKS
    from multinotes.sharing.tasks import purge_stale_shares

    assert "core.purge_stale_shares" in ann.app[TASKS].names()
    kept = await note(ann, "Kept")
    trashed = await note(ann, "Trashed")
    form = aiohttp.FormData()
    form.add_field("file", b"bytes", filename="gone.txt", content_type="text/plain")
    file_id = (await (await ann.post("/api/files", data=form)).json())["id"]
    for object_type, object_id in (("document", kept), ("document", trashed), ("file", file_id)):
        await share(ann, object_type=object_type, object_id=object_id, email="bob@example.com")
    old = await share(ann, object_type="document", object_id=kept, public=True)
    await ann.delete(f"/api/shares/{old['id']}")
    await ann.delete(f"/api/documents/{trashed}")
    await ann.delete(f"/api/files/{file_id}")

    assert await purge_stale_shares(ann.app) == 1  # the file's; the trashed note may come back
    async with ann.app[DB].transaction() as session:  # a month passes
        await session.execute(
            update(Share)
            .where(Share.id == old["id"])
            .values(revoked_at=datetime.now(UTC) - timedelta(days=31))
        )
    assert await purge_stale_shares(ann.app) == 1
    assert (await ann.post(f"/api/documents/{trashed}/restore")).status == 200
    titles = {i["title"] for i in (await bob.get_json("/api/shared-with-me"))["items"]}
    assert titles == {"Kept", "Trashed"}


# -- abuse --------------------------------------------------------------------------------------


async def test_sharing_with_people_needs_a_verified_address_where_the_install_requires_one(
    ann: ApiClient, make_client: Any
):
    from multinotes.keys import SETTINGS

    fresh: ApiClient = await make_client()
    await fresh.register_and_login("fresh@example.com", name="Fresh")
    doc = await note(fresh, "Mine")
    response = await fresh.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "x@example.com"}
    )
    if fresh.app[SETTINGS].requires_email_verification:  # production mode's default
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "email_unverified"
    else:
        assert response.status == 201
    # A public link mails nobody: no verified address needed.
    link = await fresh.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "public": True}
    )
    assert link.status == 201


async def test_sharing_with_people_is_limited_per_hour(
    ann: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    from limits import RateLimitItemPerHour

    from multinotes.sharing import actions as share_actions

    monkeypatch.setattr(share_actions, "PERSON_SHARES_PER_HOUR", RateLimitItemPerHour(2))
    doc = await note(ann)
    for i in range(2):
        await share(ann, object_type="document", object_id=doc, email=f"p{i}@example.com")
    response = await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "p3@example.com"}
    )
    assert response.status == 429 and "Retry-After" in response.headers
    assert len((await ann.get_json("/api/shares"))["shares"]) == 2


async def test_a_blocked_account_is_not_notified_or_mailed(
    ann: ApiClient, bob: ApiClient, mailbox: Mailbox
):
    blocked = await ann.patch(f"/api/admin/users/{bob.user['id']}", {"is_active": False})
    assert blocked.status == 200
    doc = await note(ann, "Quiet")
    await share(ann, object_type="document", object_id=doc, email="bob@example.com")
    await mailbox.settle()
    assert mailbox.to("bob@example.com", "shared") == []
    async with ann.app[DB].read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == bob.user["id"])
        )
    assert count == 0
