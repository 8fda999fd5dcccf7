"""What a chain is made of, as the API and the editor's form take it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from multinotes.chains.steps import MAX_STEPS, Step


class ChainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=500)
    steps: list[Step] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description="In order. A step's prompt may use {{input}} and {{stepN}} of earlier steps.",
    )


class ChainPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    steps: list[Step] | None = Field(default=None, min_length=1, max_length=MAX_STEPS)
