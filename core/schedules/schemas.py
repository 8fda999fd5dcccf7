"""What a schedule is made of, as the API and the pages' forms take it, and how it is shown."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from multinotes.schedules import cron
from multinotes.schedules.service import ScheduleView

TargetType = Literal["template", "chain"]
Value = str | float | None


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    target_type: TargetType = Field(
        default="template", description="What runs: a prompt template or one of your chains."
    )
    target_id: str = Field(min_length=1, max_length=32, description="The template's or chain's id.")
    values: dict[str, Value] = Field(
        default_factory=dict,
        description="The template's variable values (a chain: `input`), fixed for every run.",
    )
    models: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Model ids to ask (a template needs one at least; a chain's steps name "
        "their own models, so it takes none).",
    )
    cron: str = Field(
        max_length=120,
        description="Five fields (minute hour day month weekday) or @daily, @weekly, ...; "
        "read in `timezone`. At most one run every 15 minutes (the operator's setting).",
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="An IANA zone; default: your profile's."
    )
    folder_id: str | None = Field(
        default=None, max_length=32, description="Your folder the answers are saved in."
    )
    email_results: bool = Field(default=False, description="Mail you the answers of each run.")


class SchedulePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    target_type: TargetType | None = None
    target_id: str | None = Field(default=None, min_length=1, max_length=32)
    values: dict[str, Value] | None = None
    models: list[str] | None = Field(default=None, max_length=10)
    cron: str | None = Field(default=None, max_length=120)
    timezone: str | None = Field(default=None, max_length=64)
    folder_id: str | None = Field(default=None, max_length=32)
    email_results: bool | None = None


class RunResult(BaseModel):
    model: str
    status: str = Field(description="`complete`, `stopped` or `failed`.")
    cost: int
    message_id: str | None
    note_id: str | None = Field(description="The note the answer was saved as.")
    error: str | None


class RunOut(BaseModel):
    id: str
    schedule_id: str
    trigger: Literal["schedule", "manual"]
    status: Literal["queued", "running", "succeeded", "partial", "failed"]
    due_at: str
    started_at: str | None
    finished_at: str | None
    cost: int = Field(description="Credits the run's answers cost.")
    error_code: str | None
    error_message: str | None
    conversation_id: str | None
    results: list[RunResult]


class RunPage(BaseModel):
    runs: list[RunOut]
    total: int


class UpcomingRun(BaseModel):
    at: str = Field(description="UTC, ISO 8601.")
    local: str = Field(description="On the schedule's wall clock, as people read it.")


class ScheduleOut(BaseModel):
    id: str
    name: str
    target_type: TargetType
    target_id: str
    target_title: str
    values: dict[str, Value]
    models: list[str]
    cron: str
    timezone: str
    folder_id: str | None
    folder_name: str | None
    email_results: bool
    status: Literal["active", "paused"]
    paused_reason: Literal["user", "out_of_credits", "target_missing", "target_changed"] | None
    next_run_at: str | None
    upcoming: list[UpcomingRun] = Field(description="The next few runs (none while paused).")
    last_run: RunOut | None
    created_at: str
    updated_at: str


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class PreviewQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cron: str = Field(max_length=120)
    timezone: str | None = Field(default=None, max_length=64)
    count: int = Field(default=5, ge=1, le=20)


class Preview(BaseModel):
    cron: str
    timezone: str
    upcoming: list[UpcomingRun]


class RunsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=1_000_000)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def run_out(run: Any) -> dict[str, Any]:
    return {
        "id": run.id,
        "schedule_id": run.schedule_id,
        "trigger": run.trigger,
        "status": run.status,
        "due_at": run.due_at.isoformat(),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "cost": run.cost,
        "error_code": run.error_code,
        "error_message": run.error_message,
        "conversation_id": run.conversation_id,
        "results": [
            {
                "model": r.get("model", ""),
                "status": r.get("status", ""),
                "cost": int(r.get("cost") or 0),
                "message_id": r.get("message_id"),
                "note_id": r.get("note_id"),
                "error": r.get("error"),
            }
            for r in run.results or []
        ],
    }


def upcoming(expression: str, timezone: str, after: Any, count: int) -> list[dict[str, str]]:
    return [
        {"at": moment.isoformat(), "local": cron.describe(moment, timezone)}
        for moment in cron.next_runs(expression, timezone, after, count)
    ]


#: How many upcoming runs a schedule shows.
UPCOMING = 3


def _upcoming_from(expression: str, timezone: str, first: Any) -> list[dict[str, str]]:
    if first is None:
        return []
    head = {"at": first.isoformat(), "local": cron.describe(first, timezone)}
    return [head, *upcoming(expression, timezone, first, UPCOMING - 1)]


def schedule_out(view: ScheduleView) -> dict[str, Any]:
    s = view.schedule
    return {
        "id": s.id,
        "name": s.name,
        "target_type": s.target_type,
        "target_id": s.target_id,
        "target_title": view.target_title,
        "values": dict(s.values or {}),
        "models": list(s.models or []),
        "cron": s.cron,
        "timezone": s.timezone,
        "folder_id": s.folder_id if view.folder_name is not None else None,
        "folder_name": view.folder_name,
        "email_results": s.email_results,
        "status": s.status,
        "paused_reason": s.paused_reason,
        "next_run_at": _iso(s.next_run_at),
        "upcoming": _upcoming_from(s.cron, s.timezone, s.next_run_at),
        "last_run": run_out(view.last_run) if view.last_run else None,
        "created_at": s.created_at.isoformat(),
        "updated_at": s.updated_at.isoformat(),
    }
