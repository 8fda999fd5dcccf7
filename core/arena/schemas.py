"""The arena's request schemas shared by its API and its pages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Category = Literal["code", "writing", "reasoning", "other"]


class LeaderboardQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["mine", "all"] = "all"
    category: Category | None = None
    since: datetime | None = Field(default=None, description="Votes from (inclusive).")
    until: datetime | None = Field(default=None, description="Votes before (exclusive).")
