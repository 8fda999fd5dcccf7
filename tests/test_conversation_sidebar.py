"""Managing conversations from the chat sidebar: pin (pinned ones are listed on their own, first),
archive (archived ones leave the list and have their own), rename — all with one PATCH, only by
the owner."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, update

from multinotes.chat.models import Conversation
from multinotes.keys import DB
from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, scripted_plugins


@pytest.fixture
def plugins() -> Any:
    return scripted_plugins({"script/a": Script(chunks=["a"])})


async def new(api: ApiClient, title: str) -> str:
    response = await api.post("/api/conversations", {"title": title})
    assert response.status == 201
    body = await response.json()
    assert body["pinned"] is False and body["archived"] is False
    return str(body["id"])


async def titles(api: ApiClient, query: str = "") -> list[str]:
    page = await api.get_json(f"/api/conversations{query}")
    return [c["title"] for c in page["conversations"]]


async def test_a_pinned_conversation_is_listed_with_the_pinned_ones(user: ApiClient) -> None:
    first = await new(user, "First")
    await new(user, "Second")
    answer = await user.patch(f"/api/conversations/{first}", {"pinned": True})
    assert answer.status == 200
    body = await answer.json()
    assert body["pinned"] is True and body["title"] == "First"
    assert await titles(user, "?pinned=true") == ["First"]
    assert await titles(user, "?pinned=false") == ["Second"]
    assert await titles(user) == ["Second", "First"]  # without the filter: both, by activity
    await user.patch(f"/api/conversations/{first}", {"pinned": False})
    assert await titles(user, "?pinned=true") == []


async def test_each_listed_conversation_says_what_it_says_itself_and_pages_cover_them_all(
    user: ApiClient,
) -> None:
    """The list reads its rows as text without an ORM session (issue #17: CPU per request);
    what it answers is still, field for field, what the conversation's own answer says
    (pinned, archived, a timestamp on a whole second); ``before`` walks every one once."""
    ids = [await new(user, f"Chat {n}") for n in range(5)]
    await user.patch(f"/api/conversations/{ids[1]}", {"pinned": True})
    db = user.app[DB]
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    async with db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == ids[3])
            .values(updated_at=whole_second, created_at=whole_second)
        )
    orm_reads: list[Any] = []

    def note(state: Any) -> None:
        orm_reads.append(str(state.statement))

    event.listen(db.read_session_class, "do_orm_execute", note)
    try:
        listed = (await user.get_json("/api/conversations"))["conversations"]
        assert not [s for s in orm_reads if "FROM conversations" in s], orm_reads
        await user.get_json(f"/api/conversations/{ids[0]}")  # its own page reads the entity:
        assert [s for s in orm_reads if "FROM conversations" in s]  # the listener sees it
    finally:
        event.remove(db.read_session_class, "do_orm_execute", note)
    assert sorted(c["id"] for c in listed) == sorted(ids)
    for summary in listed:
        full = await user.get_json(f"/api/conversations/{summary['id']}")
        assert summary == {key: full[key] for key in summary}
    assert [c["pinned"] for c in listed if c["id"] == ids[1]] == [True]
    assert listed[-1]["id"] == ids[3] and listed[-1]["updated_at"] == "2026-01-02T03:04:05+00:00"
    walked: list[str] = []
    before = ""
    while True:
        page = await user.get_json(f"/api/conversations?limit=2{before}")
        walked += [c["id"] for c in page["conversations"]]
        if page["next_cursor"] is None:
            break
        before = f"&before={page['next_cursor']}"
    assert walked == [c["id"] for c in listed]


async def test_an_archived_conversation_leaves_the_list_and_can_come_back(
    user: ApiClient,
) -> None:
    old = await new(user, "Old project")
    await new(user, "Current project")
    body = await (await user.patch(f"/api/conversations/{old}", {"archived": True})).json()
    assert body["archived"] is True
    assert await titles(user) == ["Current project"]
    assert await titles(user, "?archived=true") == ["Old project"]
    # Still there to open, and searchable among the archived.
    assert (await user.get(f"/api/conversations/{old}")).status == 200
    assert await titles(user, "?archived=true&q=old") == ["Old project"]
    await user.patch(f"/api/conversations/{old}", {"archived": False})
    assert set(await titles(user)) == {"Old project", "Current project"}


async def test_one_patch_renames_and_pins_and_an_empty_patch_is_refused(user: ApiClient) -> None:
    conversation = await new(user, "Draft")
    body = await (
        await user.patch(f"/api/conversations/{conversation}", {"title": "Final", "pinned": True})
    ).json()
    assert (body["title"], body["pinned"]) == ("Final", True)
    assert (await user.patch(f"/api/conversations/{conversation}", {})).status == 422


async def test_only_the_owner_pins_or_archives(user: ApiClient, make_client: Any) -> None:
    conversation = await new(user, "Mine")
    other = await make_client()
    await other.register_and_login("eve@example.com")
    for change in ({"pinned": True}, {"archived": True}):
        assert (await other.patch(f"/api/conversations/{conversation}", change)).status == 404
    body = await user.get_json(f"/api/conversations/{conversation}")
    assert (body["pinned"], body["archived"]) == (False, False)


def test_the_sidebar_groups_by_the_day_in_the_persons_time_zone() -> None:
    from datetime import datetime

    from multinotes.web.workspace_pages import date_group

    now = datetime(2026, 12, 6, 9, 30)
    assert date_group(datetime(2026, 12, 6, 0, 5), now) == "Today"
    assert date_group(datetime(2026, 12, 5, 23, 55), now) == "Yesterday"
    assert date_group(datetime(2026, 12, 1, 12, 0), now) == "Previous 7 days"
    assert date_group(datetime(2026, 11, 20, 12, 0), now) == "Previous 30 days"
    assert date_group(datetime(2025, 1, 1, 12, 0), now) == "Older"
