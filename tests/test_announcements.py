"""Announcements: an administrator publishes one (Markdown rendered sanitised, info or warning,
between a start and an end); every user sees it as a banner until they dismiss it (once, for
good, with a POST), and in the list while it is live; a scheduled or ended one shows nowhere.
Publishing and removing are audited; only administrators do either; bad input is a 422 naming
the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from multinotes.testing import ApiClient


@pytest.fixture
async def operator(api: ApiClient) -> ApiClient:
    await api.register_admin("staff@example.com")
    await api.mark_verified()
    return api


async def member(make_client: Any, email: str = "sam@example.com") -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name="Sam")
    await client.mark_verified()
    return client


async def publish(operator: ApiClient, **fields: Any) -> Any:
    body = {"title": "Maintenance", "body": "Down at **noon**", **fields}
    response = await operator.post("/api/admin/announcements", body)
    assert response.status == 201, await response.text()
    return await response.json()


async def banner_ids(client: ApiClient) -> list[str]:
    body = await client.get_json("/api/announcements?banners=true")
    return [a["id"] for a in body["announcements"]]


async def test_a_user_sees_the_banner_until_they_dismiss_it(operator: ApiClient, make_client: Any):
    sam = await member(make_client)
    eve = await member(make_client, "eve@example.com")
    published = await publish(
        operator, body="Down at **noon** <script>alert(1)</script>", severity="warning"
    )
    assert published["severity"] == "warning"
    assert "<strong>noon</strong>" in published["html"] and "<script" not in published["html"]

    assert await banner_ids(sam) == [published["id"]]
    fragment = await (await sam.get("/announcements/banners")).text()
    assert "Maintenance" in fragment and "<strong>noon</strong>" in fragment
    assert "<script>alert" not in fragment

    dismissed = await sam.post(f"/api/announcements/{published['id']}/dismiss")
    assert dismissed.status == 204
    again = await sam.post(f"/api/announcements/{published['id']}/dismiss")
    assert again.status == 204
    assert await banner_ids(sam) == []
    assert "Maintenance" not in await (await sam.get("/announcements/banners")).text()
    # Still listed while live, and still a banner for everyone else.
    listed = await sam.get_json("/api/announcements")
    assert [a["id"] for a in listed["announcements"]] == [published["id"]]
    assert await banner_ids(eve) == [published["id"]]
    assert (await sam.post("/api/announcements/nope/dismiss")).status == 404

    audit = await operator.get_json(f"/api/admin/audit?target_id={published['id']}")
    assert [e["action"] for e in audit["entries"]] == ["announcement.published"]


async def test_only_live_announcements_show(operator: ApiClient, make_client: Any):
    sam = await member(make_client)
    now = datetime.now(UTC)
    live = await publish(operator, title="Live", ends_at=(now + timedelta(hours=1)).isoformat())
    await publish(operator, title="Later", starts_at=(now + timedelta(days=1)).isoformat())
    await publish(
        operator,
        title="Over",
        starts_at=(now - timedelta(days=2)).isoformat(),
        ends_at=(now - timedelta(days=1)).isoformat(),
    )
    assert await banner_ids(sam) == [live["id"]]
    everything = await operator.get_json("/api/admin/announcements")
    assert {a["title"] for a in everything["announcements"]} == {"Live", "Later", "Over"}

    removed = await operator.delete(f"/api/admin/announcements/{live['id']}")
    assert removed.status == 204
    assert await banner_ids(sam) == []
    assert (await operator.delete(f"/api/admin/announcements/{live['id']}")).status == 404


async def test_only_administrators_publish_and_bad_input_names_the_field(
    operator: ApiClient, make_client: Any
):
    sam = await member(make_client)
    refused = await sam.post("/api/admin/announcements", {"title": "Mine", "body": "x"})
    assert refused.status == 403
    for body, field in (
        ({"title": " ", "body": "x"}, "title"),
        ({"title": "T", "body": ""}, "body"),
        ({"title": "T", "body": "x", "severity": "panic"}, "severity"),
        (
            {
                "title": "T",
                "body": "x",
                "starts_at": "2030-01-02T00:00:00Z",
                "ends_at": "2030-01-01T00:00:00Z",
            },
            "ends_at",
        ),
    ):
        response = await operator.post("/api/admin/announcements", body)
        assert response.status == 422, body
        assert field in (await response.json())["error"]["fields"], body
    assert (await operator.get_json("/api/admin/announcements"))["announcements"] == []
