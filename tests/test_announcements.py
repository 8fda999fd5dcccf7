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


async def test_an_announcement_for_a_segment_shows_to_that_segment_only(
    operator: ApiClient, make_client: Any
):
    sam = await member(make_client)
    eve = await member(make_client, "eve@example.com")
    team = await (await eve.post("/api/orgs", {"name": "Eve's team"})).json()
    for_team = await publish(operator, title="Team news", segment={"organisations": [team["id"]]})
    assert for_team["segment"]["organisations"] == [team["id"]]
    for_all = await publish(operator, title="Everyone's news")

    # Eve (a member of the team) sees both; Sam sees only everyone's, in the API and the pages.
    assert await banner_ids(eve) == [for_all["id"], for_team["id"]]
    assert await banner_ids(sam) == [for_all["id"]]
    listed = await sam.get_json("/api/announcements")
    assert [a["id"] for a in listed["announcements"]] == [for_all["id"]]
    assert "Team news" not in await (await sam.get("/announcements/banners")).text()
    assert "Team news" not in await (await sam.get("/announcements")).text()
    assert "Team news" in await (await eve.get("/announcements")).text()
    # Outside the segment the announcement does not exist for Sam.
    assert (await sam.post(f"/api/announcements/{for_team['id']}/dismiss")).status == 404

    # Sign-up dates and plans: nobody here signed up tomorrow; nobody bought a plan.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await publish(operator, title="Newcomers", segment={"signed_up_after": tomorrow})
    free = await publish(operator, title="Free tier", segment={"plans": ["none"]})
    for client in (sam, eve):
        titles = {
            a["title"] for a in (await client.get_json("/api/announcements"))["announcements"]
        }
        assert "Newcomers" not in titles and "Free tier" in titles
    admin_view = await operator.get_json("/api/admin/announcements")
    assert {a["title"] for a in admin_view["announcements"]} >= {"Team news", "Newcomers"}
    assert free["segment"]["plans"] == ["none"]

    audit = await operator.get_json(f"/api/admin/audit?target_id={for_team['id']}")
    assert audit["entries"][0]["details"]["segment"] == {"organisations": [team["id"]]}


async def test_an_in_app_message_shows_once_as_a_dialog(operator: ApiClient, make_client: Any):
    sam = await member(make_client)
    message = await publish(operator, title="New: templates", kind="message")
    assert message["kind"] == "message"
    banners = (await sam.get_json("/api/announcements?banners=true"))["announcements"]
    assert [(a["id"], a["kind"]) for a in banners] == [(message["id"], "message")]
    fragment = await (await sam.get("/announcements/banners")).text()
    assert '<dialog open class="announcement-message' in fragment and "New: templates" in fragment
    # Closing it is dismissing it: it does not come back.
    assert (await sam.post(f"/api/announcements/{message['id']}/dismiss")).status == 204
    assert "New: templates" not in await (await sam.get("/announcements/banners")).text()


async def test_a_segment_naming_nothing_that_exists_is_refused(operator: ApiClient):
    for body, field in (
        ({"segment": {"organisations": ["nope"]}}, "segment.organisations"),
        ({"segment": {"plans": ["nope"]}}, "segment.plans"),
        ({"segment": {"colour": "red"}}, "segment.colour"),
        ({"kind": "popup"}, "kind"),
        (
            {"segment": {"signed_up_after": "2030-01-02", "signed_up_before": "2030-01-01"}},
            "segment.signed_up_before",
        ),
    ):
        response = await operator.post(
            "/api/admin/announcements", {"title": "T", "body": "x", **body}
        )
        assert response.status == 422, body
        assert field in (await response.json())["error"]["fields"], body
    assert (await operator.get_json("/api/admin/announcements"))["announcements"] == []
