"""The batch API's request and response schemas (the pages read the same queries)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from multinotes.batches import inputs
from multinotes.batches.service import MAX_CONCURRENCY, MAX_MODELS

ID = r"^[A-Za-z0-9_-]{1,32}$"


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: str = Field(pattern=ID, description="A prompt template you can see.")
    models: list[str] = Field(
        min_length=1, max_length=MAX_MODELS, description="Every row runs on each of them."
    )
    rows: list[dict[str, str | int | float | None]] | None = Field(
        default=None,
        max_length=inputs.MAX_ROWS + 1,
        description="The rows: column (variable) name → value. Give `rows` or `csv`.",
    )
    csv: str | None = Field(
        default=None,
        description="CSV text, its first line the column (variable) names; comma, semicolon "
        "or tab separated. Give `rows` or `csv`.",
    )
    concurrency: int = Field(
        default=2, ge=1, le=MAX_CONCURRENCY, description="Rows sent at the same time."
    )

    @model_validator(mode="after")
    def _one_input(self) -> BatchIn:
        if (self.rows is None) == (self.csv is None):
            raise ValueError("give either rows or csv")
        return self


class ProgressOut(BaseModel):
    total: int
    done: int
    failed: int
    skipped: int
    cancelled: int
    running: int
    remaining: int = Field(description="Rows not finished yet (pending or running).")
    percent: int
    cost: int = Field(description="Credits the finished rows' answers cost.")


class BatchOut(BaseModel):
    id: str
    title: str
    template_id: str | None
    conversation_id: str | None = Field(description="Where the prompts and answers are kept.")
    models: list[str]
    columns: list[str]
    concurrency: int
    status: Literal["queued", "running", "finished", "cancelled", "stopped"]
    stop_reason: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: ProgressOut


class BatchList(BaseModel):
    batches: list[BatchOut]


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=20, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=100_000)


class RowsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=inputs.MAX_ROWS)
    offset: int = Field(default=0, ge=0, le=inputs.MAX_ROWS)


class AnswerOut(BaseModel):
    model: str
    status: str = Field(description="pending, complete, failed or stopped.")
    text: str
    cost: int
    error: str | None
    message_id: str | None


class RowOut(BaseModel):
    position: int = Field(description="1 for the first row of data.")
    inputs: dict[str, Any]
    status: Literal["pending", "running", "done", "failed", "skipped", "cancelled"]
    note: str | None = Field(description='Why it failed or was skipped ("skipped: ...").')
    answers: list[AnswerOut]


class RowsOut(BaseModel):
    total: int
    rows: list[RowOut]


class DownloadQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "xlsx"] = "csv"
