"""The query string of a list of files, as the JSON API and the Files page both take it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: Ids and cursors: what ``new_id`` makes, never anything a path or SQL would care about.
ID_PATTERN = r"^[0-9A-Za-z_-]{1,32}$"


class FileQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(default=None, pattern=ID_PATTERN, description="next_cursor")
    folder_id: str | None = Field(default=None, pattern=ID_PATTERN)


class UploadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        description="Upload into this organisation's space: the file counts against its "
        "storage quota (you must be a member; absent: your own space).",
    )
