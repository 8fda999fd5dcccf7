"""Plugin state on the live channel (issue #20 item 2): when an administrator switches a plugin on
or off, every administrator's open tabs get ``plugin.changed`` (their /admin/plugins table is
marked to read itself again); other people's tabs get nothing."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import ApiClient
from tests.support import sample_plugin
from tests.test_live import connect, next_event


@pytest.fixture
def plugins() -> list[tuple[str, Any]]:
    return [("sample", sample_plugin)]


async def test_switching_a_plugin_reaches_every_admins_tabs_and_nobody_elses(
    admin: ApiClient, make_client: Any
) -> None:
    member = await make_client()
    await member.register_and_login("member@example.com")
    admins_tab, members_tab = await connect(admin), await connect(member)
    await next_event(admins_tab, "live.hello")
    await next_event(members_tab, "live.hello")

    switched = await admin.patch("/api/admin/plugins/sample", {"enabled": False})
    assert switched.status == 200, await switched.text()
    event = await next_event(admins_tab, "plugin.changed")
    assert event["data"] == {"plugin": "sample", "enabled": False}
    assert (await admin.patch("/api/admin/plugins/sample", {"enabled": True})).status == 200
    assert (await next_event(admins_tab, "plugin.changed"))["data"]["enabled"] is True

    with pytest.raises(TimeoutError):
        await next_event(members_tab, "plugin.changed", timeout=1.0)
    await admins_tab.close()
    await members_tab.close()


async def test_the_plugins_page_marks_its_table_to_read_itself_again(admin: ApiClient) -> None:
    html = await (await admin.get("/admin/plugins")).text()
    assert 'id="plugins" class="stack-on-phone" data-live-refresh="plugin.changed"' in html
    # What live.js fetches again: the table comes back with the new status.
    assert (await admin.patch("/api/admin/plugins/sample", {"enabled": False})).status == 200
    html = await (await admin.get("/admin/plugins")).text()
    row = html.split('id="plugins"', 1)[1]
    assert "sample" in row.lower() and "disabled" in row.lower()
