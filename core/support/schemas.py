"""What the support API and the pages' forms take and give."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    return value


Text = Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_not_blank)]
Subject = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
Status = Literal["open", "pending", "closed"]


class TicketIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: Subject
    body: Text = Field(description="The question, Markdown.")


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text


class StaffReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: Text
    internal: bool = Field(
        default=False, description="A note for staff only; the ticket's owner never sees it."
    )


class TicketPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    assignee_id: str | None = Field(
        default=None, max_length=32, description="An administrator's id; empty string unassigns."
    )


class QueueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    assignee: str | None = Field(
        default=None, max_length=32, description="An administrator's id, or `none` (unassigned)."
    )


class MessageOut(BaseModel):
    id: str
    author: str
    from_staff: bool
    internal: bool
    body: str
    created_at: str


class TicketOut(BaseModel):
    id: str
    subject: str
    status: Status
    created_at: str
    updated_at: str


class ThreadOut(TicketOut):
    messages: list[MessageOut]


class TicketList(BaseModel):
    tickets: list[TicketOut]


class StaffTicketOut(TicketOut):
    user_email: str
    assignee_id: str | None


class StaffThreadOut(StaffTicketOut):
    messages: list[MessageOut]


class StaffTicketList(BaseModel):
    tickets: list[StaffTicketOut]
