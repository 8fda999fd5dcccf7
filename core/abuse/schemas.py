"""What the abuse API and the console's forms take and give."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RuleName = Literal[
    "signup_burst", "disposable_email", "credit_drain", "moderation_flags", "api_key_misuse"
]
Status = Literal["open", "dismissed", "warned", "blocked"]
Action = Literal["none", "rate_limit", "suspend"]


class HitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: RuleName | None = None
    status: Status | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, max_length=32, description="`next_cursor`.")


class HitOut(BaseModel):
    id: str
    rule: str
    rule_label: str
    status: Status
    action_taken: str = Field(
        description="What the rule did itself: none, rate_limited or suspended."
    )
    user_id: str | None
    user_email: str | None
    network: str | None = Field(description="The truncated network (/24 or /64), if any.")
    evidence: dict[str, Any]
    created_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    review_note: str | None


class HitList(BaseModel):
    hits: list[HitOut]
    next_cursor: str | None


class ActIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["dismiss", "warn", "block"]
    note: str = Field(
        default="",
        max_length=500,
        description="For warn: the message mailed and shown to the user; for block: the reason "
        "they are told when they try to log in; for dismiss: a note for staff.",
    )


class RuleOut(BaseModel):
    rule: RuleName
    label: str
    enabled: bool
    action: Action
    threshold: int
    window_minutes: int
    params: dict[str, Any]


class RuleList(BaseModel):
    rules: list[RuleOut]


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool
    action: Action
    threshold: int = Field(
        ge=1,
        le=1_000_000_000,
        description="What trips the rule: sign-ups from one network, credits spent "
        "(credit_drain), refusals (moderation_flags) or networks one key is used from "
        "(api_key_misuse).",
    )
    window_minutes: int = Field(ge=1, le=10_080, description="Within how many minutes.")
    extra_domains: list[str] = Field(
        default_factory=list,
        max_length=500,
        description="disposable_email only: domains refused besides the shipped list.",
    )
    refusal_threshold: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="api_key_misuse only: how many 403 or 429 answers to one key within the "
        "window trip the rule (default 50).",
    )
