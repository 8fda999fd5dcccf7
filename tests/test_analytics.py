"""Analytics for operators (issue #19 item 8): dashboards of active users, the activation
funnel, cohort retention, generations and tokens per model and provider, AI cost against
revenue per model and per plan, and storage growth. Figures come from rollup tables that an
hourly task (or an admin, now) rebuilds; rebuilding twice counts nothing twice. Admins only.

The data is seeded straight into the tables with chosen dates, so every expected figure below
is worked out by hand from the seed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from multinotes.analytics import rollup
from multinotes.analytics.models import ActiveDay, UsageDay
from multinotes.billing.models import Order, Plan
from multinotes.chat.models import Conversation, Generation, Message, MessageStatus
from multinotes.db import utcnow
from multinotes.files.models import File
from multinotes.keys import DB, TASKS
from multinotes.models import User
from multinotes.notes.models import Document
from multinotes.testing import ApiClient
from tests.support.waiting import eventually

#: The Monday three weeks before this week's: the first cohort (weeks 0..3 have begun).
THIS_MONDAY = rollup.week_of(utcnow().date())
C = THIS_MONDAY - timedelta(weeks=3)


def at(offset: int, hour: int = 12) -> datetime:
    return datetime.combine(C + timedelta(days=offset), time(hour), tzinfo=UTC)


def day(offset: int) -> str:
    return (C + timedelta(days=offset)).isoformat()


#: The analytics tasks as the app registers them, schedules included.
SCHEDULED_TASKS = rollup.analytics_tasks


@pytest.fixture(autouse=True)
def no_hourly_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app under test does not schedule its hourly run: in embedded mode it would start at
    minute 41 beside the runs these tests start themselves (409 ``rollup_running``, or a run
    that is incremental where the test needs the day's first, whole one). The schedule itself
    is checked by ``test_the_rollup_is_an_hourly_task``."""
    monkeypatch.setattr(
        rollup,
        "analytics_tasks",
        lambda: [dataclasses.replace(task, schedule=None) for task in SCHEDULED_TASKS()],
    )
    from multinotes.core_tasks import core_tasks  # what create_app registers

    assert not [t for t in core_tasks() if t.name == "analytics.rollup" and t.schedule]


@pytest.fixture
async def seeded(admin: ApiClient) -> dict[str, str]:
    """Four users besides the admin (who signed up today):

    - u1 signs up on C (Monday), verified; answers on C, C+8 (week 1), C+15 (week 2); saves a
      note; pays for the Pro plan on C+1.
    - u2 signs up on C+1, verified; one failed generation on C+1 (active, no answer).
    - u3 signs up on C+2, never verified, never does anything.
    - u4 signs up on C+9 (the next cohort), verified; one answer on C+9; saves a note.
    Files: 1,000 bytes on C+2, 500 bytes on C+10.
    """
    users = {
        "u1": User(
            email="u1@example.com", name="U1", created_at=at(0, 9), email_verified_at=at(0, 10)
        ),
        "u2": User(
            email="u2@example.com", name="U2", created_at=at(1, 9), email_verified_at=at(1, 10)
        ),
        "u3": User(email="u3@example.com", name="U3", created_at=at(2, 9)),
        "u4": User(
            email="u4@example.com", name="U4", created_at=at(9, 9), email_verified_at=at(9, 10)
        ),
    }
    pro = Plan(name="Pro", kind="credits", credits=1000, price=900, currency="EUR")
    async with admin.app[DB].transaction() as session:
        session.add_all([*users.values(), pro])
    ids = {name: u.id for name, u in users.items()}

    rows: list[Any] = []
    for user, offset, model, provider, cost, provider_cost, status in (
        ("u1", 0, "m-a", "p1", 1000, 600, MessageStatus.COMPLETE),
        ("u1", 8, "m-a", "p1", 2000, 1500, MessageStatus.COMPLETE),
        ("u1", 15, "m-b", "p2", 500, None, MessageStatus.COMPLETE),
        ("u2", 1, "m-a", "p1", 0, 0, MessageStatus.FAILED),
        ("u4", 9, "m-b", "p2", 300, 100, MessageStatus.COMPLETE),
    ):
        conversation = Conversation(id=f"c{len(rows)}", user_id=ids[user], created_at=at(offset))
        answer = Message(
            id=f"m{len(rows)}",
            conversation_id=conversation.id,
            user_id=ids[user],
            role="assistant",
            content="a",
            model_id=model,
            status=status,
            created_at=at(offset),
        )
        rows.append(conversation)
        rows.append(answer)
        rows.append(
            Generation(
                user_id=ids[user],
                conversation_id=conversation.id,
                message_id=answer.id,
                model_id=model,
                provider_id=provider,
                status=status,
                input_tokens=100,
                output_tokens=200 if status == MessageStatus.COMPLETE else 0,
                cost=cost,
                provider_cost=provider_cost,
                created_at=at(offset),
            )
        )
    async with admin.app[DB].transaction() as session:
        for row in rows:
            session.add(row)
            await session.flush()
        session.add_all(
            [
                Document(user_id=ids["u1"], title="n1", created_at=at(3), updated_at=at(3)),
                Document(user_id=ids["u4"], title="n4", created_at=at(10), updated_at=at(10)),
                Order(
                    user_id=ids["u1"],
                    plan_id=pro.id,
                    backend="manual",
                    status="paid",
                    subtotal=900,
                    total=900,
                    currency="EUR",
                    credits=1000,
                    expires_at=at(2),
                    paid_at=at(1),
                    created_at=at(1),
                ),
                Order(
                    user_id=ids["u2"],
                    plan_id=pro.id,
                    backend="manual",
                    status="pending",
                    subtotal=900,
                    total=900,
                    currency="EUR",
                    credits=1000,
                    expires_at=at(2),
                ),
                File(
                    user_id=ids["u1"],
                    name="a.txt",
                    content_type="text/plain",
                    kind="text",
                    size=1000,
                    sha256="0" * 64,
                    storage_key="k1",
                    created_at=at(2),
                ),
                File(
                    user_id=ids["u4"],
                    name="b.txt",
                    content_type="text/plain",
                    kind="text",
                    size=500,
                    sha256="1" * 64,
                    storage_key="k2",
                    created_at=at(10),
                ),
            ]
        )
    return {**ids, "pro": pro.id}


async def rolled_up(admin: ApiClient, *, fails: bool = False) -> dict[str, Any]:
    """Run the rollup now, as an admin does: it runs in the background (202, running), and its
    status says when it has finished and which days it rebuilt (or, ``fails``, that it
    failed)."""
    response = await admin.post("/api/admin/analytics/rollup")
    assert response.status == 202, await response.text()
    started = await response.json()
    status: dict[str, Any] = {}

    async def finished() -> bool:
        status.update(await admin.get_json("/api/admin/analytics/rollup"))
        return not status["running"]

    await eventually(finished, timeout=60)
    if fails:
        assert status["failed_at"] is not None and status["failed_at"] >= started["started_at"]
        return status
    assert status["rolled_up_at"] is not None
    assert started["rolled_up_at"] is None or status["rolled_up_at"] > started["rolled_up_at"]
    return status


async def get(admin: ApiClient, dashboard: str, first: int, last: int) -> dict[str, Any]:
    return dict(
        await admin.get_json(f"/api/admin/analytics/{dashboard}?from={day(first)}&to={day(last)}")
    )


async def test_the_activation_funnel_counts_each_step_of_the_ranges_signups(
    admin: ApiClient, seeded: dict[str, str]
):
    run = await rolled_up(admin)
    assert run["first_day"] == day(0) and run["last_day"] == utcnow().date().isoformat()
    funnel = await get(admin, "funnel", 0, 13)
    steps = {s["step"]: s for s in funnel["steps"]}
    # Signed up C..C+13: u1, u2, u3, u4 (not the admin, who signed up today).
    assert [(s["step"], s["users"]) for s in funnel["steps"]] == [
        ("signed_up", 4),
        ("verified", 3),  # u1, u2, u4
        ("first_answer", 2),  # u1, u4 (u2's only generation failed)
        ("first_note", 2),  # u1, u4
        ("first_payment", 1),  # u1 (u2's order is still pending)
    ]
    assert steps["verified"]["of_signups"] == 0.75
    assert steps["first_payment"]["of_previous"] == 0.5
    assert funnel["rolled_up_at"] is not None
    # The first cohort's week alone: u1, u2, u3.
    first_week = await get(admin, "funnel", 0, 6)
    assert [s["users"] for s in first_week["steps"]] == [3, 2, 1, 1, 1]


async def test_retention_by_signup_week(admin: ApiClient, seeded: dict[str, str]):
    await rolled_up(admin)
    cohorts = {c["cohort"]: c for c in (await get(admin, "retention", 0, 20))["cohorts"]}
    first = cohorts[day(0)]
    # u1, u2, u3 signed up in week C; u1 and u2 were active in it, u1 alone in weeks 1 and 2.
    assert first["users"] == 3
    assert [(w["week"], w["users"]) for w in first["weeks"]] == [(0, 2), (1, 1), (2, 1)]
    assert first["weeks"][0]["rate"] == 0.6667
    second = cohorts[day(7)]
    assert second["users"] == 1 and second["weeks"][:2] == [
        {"week": 0, "users": 1, "rate": 1.0},
        {"week": 1, "users": 0, "rate": 0.0},
    ]


async def test_active_users_per_day_week_and_month(admin: ApiClient, seeded: dict[str, str]):
    await rolled_up(admin)
    active = await get(admin, "active", 0, 15)
    days = {d["day"]: d for d in active["days"]}
    assert len(days) == 16 and "generation" in active["definition"]
    assert (days[day(0)]["dau"], days[day(0)]["signups"]) == (1, 1)
    assert days[day(1)]["dau"] == 1 and days[day(1)]["wau"] == 2  # u2's failed try counts
    assert days[day(2)]["dau"] == 0 and days[day(2)]["signups"] == 1
    assert days[day(9)]["wau"] == 2  # C+3..C+9: u1 (C+8), u4 (C+9)
    assert days[day(15)]["mau"] == 3  # u1, u2, u4
    assert active["latest"] == days[day(15)]
    assert active["active_in_range"] == 3
    assert (await get(admin, "active", 2, 7))["active_in_range"] == 0


async def test_generations_and_tokens_by_model_and_provider(
    admin: ApiClient, seeded: dict[str, str]
):
    await rolled_up(admin)
    usage = await get(admin, "usage", 0, 20)
    assert usage["by_model"] == [
        {
            "model_id": "m-a",
            "provider_id": "p1",
            "generations": 3,
            "input_tokens": 300,
            "output_tokens": 400,
        },
        {
            "model_id": "m-b",
            "provider_id": "p2",
            "generations": 2,
            "input_tokens": 200,
            "output_tokens": 400,
        },
    ]
    assert [p["provider_id"] for p in usage["by_provider"]] == ["p1", "p2"]
    assert {d["day"]: d["generations"] for d in usage["days"]} == {
        day(0): 1,
        day(1): 1,
        day(8): 1,
        day(9): 1,
        day(15): 1,
    }


async def test_gross_margin_per_model_and_per_plan(admin: ApiClient, seeded: dict[str, str]):
    await rolled_up(admin)
    margin = await get(admin, "margin", 0, 20)
    models = {m["model_id"]: m for m in margin["by_model"]}
    # m-a: charged 1000 + 2000 + 0, providers' price 600 + 1500 + 0.
    assert models["m-a"] == {
        "model_id": "m-a",
        "provider_id": "p1",
        "generations": 3,
        "revenue": 3000,
        "cost": 2100,
        "margin": 900,
        "margin_percent": 30.0,
    }
    # m-b: 500 (no provider cost recorded: counted at its charge) + 300 (cost 100).
    assert (models["m-b"]["revenue"], models["m-b"]["cost"], models["m-b"]["margin_percent"]) == (
        800,
        600,
        25.0,
    )
    assert margin["total"] == {
        "revenue": 3800,
        "cost": 2700,
        "margin": 1100,
        "margin_percent": 28.95,
    }
    plans = {p["plan_name"]: p for p in margin["by_plan"]}
    # u1's answers after paying on C+1 are the Pro plan's; before it, and everyone else's, none.
    assert plans["Pro"]["plan_id"] == seeded["pro"]
    assert (plans["Pro"]["generations"], plans["Pro"]["revenue"], plans["Pro"]["cost"]) == (
        2,
        2500,
        2000,
    )
    assert plans["Pro"]["margin_percent"] == 20.0
    none = plans["No plan bought"]
    assert (none["plan_id"], none["generations"], none["revenue"], none["cost"]) == (
        None,
        3,
        1300,
        700,
    )


async def test_storage_growth(admin: ApiClient, seeded: dict[str, str]):
    await rolled_up(admin)
    storage = await get(admin, "storage", 5, 12)
    assert storage["days"][0] == {"day": day(5), "files": 1, "bytes": 1000}
    assert storage["days"][-1] == {"day": day(12), "files": 2, "bytes": 1500}
    assert storage["growth_bytes"] == 500


async def test_rolling_up_twice_counts_nothing_twice(admin: ApiClient, seeded: dict[str, str]):
    await rolled_up(admin)
    before = {
        name: await get(admin, name, 0, 20)
        for name in ("active", "funnel", "retention", "usage", "margin", "storage")
    }
    again = await rolled_up(admin)
    # The second run rebuilds from the day an hour before the last run started (today, or
    # yesterday too in the first hour after midnight), and the per-user tables incrementally.
    assert again["first_day"] == (utcnow() - rollup.SETTLE).date().isoformat()
    assert again["last_day"] == utcnow().date().isoformat() and again["days"] <= 2
    # And a full rebuild of every day, as a backfill would do.
    await rollup.run(admin.app[DB], first=C, last=utcnow().date())
    for name, figures in before.items():
        after = await get(admin, name, 0, 20)
        figures.pop("rolled_up_at"), after.pop("rolled_up_at")
        assert after == figures, name
    async with admin.app[DB].read() as session:
        assert (
            await session.scalar(select(func.count()).select_from(UsageDay)) == 5
        )  # day, model, plan
        assert await session.scalar(select(func.count()).select_from(ActiveDay)) == 5


async def test_the_rollup_is_an_hourly_task(admin: ApiClient, seeded: dict[str, str]):
    from multinotes.core_tasks import core_tasks

    assert "analytics.rollup" in {t.name for t in core_tasks()}
    task = {t.name: t for t in SCHEDULED_TASKS()}["analytics.rollup"]
    assert task.schedule == "41 * * * *"
    assert "analytics.rollup" in admin.app[TASKS].names()
    assert await task.func(admin.app) > 20  # every day from C to today
    assert (await get(admin, "funnel", 0, 13))["steps"][0]["users"] == 4


async def test_before_any_rollup_the_dashboards_are_empty_not_broken(admin: ApiClient):
    for name in ("active", "funnel", "retention", "usage", "margin", "storage"):
        figures = await admin.get_json(f"/api/admin/analytics/{name}")
        assert figures["rolled_up_at"] is None
        today = utcnow().date()
        assert (figures["first_day"], figures["last_day"]) == (
            (today - timedelta(days=29)).isoformat(),
            today.isoformat(),
        )


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2026-05-02&to=2026-05-01", "to"),
        ("from=2020-01-01&to=2026-01-01", "to"),
        ("days=7", "days"),
    ],
)
async def test_a_bad_range_is_a_field_error(admin: ApiClient, query: str, field: str):
    response = await admin.get(f"/api/admin/analytics/usage?{query}")
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [field]


async def test_only_admins_see_analytics(admin: ApiClient, make_client: Any):
    someone = await make_client()
    await someone.register_and_login("someone@example.com")
    for path in (
        "/api/admin/analytics/active",
        "/api/admin/analytics/margin",
        "/admin/analytics",
        "/admin/analytics/usage.csv",
    ):
        assert (await someone.get(path, allow_redirects=False)).status == 403, path
    assert (await someone.post("/api/admin/analytics/rollup")).status == 403
    assert (await someone.post("/admin/analytics/rollup", allow_redirects=False)).status == 403
    visitor = await make_client()
    assert (await visitor.get("/api/admin/analytics/usage")).status == 401


async def test_the_page_draws_every_dashboard_with_its_table_and_csv(
    admin: ApiClient, seeded: dict[str, str]
):
    response = await admin.post("/admin/analytics/rollup", allow_redirects=False)
    assert response.status == 303
    await eventually(lambda: _not_running(admin), timeout=60)
    page = await admin.get(f"/admin/analytics?from={day(0)}&to={day(20)}")
    assert page.status == 200
    html = await page.text()
    for table in (
        "table-active",
        "table-funnel",
        "table-retention",
        "table-usage",
        "table-margin-models",
        "table-margin-plans",
        "table-storage",
    ):
        assert f'id="{table}"' in html, table
    assert html.count("<svg") >= 5 and 'role="img"' in html
    assert "US$0.0380" in html  # revenue 3,800 credits
    csv = await admin.get(f"/admin/analytics/margin-models.csv?from={day(0)}&to={day(20)}")
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    lines = (await csv.text()).splitlines()
    assert lines[0].startswith("model_id,provider_id,generations")
    assert lines[1] == "m-a,p1,3,3000,2100,900,30.0"
    assert (await admin.get("/admin/analytics/nothing.csv")).status == 404
    bad = await admin.get("/admin/analytics?from=someday")
    assert bad.status == 422 and "The range is invalid" in await bad.text()


async def test_the_api_is_in_the_openapi_document_for_admin_keys(api: ApiClient):
    paths = (await api.get_json("/api/openapi.json"))["paths"]
    for name in ("active", "funnel", "retention", "usage", "margin", "storage"):
        operation = paths[f"/api/admin/analytics/{name}"]["get"]
        assert {p["name"] for p in operation["parameters"]} >= {"from", "to"}, name
        assert operation["x-api-key-scopes"] == ["admin"]
        assert "analytics" in operation["tags"]
    assert paths["/api/admin/analytics/rollup"]["post"]["x-api-key-scopes"] == ["admin"]


async def test_a_rollup_under_way_is_not_run_twice_at_once(
    admin: ApiClient, seeded: dict[str, str]
):
    from multinotes.analytics.models import RollupRun

    async with admin.app[DB].transaction() as session:
        session.add(RollupRun(started_at=utcnow() - timedelta(minutes=2)))
    refused = await admin.post("/api/admin/analytics/rollup")
    assert refused.status == 409
    assert (await refused.json())["error"]["code"] == "rollup_running"
    # The hourly task skips its turn instead of failing.
    from multinotes.analytics.rollup import rollup_task

    assert await rollup_task(admin.app) == 0
    assert (await admin.get_json("/api/admin/analytics/usage"))["rolled_up_at"] is None
    # A run that died (started 20 minutes ago, never finished) holds nobody back.
    async with admin.app[DB].transaction() as session:
        await session.execute(
            RollupRun.__table__.update().values(started_at=utcnow() - timedelta(minutes=20))
        )
    assert (await rolled_up(admin))["days"] > 20


async def test_a_failed_run_says_why_and_the_next_one_may_start(
    admin: ApiClient, seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    """A run that fails is kept as failed, with when and a short reason (the step, the kind of
    error; the traceback stays in the server log), in the status API and on the page; it holds
    no later run back, and the first run that finishes clears it."""
    from multinotes.analytics.models import RollupRun
    from multinotes.analytics.rollup import rollup_task

    async def on_fire(db: Any) -> None:
        raise RuntimeError("SELECT secret_column FROM users WHERE email = 'a@example.com'")

    working = rollup._rebuild_retention
    monkeypatch.setattr(rollup, "_rebuild_retention", on_fire)
    failed = await rolled_up(admin, fails=True)
    reason = (
        "It failed while rebuilding the retention table (RuntimeError); the details are in "
        "the server log."
    )
    assert failed["running"] is False and failed["rolled_up_at"] is None
    assert failed["failure"] == reason and failed["failed_at"] is not None
    html = await (await admin.get(f"/admin/analytics?from={day(0)}&to={day(20)}")).text()
    assert 'id="rollup-failed"' in html and reason in html
    assert "secret_column" not in html and "Traceback" not in html
    fragment = await (await admin.get(f"/admin/analytics/rollup?from={day(0)}&watching=1")).text()
    assert 'id="rollup-failed"' in fragment and 'id="rollup-done"' not in fragment
    assert "hx-get" not in fragment  # the page stops polling
    # The hourly task records its failure the same way (the worker goes on: nothing raised).
    assert await rollup_task(admin.app) == 0
    async with admin.app[DB].read() as session:
        runs = (await session.execute(select(RollupRun.failed_at, RollupRun.failure))).all()
    assert len(runs) == 2 and all(at is not None and why == reason for at, why in runs)

    monkeypatch.setattr(rollup, "_rebuild_retention", working)
    done = await rolled_up(admin)
    assert done["failure"] is None and done["failed_at"] is None
    assert done["rolled_up_at"] is not None and done["days"] > 20
    assert (await get(admin, "funnel", 0, 13))["steps"][0]["users"] == 4

    # A run whose process stopped (unfinished after 15 minutes) is reported failed too.
    async with admin.app[DB].transaction() as session:
        session.add(RollupRun(started_at=utcnow() - timedelta(minutes=20)))
    status = await admin.get_json("/api/admin/analytics/rollup")
    assert status["running"] is False and status["rolled_up_at"] == done["rolled_up_at"]
    assert status["failure"] == "It did not finish within 15 minutes (its process stopped)."


async def test_run_now_runs_in_the_background_and_the_page_follows_it(
    admin: ApiClient, seeded: dict[str, str]
):
    from multinotes.analytics.models import RollupRun

    # Accepted at once (202, running); the work is a task, not the request.
    response = await admin.post("/api/admin/analytics/rollup")
    assert response.status == 202
    accepted = await response.json()
    assert accepted["running"] is True and accepted["started_at"] is not None
    assert "analytics.rollup_now" in admin.app[TASKS].names()
    await eventually(lambda: _not_running(admin), timeout=60)  # then it finishes
    assert (await get(admin, "funnel", 0, 13))["steps"][0]["users"] == 4

    # While a run is under way the page says so, disables the button and polls its status.
    async with admin.app[DB].transaction() as session:
        session.add(RollupRun(started_at=utcnow() - timedelta(seconds=5)))
    html = await (await admin.get(f"/admin/analytics?from={day(0)}&to={day(20)}")).text()
    assert 'id="rollup-running"' in html
    assert 'hx-get="/admin/analytics/rollup?' in html and 'hx-trigger="every 2s"' in html
    assert "watching=1" in html
    refused = await admin.post("/admin/analytics/rollup", allow_redirects=False)
    assert refused.status == 303
    assert "running already" in await (await admin.get("/admin/analytics")).text()
    assert (await admin.post("/api/admin/analytics/rollup")).status == 409

    # Once it has finished, the polled fragment stops polling and offers the new figures.
    async with admin.app[DB].transaction() as session:
        await session.execute(
            RollupRun.__table__.update()
            .where(RollupRun.finished_at.is_(None))
            .values(finished_at=utcnow(), first_day=utcnow().date(), last_day=utcnow().date())
        )
    fragment = await admin.get(f"/admin/analytics/rollup?from={day(0)}&watching=1")
    assert fragment.status == 200
    text = await fragment.text()
    assert 'id="rollup-done"' in text and "1 day(s) rebuilt" in text and "hx-get" not in text
    assert f'href="/admin/analytics?from={day(0)}"' in text


async def _not_running(admin: ApiClient) -> bool:
    return not (await admin.get_json("/api/admin/analytics/rollup"))["running"]


async def test_an_hourly_run_adds_what_happened_since_as_a_whole_rebuild_would(
    admin: ApiClient, seeded: dict[str, str]
):
    """After the day's first run (whole), later runs that day read only what happened since
    the last one, and end with the same figures as rebuilding everything."""
    await rolled_up(admin)
    now = utcnow()
    late = User(email="u5@example.com", name="U5", created_at=now, email_verified_at=now)
    async with admin.app[DB].transaction() as session:
        session.add(late)
        await session.execute(
            User.__table__.update().where(User.id == seeded["u3"]).values(email_verified_at=now)
        )
        conversation = Conversation(id="c-late", user_id=seeded["u3"], created_at=now)
        answer = Message(
            id="m-late",
            conversation_id="c-late",
            user_id=seeded["u3"],
            role="assistant",
            content="a",
            model_id="m-a",
            status=MessageStatus.COMPLETE,
            created_at=now,
        )
        session.add(conversation)
        await session.flush()
        session.add(answer)
        await session.flush()
        session.add(
            Generation(
                user_id=seeded["u3"],
                conversation_id="c-late",
                message_id="m-late",
                model_id="m-a",
                provider_id="p1",
                status=MessageStatus.COMPLETE,
                input_tokens=10,
                output_tokens=20,
                cost=40,
                provider_cost=30,
                created_at=now,
            )
        )
        session.add(Document(user_id=seeded["u3"], title="n3", created_at=now, updated_at=now))
    incremental = await rolled_up(admin)
    assert incremental["days"] <= 2
    today = (now.date() - C).days
    names = ("active", "funnel", "retention", "usage", "margin", "storage")
    after = {name: await get(admin, name, 0, today) for name in names}
    steps = {s["step"]: s["users"] for s in (await get(admin, "funnel", 0, 2))["steps"]}
    # u3 (signed up on C+2) verified, got an answer and saved a note, all just now.
    assert steps["verified"] == 3 and steps["first_answer"] == 2 and steps["first_note"] == 2

    await rollup.run(admin.app[DB], first=C, last=now.date())
    for name in names:
        whole = await get(admin, name, 0, today)
        whole.pop("rolled_up_at"), after[name].pop("rolled_up_at")
        assert whole == after[name], name
