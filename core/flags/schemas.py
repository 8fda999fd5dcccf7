"""What the flags and experiments API and the console's forms take and give."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from multinotes.segments import Segment

#: Flag and experiment names, as code spells them: ``new_editor``, ``checkout.v2``.
NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

Name = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Lower case letters, digits, '_', '.', '-'; starts with a letter; 64 at most.",
    ),
]
Description = Annotated[str, Field(max_length=500)]


def _allow_entries(values: list[str]) -> list[str]:
    entries: list[str] = []
    for raw in values:
        value = raw.strip()
        if not value:
            continue
        if "@" in value:
            if not _EMAIL.match(value):
                raise ValueError(f"{value!r} is not an email address")
            value = value.lower()
        elif not _USER_ID.match(value):
            raise ValueError(f"{value!r} is neither an email address nor a user id")
        if value not in entries:
            entries.append(value)
    return entries


AllowList = Annotated[
    list[str],
    Field(max_length=500, description="User ids or email addresses it is always on for."),
    AfterValidator(_allow_entries),
]
Rollout = Annotated[int, Field(ge=0, le=100, description="Percent of users it is on for.")]


class FlagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    enabled: bool = False
    rollout: Rollout = 100
    allow_list: AllowList = Field(default_factory=list)
    segment: Segment = Field(default_factory=Segment)


class FlagPatch(BaseModel):
    """Only the fields sent change; the name never does (code refers to it)."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    enabled: bool | None = None
    rollout: Rollout | None = None
    allow_list: AllowList | None = None
    segment: Segment | None = None


class FlagOut(BaseModel):
    id: str
    name: str
    description: str
    enabled: bool
    rollout: int
    allow_list: list[str]
    segment: Segment
    created_at: str
    updated_at: str


class FlagList(BaseModel):
    flags: list[FlagOut]


class MyFlags(BaseModel):
    flags: list[str] = Field(description="The names of the flags on for you.")


class MyVariant(BaseModel):
    experiment: str
    variant: str | None = Field(description="Your variant; null: not running, show the default.")


def _distinct_variants(variants: list[Variant]) -> list[Variant]:
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError("variant names must differ")
    return variants


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    weight: int = Field(1, ge=1, le=1000, description="Share of users, relative to the others.")


Variants = Annotated[
    list[Variant],
    Field(min_length=2, max_length=10, description="The first is the control."),
    AfterValidator(_distinct_variants),
]
ConversionEvent = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        description="The domain event that counts as converting (GET /api/events/catalog).",
    ),
]


class ExperimentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    variants: Variants
    conversion_event: ConversionEvent


class ExperimentPatch(BaseModel):
    """Variants and the conversion event change only before the experiment first starts."""

    model_config = ConfigDict(extra="forbid")

    description: Description | None = None
    variants: Variants | None = None
    conversion_event: ConversionEvent | None = None


Status = Literal["draft", "running", "stopped"]


class ExperimentOut(BaseModel):
    id: str
    name: str
    description: str
    variants: list[Variant]
    conversion_event: str
    status: Status
    started_at: str | None
    stopped_at: str | None
    created_at: str


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]


class Interval(BaseModel):
    low: float
    high: float


class VariantResult(BaseModel):
    name: str
    control: bool
    exposed: int
    converted: int
    rate: float = Field(description="converted / exposed (0 when nobody was exposed).")
    interval: Interval = Field(description="95% Wilson score interval of the rate.")
    difference: float | None = Field(
        description="rate minus the control's rate (None for the control, and while it or "
        "the control has nobody exposed)."
    )
    difference_interval: Interval | None = Field(
        description="95% interval of the difference (Newcombe's method from the two Wilson "
        "intervals); None when `difference` is. Excludes 0: the difference is significant."
    )


class ExperimentResults(BaseModel):
    experiment: ExperimentOut
    variants: list[VariantResult]
