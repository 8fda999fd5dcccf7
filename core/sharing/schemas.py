"""The query string of the notification list, as the JSON API and the notifications page both
take it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Ids and cursors: what ``new_id`` makes.
ID_PATTERN = r"^[0-9A-Za-z_-]{1,32}$"


class NotificationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    before: str | None = Field(default=None, pattern=ID_PATTERN, description="next_cursor")
    unread: bool = Field(default=False, description="Only unread ones.")
