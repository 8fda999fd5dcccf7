"""An organisation's membership changing reaches its members' open tabs (issue #20): one live
event for all of them (``organisation.members_changed``), and nothing for anyone outside."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox
from tests.test_live import connect, next_event
from tests.test_organisations import create, join, owner, person

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox
__all__ = ["owner"]  # the fixture, used by name


async def test_members_hear_who_joined_and_who_was_removed_and_an_outsider_hears_nothing(
    owner: ApiClient, make_client: Any, mailbox: Mailbox
) -> None:
    org = await create(owner)
    member = await person(make_client, "max@example.com")
    newcomer = await person(make_client, "nia@example.com")
    outsider = await person(make_client, "otto@example.com")
    await join(owner, org["id"], member, mailbox)
    tabs = {
        name: await connect(client)
        for name, client in (
            ("owner", owner),
            ("member", member),
            ("newcomer", newcomer),
            ("outsider", outsider),
        )
    }
    for socket in tabs.values():
        await next_event(socket, "live.hello")
    assert newcomer.user and member.user

    await join(owner, org["id"], newcomer, mailbox)
    for name in ("owner", "member", "newcomer"):
        event = await next_event(tabs[name], "organisation.members_changed")
        assert event["data"] == {
            "organisation_id": org["id"],
            "change": "joined",
            "user_id": newcomer.user["id"],
        }
        assert event["id"] is not None  # kept, so a reconnecting tab gets it too

    removed = await owner.delete(f"/api/orgs/{org['id']}/members/{member.user['id']}")
    assert removed.status == 204
    for name in ("owner", "newcomer", "member"):  # the removed member hears it too
        event = await next_event(tabs[name], "organisation.members_changed")
        assert event["data"]["change"] == "removed"
        assert event["data"]["user_id"] == member.user["id"]

    with pytest.raises(asyncio.TimeoutError):
        await next_event(tabs["outsider"], "organisation.members_changed", timeout=0.5)
    # Once out, the member no longer hears of the organisation.
    left = await newcomer.post(f"/api/orgs/{org['id']}/leave", {})
    assert left.status == 204
    assert (await next_event(tabs["owner"], "organisation.members_changed"))["data"][
        "change"
    ] == "left"
    with pytest.raises(asyncio.TimeoutError):
        await next_event(tabs["member"], "organisation.members_changed", timeout=0.5)
    for socket in tabs.values():
        await socket.close()
