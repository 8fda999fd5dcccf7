"""Request and response schemas of smart assistance, shared by its API and its pages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from multinotes.assist.notes import MAX_TAGS, SUMMARY_LENGTH

Category = Literal["code", "writing", "reasoning", "other", "image"]


class RecommendationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        min_length=1,
        max_length=2000,
        description="The prompt being written (its first 2,000 characters are enough to judge it).",
    )
    category: Category | None = Field(
        default=None, description="What the prompt is; default: guessed from its words."
    )
    limit: int = Field(default=3, ge=1, le=20)


class StatsOut(BaseModel):
    requests: int = Field(description="Finished or failed generations in the last 7 days.")
    failures: int
    availability: float | None = Field(description="Share that did not fail; null: no traffic.")
    p50_latency_ms: float | None = Field(description="Median first-token latency.")
    p50_duration_ms: float | None = Field(description="Median time for a whole answer.")


class PricingOut(BaseModel):
    input_per_million: float
    output_per_million: float
    per_image: float
    per_audio_minute: float


class RecommendedOut(BaseModel):
    model: str
    name: str
    provider: str
    score: float = Field(description="0 to 1, higher is better.")
    reasons: list[str]
    pricing: PricingOut
    stats: StatsOut


class RecommendationsOut(BaseModel):
    category: str
    guessed: bool = Field(description="True when the category was guessed from the prompt.")
    models: list[RecommendedOut]


class SuggestionOut(BaseModel):
    status: Literal["none", "pending", "ready", "failed", "accepted", "dismissed"]
    tags: list[str]
    summary: str
    model: str | None
    cost: int = Field(description="Credits it was charged.")
    error: str | None
    updated_at: datetime | None


class DetailsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS * 3)
    summary: str = Field(default="", max_length=SUMMARY_LENGTH)


class DetailsOut(BaseModel):
    tags: list[str]
    summary: str


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note_suggestions: bool = Field(
        description="Suggest tags and a summary when you save an answer as a note."
    )


class PreferencesOut(BaseModel):
    note_suggestions: bool
    instance_enabled: bool = Field(description="False when an administrator switched them off.")


class AdminAssistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note_suggestions: bool | None = Field(default=None, description="Suggestions on this instance.")
    model: str | None = Field(
        default=None,
        max_length=200,
        description="The model that writes suggestions; empty: the cheapest usable text model.",
    )
    summariser_model: str | None = Field(
        default=None,
        max_length=200,
        description=(
            "The model that summarises the older turns of conversations whose context policy "
            "is `summarise`; empty: the cheapest usable text model."
        ),
    )


class AdminAssistOut(BaseModel):
    note_suggestions: bool
    model: str | None
    summariser_model: str | None
