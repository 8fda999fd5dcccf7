"""The search form's fields as the API's query string and the search page both take them,
validated by one model and turned into the service's ``SearchRequest``."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from multinotes.errors import Invalid
from multinotes.search import service as search
from multinotes.search.models import KINDS

MAX_QUERY = 200


def _moment(value: date | datetime | None, *, end_of_day: bool) -> datetime | None:
    """Dates are whole days (``date_to`` includes its day); zone-less times are UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time.max if end_of_day else time.min)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(
        default="",
        max_length=MAX_QUERY,
        description='Words (all must match), "a phrase", -excluded, prefix*. Blank: no results.',
    )
    mode: Literal["hybrid", "text", "semantic"] = Field(
        default="hybrid", description="hybrid fuses the full-text and the semantic rankings."
    )
    kind: Literal["note", "conversation", "message"] | None = Field(
        default=None, description="Only this kind; default: all three."
    )
    folder_id: str | None = Field(
        default=None, max_length=32, description="Notes in this folder or below it."
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="Answers by this model, notes saved from them, conversations using it.",
    )
    date_from: date | datetime | None = Field(
        default=None, description="Changed at or after (a date or an ISO time; UTC if no zone)."
    )
    date_to: date | datetime | None = Field(
        default=None, description="Changed at or before (a date includes the whole day)."
    )
    limit: int = Field(default=20, ge=1, le=50)
    cursor: str | None = Field(default=None, max_length=200, description="`next_cursor`.")
    record: bool = Field(
        default=True, description="Keep the query in your recent searches (first page only)."
    )

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _date_or_time(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return date.fromisoformat(value) if len(value) <= 10 else datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not a date (YYYY-MM-DD) or an ISO 8601 time") from None


def search_request(query: SearchQuery) -> search.SearchRequest:
    offset = search.decode_cursor(query.cursor) if query.cursor else 0
    date_from = _moment(query.date_from, end_of_day=False)
    date_to = _moment(query.date_to, end_of_day=True)
    if date_from is not None and date_to is not None and date_from > date_to:
        raise Invalid(fields={"date_to": "is before date_from"})
    return search.SearchRequest(
        q=query.q,
        mode=query.mode,
        kinds=(query.kind,) if query.kind else KINDS,
        folder_id=query.folder_id or None,
        model=query.model or None,
        date_from=date_from,
        date_to=date_to,
        limit=query.limit,
        offset=offset,
    )
