"""What the analytics API takes and gives. Money is in credits (1 credit = US$0.00001)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from multinotes.db import utcnow

#: The longest range one request may ask for.
MAX_RANGE_DAYS = 731
#: The range when none is given: the last 30 days, today included.
DEFAULT_DAYS = 30


class RangeQuery(BaseModel):
    """A date range, both ends included (UTC days). Defaults: the 30 days to today."""

    model_config = ConfigDict(extra="forbid")

    start: date | None = Field(default=None, alias="from", description="First day (YYYY-MM-DD).")
    end: date = Field(
        default_factory=lambda: utcnow().date(),
        alias="to",
        validate_default=True,
        description="Last day (YYYY-MM-DD); default today.",
    )

    @field_validator("end")
    @classmethod
    def _within(cls, end: date, info: ValidationInfo) -> date:
        start = info.data.get("start")
        if start is not None and start > end:
            raise ValueError("'to' must not be before 'from'")
        if start is not None and (end - start).days >= MAX_RANGE_DAYS:
            raise ValueError(f"a range covers at most {MAX_RANGE_DAYS} days")
        return end

    @model_validator(mode="after")
    def _fill(self) -> Self:
        if self.start is None:
            self.start = self.end - timedelta(days=DEFAULT_DAYS - 1)
        return self

    @property
    def first(self) -> date:
        assert self.start is not None
        return self.start

    @property
    def last(self) -> date:
        return self.end


class RangeOut(BaseModel):
    first_day: date
    last_day: date
    rolled_up_at: datetime | None = Field(
        description="When the rollup behind these figures last finished (hourly; None: never)."
    )


class ActivityDay(BaseModel):
    day: date
    dau: int
    wau: int = Field(description="Distinct active users in the 7 days to this day.")
    mau: int = Field(description="Distinct active users in the 30 days to this day.")
    signups: int


class ActiveOut(RangeOut):
    definition: str
    active_in_range: int = Field(description="Distinct users active on any day of the range.")
    latest: ActivityDay | None
    days: list[ActivityDay]


StepName = Literal["signed_up", "verified", "first_answer", "first_note", "first_payment"]


class FunnelStep(BaseModel):
    step: StepName
    label: str
    users: int
    of_signups: float = Field(description="Share of the range's sign-ups (0..1).")
    of_previous: float = Field(description="Share of the step before (0..1).")


class FunnelOut(RangeOut):
    steps: list[FunnelStep]


class RetentionCell(BaseModel):
    week: int = Field(description="Weeks after the sign-up week (0: that week).")
    users: int
    rate: float


class Cohort(BaseModel):
    cohort: date = Field(description="The Monday of the sign-up week.")
    users: int
    weeks: list[RetentionCell]


class RetentionOut(RangeOut):
    cohorts: list[Cohort]


class ModelUsage(BaseModel):
    model_id: str
    provider_id: str
    generations: int
    input_tokens: int
    output_tokens: int


class ProviderUsage(BaseModel):
    provider_id: str
    generations: int
    input_tokens: int
    output_tokens: int


class UsageDayOut(BaseModel):
    day: date
    generations: int
    tokens: int


class UsageOut(RangeOut):
    by_model: list[ModelUsage]
    by_provider: list[ProviderUsage]
    days: list[UsageDayOut]


class Margin(BaseModel):
    revenue: int = Field(description="Credits charged to users.")
    cost: int = Field(description="Credits the providers' list prices make of the same usage.")
    margin: int
    margin_percent: float | None = Field(description="Margin over revenue; None without revenue.")


class ModelMargin(Margin):
    model_id: str
    provider_id: str
    generations: int


class PlanMargin(Margin):
    plan_id: str | None = Field(description="None: users who had paid for no plan.")
    plan_name: str
    generations: int


class MarginOut(RangeOut):
    total: Margin
    by_model: list[ModelMargin]
    by_plan: list[PlanMargin]


class StorageDayOut(BaseModel):
    day: date
    files: int
    bytes: int


class StorageOut(RangeOut):
    growth_bytes: int = Field(description="Bytes at the range's end minus at its start.")
    days: list[StorageDayOut]


class RollupStatusOut(BaseModel):
    running: bool = Field(description="A run is under way (started by an admin or the hour).")
    started_at: datetime | None = Field(description="When the run under way started.")
    rolled_up_at: datetime | None = Field(
        description="When the last run finished (None: never); the figures are as of then."
    )
    first_day: date | None = Field(description="The first day the last finished run rebuilt.")
    last_day: date | None = Field(description="The last day it rebuilt.")
    days: int = Field(description="How many days it rebuilt.")
    failed_at: datetime | None = Field(
        description="When the last run to end failed (None: it finished, or none ended yet); "
        "a run unfinished after 15 minutes counts as failed."
    )
    failure: str | None = Field(
        description="Why it failed: the step it was on and the kind of error (the details are "
        "in the server log)."
    )
