"""Comments on notes and the activity feed: everyone who can see a note comments on it (Markdown,
sanitised); authors edit and delete their comments and the owner may delete any; @mentions by
email or display name notify the people who can see the note (in the app and by mail) and
nobody else; the feed lists edits, shares, revokes, comments and restores, newest first, to
whoever can see the note."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.sharing.comments import find_mentions
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support import people
from tests.support.mail import Mailbox, text_of

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox


ann = people.ann
eve = people.eve
person = people.person


@pytest.fixture
async def bob(make_client: Any) -> ApiClient:
    return await person(make_client, "bob@example.com", "Bob Stone")


async def shared_note(ann: ApiClient, role: str = "viewer", title: str = "Plan") -> str:
    doc = (await (await ann.post("/api/documents", {"title": title, "content": "v1"})).json())["id"]
    response = await ann.post(
        "/api/shares",
        {"object_type": "document", "object_id": doc, "email": "bob@example.com", "role": role},
    )
    assert response.status == 201
    return str(doc)


async def comment(api: ApiClient, doc: str, body: str, status: int = 201) -> dict[str, Any]:
    response = await api.post(f"/api/documents/{doc}/comments", {"body": body})
    data = await response.json()
    assert response.status == status, data
    return dict(data)


async def test_a_viewer_comments_and_everyone_who_can_see_the_note_reads_it(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    doc = await shared_note(ann)
    mine = await comment(bob, doc, "Looks **good**. <script>alert(1)</script> [x](javascript:1)")
    assert mine["author"] == {"id": bob.user["id"], "name": "Bob Stone"}
    assert "<strong>good</strong>" in mine["html"]
    assert "<script" not in mine["html"] and 'href="javascript' not in mine["html"]
    assert mine["can_edit"] and mine["can_delete"] and mine["edited_at"] is None
    await comment(ann, doc, "Thanks!")

    as_ann = (await ann.get_json(f"/api/documents/{doc}/comments"))["comments"]
    assert [c["body"][:5] for c in as_ann] == ["Looks", "Thank"]
    assert [(c["can_edit"], c["can_delete"]) for c in as_ann] == [(False, True), (True, True)]
    as_bob = (await bob.get_json(f"/api/documents/{doc}/comments"))["comments"]
    assert [(c["can_edit"], c["can_delete"]) for c in as_bob] == [(True, True), (False, False)]

    for response in (
        await eve.get(f"/api/documents/{doc}/comments"),
        await eve.post(f"/api/documents/{doc}/comments", {"body": "let me in"}),
        await eve.patch(f"/api/comments/{mine['id']}", {"body": "mine"}),
        await eve.delete(f"/api/comments/{mine['id']}"),
    ):
        assert response.status == 404
    assert len((await ann.get_json(f"/api/documents/{doc}/comments"))["comments"]) == 2


async def test_authors_edit_their_comments_and_the_owner_may_delete_any(
    ann: ApiClient, bob: ApiClient, make_client: Any
):
    doc = await shared_note(ann)
    cy = await person(make_client, "cy@example.com", "Cy Viewer")
    await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "cy@example.com"}
    )
    bobs = await comment(bob, doc, "first thought")
    cys = await comment(cy, doc, "cy's thought")

    edited = await bob.patch(f"/api/comments/{bobs['id']}", {"body": "second thought"})
    data = await edited.json()
    assert edited.status == 200 and data["body"] == "second thought" and data["edited_at"]
    for response in (
        await ann.patch(f"/api/comments/{bobs['id']}", {"body": "owner rewrite"}),
        await cy.patch(f"/api/comments/{bobs['id']}", {"body": "cy rewrite"}),
        await cy.delete(f"/api/comments/{bobs['id']}"),
    ):
        assert response.status == 403
    assert (await cy.delete(f"/api/comments/{cys['id']}")).status == 204
    assert (await ann.delete(f"/api/comments/{bobs['id']}")).status == 204
    assert (await ann.get_json(f"/api/documents/{doc}/comments"))["comments"] == []
    assert (await bob.delete(f"/api/comments/{bobs['id']}")).status == 404


@pytest.mark.parametrize("body", ["", "   \n  ", "x" * 20_001])
async def test_a_blank_or_huge_comment_is_422(ann: ApiClient, body: str):
    doc = await shared_note(ann)
    response = await ann.post(f"/api/documents/{doc}/comments", {"body": body})
    assert response.status == 422 and "body" in (await response.json())["error"]["fields"]


async def test_losing_access_to_the_note_means_losing_its_comments(ann: ApiClient, bob: ApiClient):
    doc = await shared_note(ann)
    mine = await comment(bob, doc, "while I could")
    share = (await ann.get_json("/api/shares"))["shares"][0]["id"]
    await ann.delete(f"/api/shares/{share}")
    assert (await bob.get(f"/api/documents/{doc}/comments")).status == 404
    assert (await bob.patch(f"/api/comments/{mine['id']}", {"body": "edit"})).status == 404
    assert (await ann.get_json(f"/api/documents/{doc}/comments"))["comments"][0]["id"] == mine["id"]


# -- mentions -----------------------------------------------------------------------------------


def test_mentions_match_emails_and_whole_display_names_longest_first():
    people = [
        ("1", "Ann", "ann@example.com"),
        ("2", "Ann Lee", "lee@example.com"),
        ("3", "Bob", "bob@example.com"),
    ]
    assert find_mentions("cc @Ann Lee and @bob@example.com", people) == ["2", "3"]
    assert find_mentions("@ann, see this", people) == ["1"]
    assert find_mentions("@Anna and me@Ann and bob@example.com", people) == []
    assert find_mentions("@Bob? @BOB!", people) == ["3"]


async def test_mentioned_people_who_can_see_the_note_are_notified_and_no_one_else(
    ann: ApiClient, bob: ApiClient, eve: ApiClient, make_client: Any, mailbox: Mailbox
):
    team = (await (await ann.post("/api/folders", {"name": "Team"})).json())["id"]
    doc = (
        await (
            await ann.post(
                "/api/documents", {"title": "Roadmap", "content": "x", "folder_id": team}
            )
        ).json()
    )["id"]
    # Bob sees it through the folder, Cy through the note itself; Eve not at all; Dee only has
    # a share made before she signed up, waiting for her address to be verified.
    await ann.post(
        "/api/shares", {"object_type": "folder", "object_id": team, "email": "bob@example.com"}
    )
    cy = await person(make_client, "cy@example.com", "Cy Viewer")
    await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "cy@example.com"}
    )
    await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "dee@example.com"}
    )
    dee: ApiClient = await make_client()
    await dee.register_and_login("dee@example.com", name="Dee Unverified")

    said = await comment(
        ann,
        doc,
        "@Bob Stone and @cy@example.com: ready? (not @Eve Outsider, @Dee Unverified or @Ann Owner)",
    )
    assert said["mentions"] == [bob.user["id"], cy.user["id"], ann.user["id"]]

    for client in (bob, cy):
        notices = (await client.get_json("/api/notifications?unread=true"))["notifications"]
        mention = next(n for n in notices if n["kind"] == "mention")
        assert mention["title"] == "Roadmap" and mention["actor"]["name"] == "Ann Owner"
        assert mention["url"] == f"/notes/{doc}#comment-{said['id']}"
        assert mention["excerpt"].startswith("@Bob Stone and @cy@example.com: ready?")
    mail = await mailbox.wait_for("bob@example.com", subject="mentioned you")
    assert mail["Subject"] == 'Ann Owner mentioned you in "Roadmap"'
    assert "ready?" in text_of(mail) and f"/notes/{doc}#comment-" in text_of(mail)
    await mailbox.wait_for("cy@example.com", subject="mentioned you")

    await mailbox.settle()
    for outsider in (eve, dee):
        kinds = [
            n["kind"] for n in (await outsider.get_json("/api/notifications"))["notifications"]
        ]
        assert "mention" not in kinds
    for address in ("eve@example.com", "dee@example.com", "ann@example.com"):
        assert mailbox.to(address, "mentioned you") == []


async def test_an_edit_notifies_only_people_it_newly_mentions(
    ann: ApiClient, bob: ApiClient, make_client: Any, mailbox: Mailbox
):
    doc = await shared_note(ann)
    cy = await person(make_client, "cy@example.com", "Cy Viewer")
    await ann.post(
        "/api/shares", {"object_type": "document", "object_id": doc, "email": "cy@example.com"}
    )
    said = await comment(ann, doc, "@Bob Stone have a look")
    await ann.patch(f"/api/comments/{said['id']}", {"body": "@Bob Stone and @Cy Viewer, a look"})

    async def mentions(client: ApiClient) -> int:
        page = await client.get_json("/api/notifications")
        return sum(1 for n in page["notifications"] if n["kind"] == "mention")

    assert await mentions(bob) == 1 and await mentions(cy) == 1
    await mailbox.wait_for("cy@example.com", subject="mentioned you")
    await mailbox.settle()
    assert len(mailbox.to("bob@example.com", "mentioned you")) == 1


# -- the activity feed --------------------------------------------------------------------------


async def test_the_activity_feed_tells_who_did_what_newest_first(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    doc = await shared_note(ann, role="editor")
    await bob.patch(f"/api/documents/{doc}", {"version": 1, "content": "v2 by bob"})
    said = await comment(bob, doc, "I changed the intro")
    await ann.post(f"/api/documents/{doc}/versions/1/restore")
    link = await (
        await ann.post("/api/shares", {"object_type": "document", "object_id": doc, "public": True})
    ).json()
    await ann.delete(f"/api/shares/{link['id']}")
    await ann.delete(f"/api/documents/{doc}")
    await ann.post(f"/api/documents/{doc}/restore")

    feed = (await bob.get_json(f"/api/documents/{doc}/activity"))["items"]
    summary = [(i["kind"], i["actor"]["name"]) for i in feed]
    assert summary == [
        ("restore", "Ann Owner"),
        ("unshare", "Ann Owner"),
        ("share", "Ann Owner"),
        ("restore_version", "Ann Owner"),
        ("comment", "Bob Stone"),
        ("edited", "Bob Stone"),
        ("share", "Ann Owner"),
        ("created", "Ann Owner"),
    ]
    by_kind = {i["kind"]: i["detail"] for i in feed}  # the oldest of each kind wins
    assert by_kind["share"]["email"] == "bob@example.com" and by_kind["share"]["role"] == "editor"
    assert by_kind["unshare"]["public"] is True
    assert by_kind["restore_version"] == {"restored": 1, "version": 3}
    assert by_kind["comment"]["excerpt"] == "I changed the intro"
    assert by_kind["edited"]["version"] == 2
    times = [i["at"] for i in feed]
    assert times == sorted(times, reverse=True)

    await ann.delete(f"/api/comments/{said['id']}")
    feed = (await ann.get_json(f"/api/documents/{doc}/activity?limit=3"))["items"]
    assert len(feed) == 3
    comment_item = next(
        i
        for i in (await ann.get_json(f"/api/documents/{doc}/activity"))["items"]
        if i["kind"] == "comment"
    )
    assert comment_item["detail"]["excerpt"] is None  # deleted since
    assert (await eve.get(f"/api/documents/{doc}/activity")).status == 404
    assert (await ann.get(f"/api/documents/{doc}/activity?limit=0")).status == 422


# -- the note's comment fragment ----------------------------------------------------------------


async def test_the_collab_fragment_shows_comments_and_activity_and_takes_comments(
    ann: ApiClient, bob: ApiClient, eve: ApiClient
):
    doc = await shared_note(ann)
    html = await (await bob.get(f"/documents/{doc}/collab")).text()
    assert 'id="collab"' in html and "No comments yet." in html and "<html" not in html
    assert "<code>@Ann Owner</code>" in html  # who can be mentioned
    assert "Ann Owner</strong> shared it with bob@example.com" in html

    posted = await bob.client.post(
        f"/documents/{doc}/comments",
        data={"csrf_token": bob.csrf, "body": "From the **page**"},
        headers={"HX-Request": "true"},
    )
    html = await posted.text()
    assert posted.status == 200 and "From the <strong>page</strong>" in html
    assert "commented: “From the **page**”" in html
    # Without JavaScript the form posts and returns to the note.
    plain = await bob.client.post(
        f"/documents/{doc}/comments",
        data={"csrf_token": bob.csrf, "body": "plain post"},
        allow_redirects=False,
    )
    assert plain.status == 303 and plain.headers["Location"] == f"/notes/{doc}#note-collab"
    blank = await bob.client.post(
        f"/documents/{doc}/comments",
        data={"csrf_token": bob.csrf, "body": "  "},
        headers={"HX-Request": "true"},
    )
    assert "A comment cannot be empty." in await blank.text()

    comments = (await ann.get_json(f"/api/documents/{doc}/comments"))["comments"]
    deleted = await ann.client.post(
        f"/comments/{comments[0]['id']}/delete",
        data={"csrf_token": ann.csrf},
        headers={"HX-Request": "true"},
    )
    assert "From the <strong>page</strong>" not in await deleted.text()
    assert (await eve.get(f"/documents/{doc}/collab")).status == 404
    refused = await bob.client.post(
        f"/documents/{doc}/comments", data={"body": "no token"}, allow_redirects=False
    )
    assert refused.status == 403


async def test_restores_made_from_the_pages_or_with_a_folder_are_in_the_feed(
    ann: ApiClient, bob: ApiClient
):
    team = (await (await ann.post("/api/folders", {"name": "Team"})).json())["id"]
    doc = (
        await (
            await ann.post(
                "/api/documents", {"title": "In team", "content": "a", "folder_id": team}
            )
        ).json()
    )["id"]
    await ann.post(
        "/api/shares",
        {"object_type": "folder", "object_id": team, "email": "bob@example.com", "role": "editor"},
    )
    await bob.patch(f"/api/documents/{doc}", {"version": 1, "content": "a b"})

    # Bob restores version 1 from the history page; Ann trashes the folder and restores it.
    restored = await bob.client.post(
        f"/notes/{doc}/versions/1/restore", data={"csrf_token": bob.csrf}, allow_redirects=False
    )
    assert restored.status == 303
    assert (await ann.delete(f"/api/folders/{team}")).status == 204
    back = await ann.client.post(
        "/trash/restore",
        data={"csrf_token": ann.csrf, "item": f"folder:{team}"},
        allow_redirects=False,
    )
    assert back.status == 303

    feed = (await bob.get_json(f"/api/documents/{doc}/activity"))["items"]
    assert [(i["kind"], i["actor"]["name"]) for i in feed[:3]] == [
        ("restore", "Ann Owner"),
        ("restore_version", "Bob Stone"),
        ("edited", "Bob Stone"),
    ]
    assert feed[0]["detail"] == {"folder": "Team"}
    versions = (await ann.get_json(f"/api/documents/{doc}/versions"))["versions"]
    assert versions[0]["created_by"] == bob.user["id"]  # the restore is Bob's edit
