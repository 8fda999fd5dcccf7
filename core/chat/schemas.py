"""The query string of the conversation list, as the JSON API and the chat sidebar both take
it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConversationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=30, ge=1, le=100)
    before: str | None = Field(default=None, max_length=80)
    q: str | None = Field(default=None, max_length=200, description="Search in titles.")
    tool: str | None = Field(default=None, max_length=40)
    pinned: bool | None = Field(default=None, description="Only pinned (true) or unpinned.")
    archived: bool = Field(default=False, description="List the archived ones instead.")
