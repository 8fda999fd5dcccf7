"""Feature flags and A/B experiments (issue #19 item 7).

A flag is on for a user when it is switched on and lists them (id or email), or lets them in by
segment (plan, organisation, sign-up date) and by its rollout: a stable hash of flag name and
user id, so 30% is a stable ~30%. Code reads flags through ``flags.enabled``; a change made in
one process reaches the others through the bus within a second. An experiment assigns each user
a variant for good, records the exposure once, counts its conversion event once per exposed
user, and reports conversion per variant with 95% intervals. Only administrators manage either;
bad input is a 4xx naming the field and stores nothing.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from multinotes import flags
from multinotes.app import create_app
from multinotes.flags import stats
from multinotes.keys import FLAGS
from multinotes.testing import ApiClient, app_client


@pytest.fixture
async def operator(api: ApiClient) -> ApiClient:
    await api.register_admin("staff@example.com")
    await api.mark_verified()
    return api


async def member(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def create_flag(operator: ApiClient, **fields: Any) -> dict[str, Any]:
    response = await operator.post("/api/admin/flags", {"name": "new_editor", **fields})
    body = await response.json()
    assert response.status == 201, body
    return dict(body)


async def my_flags(client: ApiClient) -> list[str]:
    return list((await client.get_json("/api/me/flags"))["flags"])


async def test_a_flag_at_30_percent_is_on_for_a_stable_share_of_users(operator: ApiClient):
    await create_flag(operator, enabled=True, rollout=30)
    app = operator.app
    ids = [f"user{n:05d}" for n in range(2_000)]
    first = {uid for uid in ids if await flags.enabled_for(app, uid, "new_editor")}
    assert 0.27 * len(ids) <= len(first) <= 0.33 * len(ids), len(first)
    again = {uid for uid in ids if await flags.enabled_for(app, uid, "new_editor")}
    assert again == first
    # Another flag at 30% takes another ~30%, not the same people.
    await create_flag(operator, name="other_feature", enabled=True, rollout=30)
    other = {uid for uid in ids if await flags.enabled_for(app, uid, "other_feature")}
    assert len(first & other) < 0.5 * len(first)
    # Widening the rollout keeps everyone who had it.
    flag_id = (await operator.get_json("/api/admin/flags"))["flags"][0]["id"]
    assert (await operator.patch(f"/api/admin/flags/{flag_id}", {"rollout": 60})).status == 200
    wider = {uid for uid in ids if await flags.enabled_for(app, uid, "new_editor")}
    assert first < wider and 0.57 * len(ids) <= len(wider) <= 0.63 * len(ids)


async def test_off_unknown_and_anonymous(operator: ApiClient, make_client: Any):
    sam = await member(make_client, "sam@example.com")
    created = await create_flag(operator, rollout=0, allow_list=["sam@example.com"])
    # Off is off for everyone, the allow-list too; an unknown flag is off.
    assert await my_flags(sam) == []
    assert not await flags.enabled_for(operator.app, sam.user["id"], "no_such_flag")  # type: ignore[index]
    patched = await operator.patch(f"/api/admin/flags/{created['id']}", {"enabled": True})
    assert (await patched.json())["enabled"] is True
    assert await my_flags(sam) == ["new_editor"]
    # Without an account: only a flag that is on for everyone.
    assert not await flags.enabled_for(operator.app, None, "new_editor")
    await create_flag(operator, name="for_all", enabled=True)
    assert await flags.enabled_for(operator.app, None, "for_all")
    assert await my_flags(sam) == ["for_all", "new_editor"]


async def test_allow_list_and_segments(operator: ApiClient, make_client: Any):
    sam = await member(make_client, "sam@example.com")
    eve = await member(make_client, "eve@example.com")
    assert sam.user is not None and eve.user is not None
    # Rollout 0: only the allow-list, by email (any case) or by id.
    await create_flag(
        operator, name="beta", enabled=True, rollout=0, allow_list=["SAM@example.com"]
    )
    await create_flag(
        operator, name="beta_ids", enabled=True, rollout=0, allow_list=[eve.user["id"]]
    )
    assert await my_flags(sam) == ["beta"]
    assert await my_flags(eve) == ["beta_ids"]
    assert await flags.enabled_for(operator.app, sam.user["id"], "beta")

    # Organisation segment: Eve's team only.
    org = await (await eve.post("/api/orgs", {"name": "Eve's team"})).json()
    team = await create_flag(
        operator, name="team_feature", enabled=True, segment={"organisations": [org["id"]]}
    )
    assert "team_feature" in await my_flags(eve)
    assert "team_feature" not in await my_flags(sam)
    assert await flags.enabled_for(operator.app, eve.user["id"], "team_feature")
    assert not await flags.enabled_for(operator.app, sam.user["id"], "team_feature")

    # Sign-up date: nobody signed up tomorrow; everyone signed up after yesterday.
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    await create_flag(
        operator, name="newcomers", enabled=True, segment={"signed_up_after": tomorrow}
    )
    await create_flag(operator, name="recent", enabled=True, segment={"signed_up_after": yesterday})
    # Plan: nobody here bought one.
    await create_flag(operator, name="free_tier", enabled=True, segment={"plans": ["none"]})
    for client in (sam, eve):
        names = await my_flags(client)
        assert "newcomers" not in names and {"recent", "free_tier"} <= set(names)

    # Segment and rollout both apply; the allow-list bypasses the segment.
    patch = {
        "segment": {"organisations": [org["id"]]},
        "rollout": 0,
        "allow_list": ["sam@example.com"],
    }
    assert (await operator.patch(f"/api/admin/flags/{team['id']}", patch)).status == 200
    assert "team_feature" in await my_flags(sam)
    assert "team_feature" not in await my_flags(eve)


async def test_bad_flags_are_refused_naming_the_field(operator: ApiClient, make_client: Any):
    sam = await member(make_client, "sam@example.com")
    for body, field in (
        ({"name": "Bad Name"}, "name"),
        ({"name": "x", "rollout": 101}, "rollout"),
        ({"name": "x", "rollout": -1}, "rollout"),
        ({"name": "x", "allow_list": ["not an email"]}, "allow_list"),
        ({"name": "x", "segment": {"plans": ["nope"]}}, "segment.plans"),
        ({"name": "x", "segment": {"organisations": ["nope"]}}, "segment.organisations"),
        ({"name": "x", "segment": {"colour": "red"}}, "segment.colour"),
        (
            {
                "name": "x",
                "segment": {"signed_up_after": "2030-01-02", "signed_up_before": "2030-01-01"},
            },
            "segment.signed_up_before",
        ),
        ({"name": "x", "id": "mine"}, "id"),
    ):
        response = await operator.post("/api/admin/flags", body)
        assert response.status == 422, (body, await response.text())
        assert field in (await response.json())["error"]["fields"], body
    await create_flag(operator)
    taken = await operator.post("/api/admin/flags", {"name": "new_editor"})
    assert taken.status == 409
    assert (await taken.json())["error"]["fields"] == {
        "name": "a flag with this name exists already"
    }
    listed = (await operator.get_json("/api/admin/flags"))["flags"]
    assert [f["name"] for f in listed] == ["new_editor"]
    flag_id = listed[0]["id"]
    assert (await operator.patch(f"/api/admin/flags/{flag_id}", {"name": "renamed"})).status == 422
    assert (await operator.patch("/api/admin/flags/nope", {"enabled": True})).status == 404
    nulls = {"segment": None, "allow_list": None, "enabled": None, "description": None}
    unchanged = await operator.patch(f"/api/admin/flags/{flag_id}", nulls)
    assert unchanged.status == 200 and (await unchanged.json())["name"] == "new_editor"

    # Administrators only: 403 for a user, whatever the id; the user's own list is theirs.
    for method, path in (
        ("GET", "/api/admin/flags"),
        ("POST", "/api/admin/flags"),
        ("GET", f"/api/admin/flags/{flag_id}"),
        ("PATCH", f"/api/admin/flags/{flag_id}"),
        ("DELETE", f"/api/admin/flags/{flag_id}"),
        ("GET", "/api/admin/experiments"),
    ):
        response = await sam.request(method, path, json={} if method != "GET" else None)
        assert response.status == 403, (method, path)
    assert (await sam.get("/admin/flags")).status == 403

    deleted = await operator.delete(f"/api/admin/flags/{flag_id}")
    assert deleted.status == 204
    assert (await operator.get(f"/api/admin/flags/{flag_id}")).status == 404
    audit = await operator.get_json(f"/api/admin/audit?target_id={flag_id}")
    assert sorted(e["action"] for e in audit["entries"]) == [
        "flag.created",
        "flag.deleted",
        "flag.updated",
    ]


async def create_experiment(operator: ApiClient, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "save_button",
        "variants": [{"name": "control", "weight": 1}, {"name": "green", "weight": 1}],
        "conversion_event": "note.created",
        **fields,
    }
    response = await operator.post("/api/admin/experiments", body)
    created = await response.json()
    assert response.status == 201, created
    return dict(created)


async def new_note(client: ApiClient) -> None:
    response = await client.post("/api/documents", {"title": "Note", "content": "text"})
    assert response.status == 201, await response.text()


async def test_an_experiment_shows_conversion_per_variant(operator: ApiClient, make_client: Any):
    experiment = await create_experiment(operator)
    assert experiment["status"] == "draft"
    app = operator.app
    users = [await member(make_client, f"user{n}@example.com") for n in range(8)]
    ids = [u.user["id"] for u in users if u.user]
    # A draft assigns nobody and records nothing.
    assert await flags.variant_for(app, ids[0], "save_button") is None
    started = await operator.post(f"/api/admin/experiments/{experiment['id']}/start")
    assert (await started.json())["status"] == "running"
    assert (await operator.post(f"/api/admin/experiments/{experiment['id']}/start")).status == 409

    seen = {uid: await flags.variant_for(app, uid, "save_button") for uid in ids[:5]}
    # Front-end code asks over HTTP (a POST: it records the exposure).
    asked = await users[5].post("/api/me/experiments/save_button")
    seen[ids[5]] = (await asked.json())["variant"]
    assert await flags.variant_for(app, ids[5], "save_button") == seen[ids[5]]
    unknown = await users[5].post("/api/me/experiments/no_such_test")
    assert await unknown.json() == {"experiment": "no_such_test", "variant": None}
    assert set(seen.values()) <= {"control", "green"}
    # Stable: asked again, the same variant (and still one exposure each).
    for uid in ids[:6]:
        assert await flags.variant_for(app, uid, "save_button") == seen[uid]
    # The first three exposed users convert (twice: counted once); user 7 converts without
    # having been exposed (not counted).
    for client in (*users[:3], users[6]):
        await new_note(client)
        await new_note(client)
    results = await operator.get_json(f"/api/admin/experiments/{experiment['id']}/results")
    by_name = {v["name"]: v for v in results["variants"]}
    assert [v["name"] for v in results["variants"]] == ["control", "green"]
    for name in ("control", "green"):
        exposed = [uid for uid in ids[:6] if seen[uid] == name]
        converted = [uid for uid in ids[:3] if seen[uid] == name]
        row = by_name[name]
        assert (row["exposed"], row["converted"]) == (len(exposed), len(converted)), name
        assert row["rate"] == (len(converted) / len(exposed) if exposed else 0.0)
        assert row["interval"]["low"] <= row["rate"] <= row["interval"]["high"]
    assert by_name["control"]["control"] and by_name["control"]["difference"] is None
    green, control = by_name["green"], by_name["control"]
    if green["exposed"] and control["exposed"]:
        assert green["difference"] == pytest.approx(green["rate"] - control["rate"])
        low, high = green["difference_interval"]["low"], green["difference_interval"]["high"]
        assert low <= green["difference"] <= high
    else:  # all six landed in one variant (1 time in 32): no difference to tell
        assert green["difference"] is None and green["difference_interval"] is None

    # Stopped: no variant, no new exposure or conversion.
    stopped = await operator.post(f"/api/admin/experiments/{experiment['id']}/stop")
    assert (await stopped.json())["status"] == "stopped"
    assert await flags.variant_for(app, ids[7], "save_button") is None
    await new_note(users[4])
    after = await operator.get_json(f"/api/admin/experiments/{experiment['id']}/results")
    assert after["variants"] == results["variants"]

    # The page shows the same numbers.
    page = await (await operator.get(f"/admin/experiments/{experiment['id']}")).text()
    assert 'id="experiment-results"' in page and "stopped" in page
    # Users see their own participation in their data export.
    from multinotes.flags.service import exposures_of
    from multinotes.keys import DB

    mine = await exposures_of(app[DB], ids[0])
    assert [(e["experiment"], e["variant"]) for e in mine] == [("save_button", seen[ids[0]])]


async def test_bad_experiments_are_refused(operator: ApiClient, make_client: Any):
    for body, field in (
        ({"variants": [{"name": "only"}]}, "variants"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "variants"),
        ({"variants": [{"name": "a", "weight": 0}, {"name": "b"}]}, "variants.0.weight"),
        ({"conversion_event": "nothing.happened"}, "conversion_event"),
        ({"name": "Bad name"}, "name"),
    ):
        payload = {
            "name": "exp",
            "variants": [{"name": "a"}, {"name": "b"}],
            "conversion_event": "note.created",
            **body,
        }
        response = await operator.post("/api/admin/experiments", payload)
        assert response.status == 422, (body, await response.text())
        assert field in (await response.json())["error"]["fields"], body
    assert (await operator.get_json("/api/admin/experiments"))["experiments"] == []

    experiment = await create_experiment(operator)
    assert (await operator.post("/api/admin/experiments", {**experiment, "id": None})).status == 422
    path = f"/api/admin/experiments/{experiment['id']}"
    # A draft's design may change; once started it is fixed (409 naming the fields).
    patched = await operator.patch(path, {"conversion_event": "folder.created"})
    assert (await patched.json())["conversion_event"] == "folder.created"
    assert (await operator.post(f"{path}/start")).status == 200
    refused = await operator.patch(path, {"variants": [{"name": "a"}, {"name": "b"}]})
    assert refused.status == 409
    assert "variants" in (await refused.json())["error"]["fields"]
    assert (await operator.patch(path, {"description": "Green or grey"})).status == 200
    assert (await operator.post(f"{path}/stop")).status == 200
    assert (await operator.post(f"{path}/stop")).status == 409

    sam = await member(make_client, "sam@example.com")
    for method, suffix in (("GET", ""), ("POST", "/start"), ("GET", "/results"), ("DELETE", "")):
        assert (await sam.request(method, path + suffix)).status == 403
    assert (await operator.delete(path)).status == 204
    assert (await operator.get(path + "/results")).status == 404


def test_wilson_and_difference_intervals_match_published_values():
    # Newcombe (1998), table II and example: 81/263 → 0.2553 to 0.3662 (Wilson, 95%).
    low, high = stats.wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775
    # Exact bounds at the ends (a rate of 0 or 1 always lies inside its interval).
    for exposed in range(1, 200):
        assert stats.wilson(0, exposed)[0] == 0.0 and stats.wilson(exposed, exposed)[1] == 1.0
    # Newcombe's example 56/70 vs 48/80: difference 0.2, interval 0.0524 to 0.3339 (method 10).
    low, high = stats.difference_interval(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


@pytest.mark.parametrize("mode", ["production"])
async def test_a_change_in_one_process_reaches_another_within_a_second(
    operator: ApiClient, settings: Any, make_client: Any
):
    """Two apps sharing MariaDB and Redis, as two web processes would: B has the rules cached
    (for 30 s) when A switches a flag on; B sees it as soon as the pub/sub message arrives."""
    sam = await member(make_client, "sam@example.com")
    assert sam.user is not None
    created = await create_flag(operator, enabled=False)
    other_app = create_app(settings)
    async with app_client(other_app) as other:
        await other.login("sam@example.com")
        assert await my_flags(other) == []
        loads = other_app[FLAGS].loads
        switched = time.monotonic()
        patched = await operator.patch(f"/api/admin/flags/{created['id']}", {"enabled": True})
        assert patched.status == 200
        seen: list[str] = []
        while time.monotonic() - switched < 1.0:
            seen = await my_flags(other)
            if seen:
                break
            await asyncio.sleep(0.05)
        assert seen == ["new_editor"]
        assert other_app[FLAGS].loads > loads  # reloaded on the message, not on its TTL
        # Deleting it reaches B too.
        assert (await operator.delete(f"/api/admin/flags/{created['id']}")).status == 204
        for _ in range(20):
            if not await my_flags(other):
                break
            await asyncio.sleep(0.05)
        assert await my_flags(other) == []


def test_weights_split_users_in_proportion_and_stably():
    from multinotes.flags.rules import ExperimentRule

    rule = ExperimentRule("e1", "checkout", (("control", 1), ("blue", 3)), "order.paid")
    ids = [f"user{n:05d}" for n in range(4_000)]
    assigned = [rule.assign(uid) for uid in ids]
    assert 0.72 <= assigned.count("blue") / len(ids) <= 0.78
    assert [rule.assign(uid) for uid in ids] == assigned
