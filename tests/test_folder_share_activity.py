"""A note's activity feed shows the shares of the folders above it: when a folder the note is in
(at any depth) is shared, its share changes role or is revoked, the feed of every live note
inside says so, naming the folder, with who did it and when, among the note's other events
newest first. The feed lists the folders the note is in now: a folder shared before the note
was moved into it shows its share, and a note moved out no longer shows it. Each reader sees
the events of the folders they may open (the owner all of them; someone a folder is shared with,
that folder and the folders inside it; someone only the note is shared with, none). Nobody
else's folder ever shows, and whoever cannot see the note gets 404 for its feed."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy.engine import Connection

from multinotes.keys import DB
from multinotes.migrations import alembic_config, installed_plugin_migrations, upgrade
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support import people

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

ann = people.ann
bob = people.bob
eve = people.eve
person = people.person

FOLDER_KINDS = ("folder_share", "folder_share_changed", "folder_unshare")


async def folder(api: ApiClient, name: str, parent_id: str | None = None) -> str:
    response = await api.post("/api/folders", {"name": name, "parent_id": parent_id})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def note(api: ApiClient, title: str, folder_id: str | None = None) -> str:
    response = await api.post(
        "/api/documents", {"title": title, "content": "text", "folder_id": folder_id}
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def share(api: ApiClient, object_type: str, object_id: str, **body: Any) -> dict[str, Any]:
    response = await api.post(
        "/api/shares", {"object_type": object_type, "object_id": object_id, **body}
    )
    data = await response.json()
    assert response.status == 201, data
    return dict(data)


async def feed(api: ApiClient, document_id: str) -> list[dict[str, Any]]:
    return list((await api.get_json(f"/api/documents/{document_id}/activity"))["items"])


def folder_events(items: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str]]:
    """(kind, folder name, recipient, role) of the folder events, newest first."""
    return [
        (i["kind"], i["detail"]["folder"], i["detail"]["email"], i["detail"]["role"])
        for i in items
        if i["kind"] in FOLDER_KINDS
    ]


async def test_sharing_a_folder_shows_in_the_feed_of_every_note_inside_it_at_any_depth(
    ann: ApiClient, bob: ApiClient
):
    work = await folder(ann, "Work")
    q3 = await folder(ann, "Q3", work)
    top = await note(ann, "Top", work)
    deep = await note(ann, "Deep", q3)
    outside = await note(ann, "Outside")
    shared = await share(ann, "folder", work, email="bob@example.com", role="editor")

    for reader in (ann, bob):
        for doc in (top, deep):
            items = await feed(reader, doc)
            assert [(i["kind"], i["actor"]) for i in items] == [
                ("folder_share", {"id": ann.user["id"], "name": "Ann Owner"}),
                ("created", {"id": ann.user["id"], "name": "Ann Owner"}),
            ]
            assert items[0]["detail"] == {
                "share_id": shared["id"],
                "public": False,
                "email": "bob@example.com",
                "role": "editor",
                "folder_id": work,
                "folder": "Work",
            }
            assert items[0]["at"] >= items[1]["at"]
    assert [i["kind"] for i in await feed(ann, outside)] == ["created"]

    # A note made in the folder later is covered by the share, and its feed says so.
    later = await note(ann, "Later", q3)
    assert [i["kind"] for i in await feed(bob, later)] == ["created", "folder_share"]


async def test_a_role_change_and_a_revoke_of_the_folder_share_are_in_the_feed(
    ann: ApiClient, bob: ApiClient
):
    work = await folder(ann, "Work")
    doc = await note(ann, "Plan", work)
    shared = await share(ann, "folder", work, email="bob@example.com")
    promoted = await ann.patch(f"/api/shares/{shared['id']}", {"role": "editor"})
    assert promoted.status == 200
    await share(ann, "folder", work, email="bob@example.com", role="viewer")  # shared again

    items = await feed(bob, doc)
    assert folder_events(items) == [
        ("folder_share_changed", "Work", "bob@example.com", "viewer"),
        ("folder_share_changed", "Work", "bob@example.com", "editor"),
        ("folder_share", "Work", "bob@example.com", "viewer"),
    ]
    assert [i["detail"]["previous_role"] for i in items[:2]] == ["editor", "viewer"]
    assert all(i["actor"]["name"] == "Ann Owner" for i in items)

    assert (await ann.delete(f"/api/shares/{shared['id']}")).status == 204
    items = await feed(ann, doc)
    assert [i["kind"] for i in items] == [
        "folder_unshare",
        "folder_share_changed",
        "folder_share_changed",
        "folder_share",
        "created",
    ]
    assert items[0]["detail"]["share_id"] == shared["id"]
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    # Bob no longer sees the note, so neither its feed.
    assert (await bob.get(f"/api/documents/{doc}/activity")).status == 404


async def test_folder_events_sit_among_the_notes_own_events_newest_first(
    ann: ApiClient, bob: ApiClient
):
    work = await folder(ann, "Work")
    doc = await note(ann, "Plan", work)
    await share(ann, "document", doc, email="bob@example.com")
    await share(ann, "folder", work, email="bob@example.com", role="editor")
    edited = await bob.patch(f"/api/documents/{doc}", {"version": 1, "content": "by bob"})
    assert edited.status == 200
    link = await share(ann, "folder", work, public=True)

    items = await feed(ann, doc)
    assert [i["kind"] for i in items] == [
        "folder_share",
        "edited",
        "folder_share",
        "share",
        "created",
    ]
    assert items[0]["detail"]["public"] is True and items[0]["detail"]["email"] is None
    assert items[0]["detail"]["share_id"] == link["id"]
    assert [
        i["kind"] for i in (await ann.get_json(f"/api/documents/{doc}/activity?limit=2"))["items"]
    ] == ["folder_share", "edited"]


async def test_in_nested_folders_each_reader_sees_the_shares_of_the_folders_they_can_open(
    ann: ApiClient, bob: ApiClient, make_client: Any
):
    cy = await person(make_client, "cy@example.com", "Cy Lead")
    dee = await person(make_client, "dee@example.com", "Dee Guest")
    work = await folder(ann, "Work")
    q3 = await folder(ann, "Q3", work)
    doc = await note(ann, "Deep", q3)
    await share(ann, "folder", work, email="cy@example.com", role="editor")
    await share(ann, "folder", q3, email="bob@example.com")
    await share(ann, "document", doc, email="dee@example.com")

    both = [
        ("folder_share", "Q3", "bob@example.com", "viewer"),
        ("folder_share", "Work", "cy@example.com", "editor"),
    ]
    # Ann owns both folders; Cy opens Work and so Q3 inside it.
    assert folder_events(await feed(ann, doc)) == both
    assert folder_events(await feed(cy, doc)) == both
    # Bob opens Q3 only: he does not learn the name of the folder above it or who has that.
    assert folder_events(await feed(bob, doc)) == both[:1]
    # Dee has the note alone: the owner's folders and their shares stay the owner's business.
    dees = await feed(dee, doc)
    assert folder_events(dees) == []
    assert [i["kind"] for i in dees] == ["share", "created"]


async def test_another_owners_folder_never_appears(ann: ApiClient, bob: ApiClient, eve: ApiClient):
    work = await folder(ann, "Work")
    doc = await note(ann, "Plan", work)
    await share(ann, "folder", work, email="bob@example.com")
    # Eve has a folder of the same name, shared with Bob and with Ann.
    eves_work = await folder(eve, "Work")
    await note(eve, "Eve's plan", eves_work)
    await share(eve, "folder", eves_work, email="bob@example.com", role="editor")
    await share(eve, "folder", eves_work, email="ann@example.com")

    for reader in (ann, bob):
        items = await feed(reader, doc)
        assert folder_events(items) == [("folder_share", "Work", "bob@example.com", "viewer")]
        assert {i["detail"].get("folder_id") for i in items if i["kind"] in FOLDER_KINDS} == {work}
        assert all(i["actor"]["name"] == "Ann Owner" for i in items)
    assert (await eve.get(f"/api/documents/{doc}/activity")).status == 404


async def test_moving_a_note_into_a_shared_folder_shows_its_share_and_moving_it_out_does_not(
    ann: ApiClient, bob: ApiClient
):
    work = await folder(ann, "Work")
    shared = await share(ann, "folder", work, email="bob@example.com")
    doc = await note(ann, "Loose note")
    assert (await bob.get(f"/api/documents/{doc}/activity")).status == 404

    moved = await ann.patch(f"/api/documents/{doc}", {"version": 1, "folder_id": work})
    assert moved.status == 200
    # The share predates the move, and it is what lets Bob see the note now: it is listed,
    # at the time it was made.
    items = await feed(bob, doc)
    assert [i["kind"] for i in items] == ["created", "folder_share"]
    assert items[1]["detail"]["share_id"] == shared["id"]
    assert items[1]["at"] == shared["created_at"]

    moved_out = await ann.patch(f"/api/documents/{doc}", {"version": 1, "folder_id": None})
    assert moved_out.status == 200
    assert [i["kind"] for i in await feed(ann, doc)] == ["created"]
    assert (await bob.get(f"/api/documents/{doc}/activity")).status == 404


async def test_the_renamed_folder_is_named_as_it_is_now(ann: ApiClient, bob: ApiClient):
    work = await folder(ann, "Work")
    doc = await note(ann, "Plan", work)
    await share(ann, "folder", work, email="bob@example.com")
    assert (await ann.patch(f"/api/folders/{work}", {"name": "Projects"})).status == 200
    assert folder_events(await feed(bob, doc)) == [
        ("folder_share", "Projects", "bob@example.com", "viewer")
    ]


async def test_the_collab_fragment_says_it_was_the_folder(ann: ApiClient, bob: ApiClient):
    work = await folder(ann, "R&D <team>")
    doc = await note(ann, "Plan", work)
    shared = await share(ann, "folder", work, email="bob@example.com", role="editor")
    name = "“R&amp;D &lt;team&gt;”"

    html = await (await bob.get(f"/documents/{doc}/collab")).text()
    assert f"Ann Owner</strong> shared the folder {name} with bob@example.com (can edit)" in html
    assert 'class="activity-folder_share"' in html and "<team>" not in html

    await ann.patch(f"/api/shares/{shared['id']}", {"role": "viewer"})
    link = await share(ann, "folder", work, public=True)
    html = await (await bob.get(f"/documents/{doc}/collab")).text()
    assert (
        f"Ann Owner</strong> changed access to the folder {name} for bob@example.com to "
        "“can view”" in html
    )
    assert f"Ann Owner</strong> created a public link to the folder {name}" in html

    await ann.delete(f"/api/shares/{link['id']}")
    await ann.delete(f"/api/shares/{shared['id']}")
    html = await (await ann.get(f"/documents/{doc}/collab")).text()
    assert f"Ann Owner</strong> stopped sharing the folder {name} with bob@example.com" in html
    assert f"Ann Owner</strong> revoked a public link to the folder {name}" in html
    assert (await bob.get(f"/documents/{doc}/collab")).status == 404


async def test_folder_shares_made_before_the_upgrade_are_in_the_feeds_after_it(
    ann: ApiClient, bob: ApiClient, make_client: Any
):
    """Migration 0015 records the folder shares that exist as they stand (earlier role changes
    were never recorded): a share when each was made, and a revoke when a revoked one was."""
    await person(make_client, "cy@example.com", "Cy Lead")
    work = await folder(ann, "Work")
    doc = await note(ann, "Plan", work)
    kept = await share(ann, "folder", work, email="bob@example.com")
    await ann.patch(f"/api/shares/{kept['id']}", {"role": "editor"})
    gone = await share(ann, "folder", work, email="cy@example.com")
    await ann.delete(f"/api/shares/{gone['id']}")
    other_note_share = await share(ann, "document", doc, email="cy@example.com")

    engine = ann.app[DB].engine

    def downgrade_to_before(connection: Connection) -> None:
        # The plugins' own revisions are in the database's history too (they ship tables).
        config = alembic_config(plugins=installed_plugin_migrations())
        config.attributes["connection"] = connection
        command.downgrade(config, "0012_sharing")

    # The app's own writers (its embedded scheduler's sweeps) wait while the schema changes
    # under it: one that wrote between the migration's first read and its DDL made SQLite
    # refuse the DDL at once ("database is locked", its deadlock avoidance, no busy wait).
    async with ann.app[DB].transaction():
        try:
            async with engine.begin() as connection:
                await connection.run_sync(downgrade_to_before)
        finally:
            await upgrade(engine)

    items = await feed(bob, doc)
    assert [(i["kind"], i["detail"].get("email")) for i in items] == [
        ("share", "cy@example.com"),  # the note's own events are untouched
        ("folder_unshare", "cy@example.com"),
        ("folder_share", "cy@example.com"),
        ("folder_share", "bob@example.com"),
        ("created", None),
    ]
    assert items[0]["detail"]["share_id"] == other_note_share["id"]
    by_share = {(i["kind"], i["detail"]["share_id"]): i for i in items[1:4]}
    assert by_share[("folder_share", kept["id"])]["detail"]["role"] == "editor"  # as it stands
    assert by_share[("folder_share", kept["id"])]["at"] == kept["created_at"]
    assert by_share[("folder_share", gone["id"])]["at"] == gone["created_at"]
    assert all(i["detail"]["folder"] == "Work" for i in items[1:4])
    assert all(i["actor"]["name"] == "Ann Owner" for i in items)
