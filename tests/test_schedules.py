"""Scheduled runs (issue #18 item 5): a template with fixed values, run on a cron schedule in the
owner's time zone on chosen models, its answers saved as notes in a folder and optionally
mailed; pause, resume, run now, history; an owner out of credits gets the schedule paused and is
told in the app and by mail. The clock is injected into the due-finder (``runner.run_due``), so
the tests say exactly when "now" is. Both runtime modes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from multinotes.keys import DB
from multinotes.schedules import cron, runner, service
from multinotes.testing import ApiClient
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox, link_in, text_of
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.waiting import eventually

smtp_server = mail_fixtures.smtp_server
settings = mail_fixtures.settings
mailbox = mail_fixtures.mailbox

A, B = "script/alpha", "script/beta"


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {A: Script(chunks=["Morning", " ", "brief"]), B: Script(chunks=["Beta"])}


@pytest.fixture
def plugins(scripts: dict[str, Script]) -> Any:
    models = [
        ScriptedModel(model_id, script, context_window=1000, max_output=100)
        for model_id, script in scripts.items()
    ]
    return [("script", ScriptedPlugin(*models))]


async def template(api: ApiClient, **extra: Any) -> str:
    body = {
        "title": "Daily brief",
        "body": "Summarise the news about {{topic}}.",
        "system_prompt": "Answer in {{style}}.",
        "variables": [
            {"name": "topic", "type": "text", "required": True},
            {
                "name": "style",
                "type": "choice",
                "options": ["bullets", "prose"],
                "default": "prose",
            },
        ],
        **extra,
    }
    response = await api.post("/api/templates", body)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def folder(api: ApiClient, name: str = "Briefs") -> str:
    response = await api.post("/api/folders", {"name": name})
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def create(api: ApiClient, status: int = 201, **fields: Any) -> dict[str, Any]:
    response = await api.post("/api/schedules", fields)
    assert response.status == status, await response.text()
    return dict(await response.json())


async def schedule(api: ApiClient, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": "Morning brief",
        "target_id": await template(api),
        "values": {"topic": "rivers", "style": "bullets"},
        "models": [A],
        "cron": "0 9 * * *",
        "timezone": "Europe/Berlin",
        "folder_id": await folder(api),
        **overrides,
    }
    return await create(api, **fields)


async def finished_runs(api: ApiClient, schedule_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The schedule's runs once ``count`` of them finished (they run in the background)."""
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = (await api.get_json(f"/api/schedules/{schedule_id}/runs"))["runs"]
        return sum(r["status"] not in ("queued", "running") for r in found) >= count

    await eventually(done, timeout=30)
    return found


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def balance(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["balance"])


async def test_a_schedule_runs_on_time_and_saves_into_its_folder(
    user: ApiClient, scripts: dict[str, Script]
) -> None:
    s = await schedule(user)
    assert (s["status"], s["target_title"], s["folder_name"]) == ("active", "Daily brief", "Briefs")
    due = at(s["next_run_at"])
    # 09:00 on Berlin's wall clock is 08:00 UTC in winter.
    assert (due.astimezone(UTC).hour, due.minute) == (8, 0)
    assert [u["local"][-5:] for u in s["upcoming"]] == ["09:00"] * 3
    before = await balance(user)

    # A minute early, nothing is due; on time, one run is claimed and queued.
    assert await runner.run_due(user.app, now=due - timedelta(minutes=1)) == []
    [run_id] = await runner.run_due(user.app, now=due)
    [run] = await finished_runs(user, s["id"])
    assert (run["id"], run["status"], run["trigger"]) == (run_id, "succeeded", "schedule")
    assert at(run["due_at"]) == due
    # Scripted prices: 1 credit per input token (10), 2 per output token (one per chunk).
    assert run["cost"] == 10 + 3 * 2 == before - await balance(user)

    # The prompt went out rendered with the schedule's values, the system prompt too.
    # (A model may also be asked for the conversation's title: the prompt's request is ours.)
    [request] = [
        r for r in scripts[A].requests if r.messages[-1].content.startswith("Summarise the news")
    ]
    assert request.messages[-1].content == "Summarise the news about rivers."
    assert request.options.system == "Answer in bullets."  # type: ignore[attr-defined]

    # The answer is a note in the schedule's folder, named after the schedule and the slot.
    [result] = run["results"]
    note = await user.get_json(f"/api/documents/{result['note_id']}")
    assert note["content"] == "Morning brief"  # the scripted answer
    assert note["folder_id"] == s["folder_id"]
    assert note["title"].startswith("Morning brief — ") and note["title"].endswith("09:00")

    # The next run moved to the following 09:00 Berlin; the slot is not claimed again.
    after = await user.get_json(f"/api/schedules/{s['id']}")
    assert at(after["next_run_at"]) == due + timedelta(days=1)
    assert after["last_run"]["id"] == run_id
    assert await runner.run_due(user.app, now=due + timedelta(minutes=5)) == []
    # The template's use was counted like a run from the library.
    assert (await user.get_json(f"/api/templates/{s['target_id']}"))["use_count"] == 1


async def test_each_model_answers_into_its_own_note(user: ApiClient) -> None:
    s = await schedule(user, models=[A, B])
    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    assert [r["model"] for r in run["results"]] == [A, B]
    notes = [await user.get_json(f"/api/documents/{r['note_id']}") for r in run["results"]]
    assert [n["content"] for n in notes] == ["Morning brief", "Beta"]
    assert notes[1]["title"].endswith(f"({B})")
    assert run["cost"] == sum(r["cost"] for r in run["results"])


async def test_a_due_run_is_claimed_once_by_concurrent_schedulers(user: ApiClient) -> None:
    s = await schedule(user)
    due = at(s["next_run_at"])
    db = user.app[DB]
    claims = await asyncio.gather(*(service.claim_due(db, due) for _ in range(4)))
    assert sorted(len(c) for c in claims) == [0, 0, 0, 1]
    [run_id] = [c for claim in claims for c in claim]
    # A task delivered twice (at-least-once) runs once.
    first, second = await asyncio.gather(
        runner.execute_run(user.app, run_id=run_id), runner.execute_run(user.app, run_id=run_id)
    )
    assert sorted([first, second], key=str) == sorted(["succeeded", None], key=str)
    runs = (await user.get_json(f"/api/schedules/{s['id']}/runs"))["runs"]
    assert len(runs) == 1 and len(runs[0]["results"]) == 1


async def test_out_of_credits_pauses_the_schedule_and_tells_the_owner(
    user: ApiClient, mailbox: Mailbox
) -> None:
    s = await schedule(user)
    left = await balance(user)
    drained = await user.post(
        f"/api/admin/users/{user.user['id']}/credits", {"amount": -left, "reason": "test"}
    )
    assert drained.status == 201, await drained.text()

    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    assert (run["status"], run["error_code"], run["cost"]) == ("failed", "out_of_credits", 0)
    assert await balance(user) == 0
    paused = await user.get_json(f"/api/schedules/{s['id']}")
    assert (paused["status"], paused["paused_reason"], paused["next_run_at"]) == (
        "paused",
        "out_of_credits",
        None,
    )
    # Nothing was saved: no note in the folder.
    assert (await user.get_json(f"/api/documents?folder_id={s['folder_id']}"))["documents"] == []

    async def notified() -> list[dict[str, Any]]:
        page = await user.get_json("/api/notifications")
        return [n for n in page["notifications"] if n["kind"] == "schedule"]

    await eventually(lambda: notified())  # type: ignore[arg-type, return-value]
    [notice] = await notified()
    assert notice["title"] == "Schedule paused: Morning brief"
    assert notice["url"] == f"/schedules/{s['id']}"
    mail = await mailbox.wait_for(user.user["email"], subject="is paused")
    assert "credits could not cover" in text_of(mail)
    assert link_in(mail, f"/schedules/{s['id']}")

    # A paused schedule is not due any more; a second failed run would not notify again.
    assert await runner.run_due(user.app, now=at(s["next_run_at"]) + timedelta(days=2)) == []


async def test_a_finished_run_reaches_its_owners_open_tabs_and_nobody_elses(
    user: ApiClient, make_client: Any
) -> None:
    from tests.test_live import connect, next_event

    other: ApiClient = await make_client()
    await other.register_and_login("other@example.com", name="Other")
    mine, theirs = await connect(user), await connect(other)
    s = await schedule(user)
    [run_id] = await runner.run_due(user.app, now=at(s["next_run_at"]))

    event = await next_event(mine, "task.finished", timeout=30)
    [run] = await finished_runs(user, s["id"])
    note = run["results"][0]["note_id"]
    assert event["id"] is not None  # kept for a tab that reconnects
    assert event["data"] == {
        "kind": "schedule_run",
        "id": run_id,
        "status": "done",
        "title": "Your schedule “Morning brief” ran",
        "excerpt": f"1 note saved · {run['cost']} credits",
        "url": f"/notes/{note}",  # its one answer
        "download_url": None,
    }
    with pytest.raises(asyncio.TimeoutError):
        await next_event(theirs, "task.finished", timeout=0.5)

    # With two models the answers are two notes: the toast leads to the schedule's history.
    await user.patch(f"/api/schedules/{s['id']}", {"models": [A, B]})
    started = await user.post(f"/api/schedules/{s['id']}/run")
    event = await next_event(mine, "task.finished", timeout=30)
    assert event["data"]["id"] == (await started.json())["id"]
    assert event["data"]["url"] == f"/schedules/{s['id']}"
    assert event["data"]["excerpt"].startswith("2 notes saved · ")
    await mine.close()
    await theirs.close()


async def test_a_failed_run_tells_its_owner_why(user: ApiClient) -> None:
    from tests.test_live import connect, next_event

    s = await schedule(user)
    left = await balance(user)
    await user.post(
        f"/api/admin/users/{user.user['id']}/credits", {"amount": -left, "reason": "test"}
    )
    socket = await connect(user)
    [run_id] = await runner.run_due(user.app, now=at(s["next_run_at"]))
    event = await next_event(socket, "task.finished", timeout=30)
    [run] = await finished_runs(user, s["id"])
    assert event["data"]["id"] == run_id and event["data"]["kind"] == "schedule_run"
    assert event["data"]["status"] == "failed"
    assert event["data"]["title"] == "Your schedule “Morning brief” failed"
    assert event["data"]["excerpt"] == run["error_message"] and run["error_message"]
    assert event["data"]["url"] == f"/schedules/{s['id']}"
    await socket.close()


async def test_results_can_be_mailed(user: ApiClient, mailbox: Mailbox) -> None:
    s = await schedule(user, email_results=True)
    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    mail = await mailbox.wait_for(user.user["email"], subject="Morning brief")
    body = text_of(mail)
    assert "Morning brief" in body and A in body
    assert link_in(mail, f"/notes/{run['results'][0]['note_id']}")


async def test_pause_resume_run_now_and_history(user: ApiClient) -> None:
    s = await schedule(user)
    sid = s["id"]
    paused = await (await user.post(f"/api/schedules/{sid}/pause")).json()
    assert (paused["status"], paused["paused_reason"], paused["next_run_at"]) == (
        "paused",
        "user",
        None,
    )
    assert await runner.run_due(user.app, now=at(s["next_run_at"]) + timedelta(days=3)) == []

    # Run now works while paused, runs in the background and shows in the history.
    started = await user.post(f"/api/schedules/{sid}/run")
    assert started.status == 202
    run = await started.json()
    assert (run["trigger"], run["status"]) == ("manual", "queued")
    [done] = await finished_runs(user, sid)
    assert done["status"] == "succeeded" and done["results"][0]["note_id"]

    resumed = await (await user.post(f"/api/schedules/{sid}/resume")).json()
    assert resumed["status"] == "active" and resumed["paused_reason"] is None
    assert at(resumed["next_run_at"]) > datetime.now(UTC)
    listed = (await user.get_json("/api/schedules"))["schedules"]
    assert [x["id"] for x in listed] == [sid] and listed[0]["last_run"]["id"] == done["id"]


async def test_run_now_refuses_a_second_run_while_one_is_unfinished(user: ApiClient) -> None:
    s = await schedule(user)
    db = user.app[DB]
    await service.start_manual_run(db, user.user["id"], s["id"])  # queued, never executed
    again = await user.post(f"/api/schedules/{s['id']}/run")
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "run_in_progress"


async def test_changing_the_expression_moves_the_next_run(user: ApiClient) -> None:
    s = await schedule(user)
    changed = await user.patch(f"/api/schedules/{s['id']}", {"cron": "30 18 * * 1-5"})
    assert changed.status == 200, await changed.text()
    body = await changed.json()
    local = at(body["next_run_at"]).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.weekday() < 5) == (18, 30, True)
    assert body["name"] == "Morning brief"


async def test_the_owners_time_zone_is_the_default(user: ApiClient) -> None:
    response = await user.patch("/api/me", {"timezone": "America/New_York"})
    assert response.status == 200, await response.text()
    s = await schedule(user, timezone=None)
    assert s["timezone"] == "America/New_York"
    assert s["upcoming"][0]["local"].endswith("09:00")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "every morning"}, "cron"),
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "0 0 * * * 2030"}, "cron"),
        ({"cron": "*/5 * * * *"}, "cron"),
        ({"cron": "0 0 30 2 *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"target_id": "nosuchtemplate"}, "target_id"),
        ({"target_type": "chain"}, "target_id"),
        ({"values": {"style": "prose"}}, "values.topic"),
        ({"values": {"topic": "x", "style": "haiku"}}, "values.style"),
        ({"models": ["script/nope"]}, "models.0"),
        ({"models": []}, "models"),
        ({"folder_id": "nosuchfolder"}, "folder_id"),
        ({"name": ""}, "name"),
    ],
)
async def test_bad_input_is_refused_with_the_field_and_nothing_is_stored(
    user: ApiClient, change: dict[str, Any], field: str
) -> None:
    fields: dict[str, Any] = {
        "name": "Brief",
        "target_id": await template(user),
        "values": {"topic": "rivers"},
        "models": [A],
        "cron": "0 9 * * *",
        **change,
    }
    problem = await create(user, 422, **fields)
    assert field in problem["error"]["fields"], problem
    assert (await user.get_json("/api/schedules"))["schedules"] == []


async def test_the_minimum_interval_is_a_setting(make_settings: Any, plugins: Any) -> None:
    from multinotes.app import create_app
    from multinotes.testing import app_client

    app = create_app(make_settings(schedule_min_interval_minutes=60), plugins=plugins)
    async with app_client(app) as api:
        await api.register_admin()
        tid = await template(api)
        fields = {"name": "x", "target_id": tid, "values": {"topic": "t"}, "models": [A]}
        refused = await create(api, 422, cron="*/30 * * * *", **fields)
        assert refused["error"]["code"] == "cron_too_frequent"
        await create(api, 201, cron="0 * * * *", **fields)


async def test_preview_shows_the_next_runs_and_changes_nothing(user: ApiClient) -> None:
    preview = await user.get_json(
        "/api/schedules/preview?cron=0%209%20*%20*%201-5&timezone=Asia/Tokyo&count=4"
    )
    assert preview["timezone"] == "Asia/Tokyo" and len(preview["upcoming"]) == 4
    assert all(u["local"].endswith("09:00") for u in preview["upcoming"])
    assert all(at(u["at"]).astimezone(UTC).hour == 0 for u in preview["upcoming"])
    bad = await user.get("/api/schedules/preview?cron=*/2%20*%20*%20*%20*")
    assert bad.status == 422 and "cron" in (await bad.json())["error"]["fields"]


async def test_someone_elses_schedule_is_not_found(user: ApiClient, make_client: Any) -> None:
    s = await schedule(user)
    other: ApiClient = await make_client()
    await other.register_and_login("other@example.com", name="Other")
    sid = s["id"]
    assert (await other.get(f"/api/schedules/{sid}")).status == 404
    assert (await other.get(f"/api/schedules/{sid}/runs")).status == 404
    assert (await other.patch(f"/api/schedules/{sid}", {"name": "Mine"})).status == 404
    for action in ("pause", "resume", "run"):
        assert (await other.post(f"/api/schedules/{sid}/{action}")).status == 404
    assert (await other.delete(f"/api/schedules/{sid}")).status == 404
    assert (await other.get_json("/api/schedules"))["schedules"] == []
    # Nor can they point a schedule at the owner's private template or folder.
    tid = s["target_id"]
    problem = await create(
        other, 422, name="x", target_id=tid, values={"topic": "t"}, models=[A], cron="0 9 * * *"
    )
    assert "target_id" in problem["error"]["fields"]
    assert (await user.get_json(f"/api/schedules/{sid}"))["name"] == "Morning brief"


async def test_a_deleted_template_pauses_the_schedule(user: ApiClient) -> None:
    s = await schedule(user)
    assert (await user.delete(f"/api/templates/{s['target_id']}")).status == 204
    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    assert (run["status"], run["error_code"]) == ("failed", "template_not_found")
    after = await user.get_json(f"/api/schedules/{s['id']}")
    assert (after["status"], after["paused_reason"]) == ("paused", "target_missing")
    refused = await user.post(f"/api/schedules/{s['id']}/resume")
    assert refused.status == 422 and "target_id" in (await refused.json())["error"]["fields"]


async def test_deleting_a_schedule_keeps_its_notes(user: ApiClient) -> None:
    s = await schedule(user)
    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    assert (await user.delete(f"/api/schedules/{s['id']}")).status == 204
    assert (await user.get(f"/api/schedules/{s['id']}")).status == 404
    assert (await user.get(f"/api/documents/{run['results'][0]['note_id']}")).status == 200


# -- the cron expressions themselves (no app) ---------------------------------------------------


def test_daily_runs_keep_their_wall_clock_time_across_dst() -> None:
    # Berlin moves to summer time on 29 March 2026: 09:00 is 08:00 UTC before, 07:00 after.
    runs = cron.next_runs("0 9 * * *", "Europe/Berlin", datetime(2026, 3, 27, 12, tzinfo=UTC), 3)
    assert [(r.day, r.hour) for r in runs] == [(28, 8), (29, 7), (30, 7)]


def test_a_skipped_time_runs_once_and_a_repeated_one_once() -> None:
    zone = "Europe/Berlin"
    # 02:30 does not exist on 29 March 2026 (clocks jump 02:00 -> 03:00): it runs at 03:00.
    spring = cron.next_runs("30 2 * * *", zone, datetime(2026, 3, 28, 12, tzinfo=UTC), 2)
    assert [r.isoformat() for r in spring] == [
        "2026-03-29T01:00:00+00:00",
        "2026-03-30T00:30:00+00:00",
    ]
    # 02:30 happens twice on 25 October 2026 (clocks go back 03:00 -> 02:00): it runs once.
    autumn = cron.next_runs("30 2 * * *", zone, datetime(2026, 10, 24, 12, tzinfo=UTC), 2)
    assert [r.isoformat() for r in autumn] == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
    ]
    # An hourly schedule keeps running every real hour through the repeated one.
    hourly = cron.next_runs("0 * * * *", zone, datetime(2026, 10, 24, 23, 30, tzinfo=UTC), 4)
    assert [r.hour for r in hourly] == [0, 1, 2, 3]


async def test_the_pages_show_schedules_and_their_history(user: ApiClient) -> None:
    s = await schedule(user)
    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    listing = await (await user.get("/schedules")).text()
    assert "Morning brief" in listing and "Last run: Succeeded" in listing
    page = await user.get(f"/schedules/{s['id']}")
    assert page.status == 200, await page.text()
    html = await page.text()
    assert f"/notes/{run['results'][0]['note_id']}" in html and "Daily brief" in html
    form = await user.get(f"/schedules/new?target=template:{s['target_id']}")
    assert form.status == 200 and 'name="var-topic"' in await form.text()
    edit = await user.get(f"/schedules/{s['id']}/edit")
    assert edit.status == 200 and 'value="rivers"' in await edit.text()
    preview = await (await user.get("/schedules/preview?cron=0+9+*+*+*&timezone=UTC")).text()
    assert preview.count("data-at=") == 5


# -- chains -------------------------------------------------------------------------------------


async def chain(api: ApiClient) -> str:
    response = await api.post(
        "/api/chains",
        {
            "title": "Shorten then polish",
            "steps": [
                {"model": A, "prompt": "Shorten: {{input}}"},
                {"model": B, "prompt": "Polish: {{step1}}"},
            ],
        },
    )
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def test_a_scheduled_chain_runs_every_step_and_saves_its_output(
    user: ApiClient, scripts: dict[str, Script]
) -> None:
    s = await create(
        user,
        name="Nightly digest",
        target_type="chain",
        target_id=await chain(user),
        values={"input": "the long text"},
        cron="0 2 * * *",
        folder_id=await folder(user, "Digests"),
    )
    assert (s["target_title"], s["models"]) == ("Shorten then polish", [])
    before = await balance(user)
    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    assert run["status"] == "succeeded", run
    assert [r["status"] for r in run["results"]] == ["complete", "complete"]
    assert [r["note_id"] is not None for r in run["results"]] == [False, True]
    # Scripted prices: each step 10 input tokens at 1 credit, 2 credits per chunk.
    assert run["cost"] == (10 + 3 * 2) + (10 + 1 * 2)
    assert before - await balance(user) >= run["cost"]
    note = await user.get_json(f"/api/documents/{run['results'][1]['note_id']}")
    assert note["content"] == "Beta" and note["folder_id"] == s["folder_id"]
    assert note["title"].startswith("Nightly digest — ")
    [first] = [r for r in scripts[A].requests if "Shorten" in r.messages[-1].content]
    assert first.messages[-1].content == "Shorten: the long text"


async def test_a_scheduled_chain_needs_its_input_and_pauses_without_credits(
    user: ApiClient,
) -> None:
    chain_id = await chain(user)
    fields = {"name": "x", "target_type": "chain", "target_id": chain_id}
    missing = await create(user, 422, cron="0 2 * * *", values={}, **fields)
    assert "values.input" in missing["error"]["fields"]
    unknown = await create(user, 422, cron="0 2 * * *", values={"input": "t", "x": "y"}, **fields)
    assert "values.x" in unknown["error"]["fields"]

    s = await create(user, cron="0 2 * * *", values={"input": "t"}, **fields)
    left = await balance(user)
    drained = await user.post(
        f"/api/admin/users/{user.user['id']}/credits", {"amount": -left, "reason": "test"}
    )
    assert drained.status == 201
    await runner.run_due(user.app, now=at(s["next_run_at"]))
    [run] = await finished_runs(user, s["id"])
    assert (run["status"], run["error_code"]) == ("failed", "out_of_credits")
    after = await user.get_json(f"/api/schedules/{s['id']}")
    assert (after["status"], after["paused_reason"]) == ("paused", "out_of_credits")


async def test_a_chain_is_scheduled_from_the_form(user: ApiClient) -> None:
    chain_id = await chain(user)
    picker = await (await user.get("/schedules/new")).text()
    assert f'value="chain:{chain_id}"' in picker
    form = await (await user.get(f"/schedules/new?target=chain:{chain_id}")).text()
    assert 'name="var-input"' in form and 'name="models"' not in form
    saved = await user.client.post(
        "/schedules/new",
        data={
            "csrf_token": user.csrf or "",
            "target_type": "chain",
            "target_id": chain_id,
            "name": "Digest",
            "var-input": "the text",
            "cron": "0 6 * * *",
            "timezone": "UTC",
        },
        allow_redirects=False,
    )
    assert saved.status == 303, await saved.text()
    [s] = (await user.get_json("/api/schedules"))["schedules"]
    assert (s["target_type"], s["values"], s["models"]) == ("chain", {"input": "the text"}, [])
    detail = await (await user.get(f"/schedules/{s['id']}")).text()
    assert "Shorten then polish (chain)" in detail
    assert "Each step's own" in detail


async def test_the_minutely_task_runs_what_is_due(user: ApiClient) -> None:
    """The task the scheduler sends every minute (``schedules.run_due``), with the real clock:
    a schedule whose next run has come is run by it."""
    from sqlalchemy import update

    from multinotes.keys import TASKS
    from multinotes.schedules.models import Schedule

    s = await schedule(user)
    past = datetime.now(UTC) - timedelta(minutes=1)
    async with user.app[DB].transaction() as session:
        await session.execute(
            update(Schedule).where(Schedule.id == s["id"]).values(next_run_at=past)
        )
    await user.app[TASKS].enqueue(runner.DUE_TASK)
    [run] = await finished_runs(user, s["id"])
    assert (run["status"], run["trigger"]) == ("succeeded", "schedule")
    assert at(run["due_at"]) == past
    after = await user.get_json(f"/api/schedules/{s['id']}")
    assert at(after["next_run_at"]) > datetime.now(UTC)
