"""What a template is made of, as the API and the pages' forms take it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from multinotes.prompts.variables import Variable

Visibility = Literal["private", "shared", "public"]


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=500)
    body: str = Field(
        min_length=1, max_length=50_000, description="The prompt, with {{variables}}."
    )
    system_prompt: str | None = Field(default=None, max_length=20_000)
    variables: list[Variable] = Field(default_factory=list, max_length=30)
    preferred_models: list[str] = Field(
        default_factory=list, max_length=10, description="Model ids the workspace selects."
    )
    tags: list[str] = Field(default_factory=list, max_length=10)
    visibility: Visibility = "private"
    shared_with: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Emails of people who may use it (with visibility `shared`).",
    )


class TemplatePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=500)
    body: str | None = Field(default=None, min_length=1, max_length=50_000)
    system_prompt: str | None = Field(default=None, max_length=20_000)
    variables: list[Variable] | None = Field(default=None, max_length=30)
    preferred_models: list[str] | None = Field(default=None, max_length=10)
    tags: list[str] | None = Field(default=None, max_length=10)
    visibility: Visibility | None = None
    shared_with: list[str] | None = Field(default=None, max_length=50)
