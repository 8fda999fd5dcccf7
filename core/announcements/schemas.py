"""What the announcements API and the console's form take and give."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from multinotes.segments import Segment


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


def _utc(value: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC (what the console's form says it is).
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if value is not None else None


Severity = Literal["info", "warning"]
Kind = Literal["banner", "message"]


class AnnouncementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
    body: Annotated[str, Field(min_length=1, max_length=5_000), AfterValidator(_not_blank)] = Field(
        description="Markdown, rendered sanitised."
    )
    severity: Severity = "info"
    kind: Kind = Field(
        default="banner",
        description="`banner`: across the top of every page until dismissed; `message`: an "
        "in-app message shown once as a dialog (closing it dismisses it).",
    )
    segment: Segment = Field(
        default_factory=Segment,
        description="Who sees it (plan, organisation, sign-up dates); empty: everyone.",
    )
    starts_at: Annotated[datetime | None, AfterValidator(_utc)] = Field(
        default=None, description="When the banner starts showing (default: now)."
    )
    ends_at: Annotated[datetime | None, AfterValidator(_utc)] = Field(
        default=None, description="When it stops (default: until removed)."
    )

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        starts = info.data.get("starts_at")
        if value is not None and starts is not None and value <= starts:
            raise ValueError("must be after the start")
        return value


class AnnouncementOut(BaseModel):
    id: str
    title: str
    body: str
    html: str = Field(description="The body rendered to sanitised HTML.")
    severity: Severity
    kind: Kind
    starts_at: str
    ends_at: str | None


class AdminAnnouncementOut(AnnouncementOut):
    segment: Segment = Field(description="Who sees it; empty: everyone.")


class AdminAnnouncementList(BaseModel):
    announcements: list[AdminAnnouncementOut]


class AnnouncementList(BaseModel):
    announcements: list[AnnouncementOut]
