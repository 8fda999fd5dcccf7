"""The request and response models of data exports and legal pages, shared by the JSON API
and the privacy pages so both validate the same way."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from multinotes.privacy import exports, legal
from multinotes.privacy.models import DataExport


class ExportOut(BaseModel):
    id: str
    status: Literal["pending", "running", "done", "failed"]
    progress: int = Field(description="0-100.")
    size: int | None = Field(description="Bytes of the zip, when done.")
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None = Field(description="The zip can be downloaded until then.")
    download_url: str | None = Field(description="While the zip can be downloaded.")

    @classmethod
    def of(cls, export: DataExport) -> ExportOut:
        return cls(
            id=export.id,
            status=export.status,
            progress=export.progress,
            size=export.size,
            created_at=export.created_at,
            finished_at=export.finished_at,
            expires_at=export.expires_at,
            download_url=(
                f"/api/me/exports/{export.id}/download" if exports.downloadable(export) else None
            ),
        )


class LegalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    markdown: str = Field(
        max_length=legal.MAX_LENGTH, description="Markdown; an empty text restores the default."
    )
