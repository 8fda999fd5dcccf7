"""Domain events in process: what happened, published once the transaction that made it commits.

A feature that changes something stages an event in its own transaction
(``stage(session, NOTE_CREATED.of(owner_id, NoteCreated(...)))``); ``Database.transaction``
hands the staged events to the ``EventBus`` only after the commit succeeded, so a rolled-back
write publishes nothing. Code that has no transaction of its own to join (the generation
pipeline finishing an answer, a plugin) calls ``await app[EVENTS].publish(event)`` after its
commit.

Other features react by subscribing per event type (``bus.subscribe(NOTE_CREATED, handler)``):
search indexing, the copy of generated media into Files, in-app notifications and their mail,
the hand-off to integration plugins.
Subscribers run in the publishing process, one after another; one that raises is logged with
the event and does not stop the others, nor the request that published.

Every event type is in one catalogue (``EventCatalogue``; ``GET /api/events/catalog``): a dotted
``name``, a payload schema ``version`` (raised whenever a field changes meaning or goes away;
adding an optional field keeps it), a description and a pydantic payload model whose JSON schema
is published. Plugins add their own types through the ``register_events`` hook.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from multinotes.db import STAGED_EVENTS, new_id, utcnow

log = structlog.get_logger(__name__)

NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")

P = TypeVar("P", bound=BaseModel)


class EventPayload(BaseModel):
    """Base of every payload model: extra keys are refused, so a typo is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class DomainEvent:
    """One thing that happened. ``user_id`` is the owner of what changed (not necessarily
    who changed it); ``payload`` is JSON, valid against the type's schema ``version``."""

    name: str
    version: int
    user_id: str | None
    payload: dict[str, Any]
    id: str = field(default_factory=new_id)
    occurred_at: datetime = field(default_factory=utcnow)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "user_id": self.user_id,
            "occurred_at": self.occurred_at.isoformat(),
            "payload": self.payload,
        }


@dataclass(frozen=True)
class EventType(Generic[P]):
    """One entry of the catalogue: ``name`` (dotted, e.g. ``note.created``), the payload schema
    ``version``, a one-line ``description`` and the pydantic ``payload`` model."""

    name: str
    version: int
    description: str
    payload: type[P]

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"event name {self.name!r} is not dotted lower case (note.created)")
        if self.version < 1:
            raise ValueError("an event's payload version starts at 1")
        if not (isinstance(self.payload, type) and issubclass(self.payload, BaseModel)):
            raise ValueError("an event's payload is a pydantic model class")

    def of(self, user_id: str | None, payload: P) -> DomainEvent:
        """The event about ``user_id``'s object, with ``payload``."""
        if not isinstance(payload, self.payload):
            raise TypeError(f"{self.name} takes a {self.payload.__name__} payload")
        return DomainEvent(self.name, self.version, user_id, payload.model_dump(mode="json"))

    def from_data(self, user_id: str | None, data: dict[str, Any]) -> DomainEvent:
        """The event from plain JSON data, validated against the payload model (pydantic's
        ``ValidationError`` when it does not fit)."""
        return self.of(user_id, self.payload.model_validate(data))

    def json_schema(self) -> dict[str, Any]:
        return self.payload.model_json_schema()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "json_schema": self.json_schema(),
        }


# -- the core catalogue ------------------------------------------------------------------------


class GenerationCompleted(EventPayload):
    generation_id: str
    message_id: str
    conversation_id: str
    model: str = Field(
        description="The model id, e.g. openai/gpt-4o-mini; empty for an answer of a blind "
        "comparison (`blind`)."
    )
    blind: bool = Field(
        False,
        description="An answer of a blind comparison: its model is withheld (it would give the "
        "comparison away before the vote).",
    )
    status: Literal["complete", "stopped"] = Field(
        description="complete, or stopped when the user pressed Stop (the text so far is kept)."
    )
    cost: int = Field(description="Credits charged.")
    input_tokens: int
    output_tokens: int
    media_count: int = Field(0, description="Images or audio the model made.")


class GenerationFailed(EventPayload):
    generation_id: str
    message_id: str
    conversation_id: str
    model: str = Field(description="The model id; empty for an answer of a blind comparison.")
    blind: bool = Field(
        False,
        description="An answer of a blind comparison: its model and the provider's own error "
        "message are withheld.",
    )
    error_code: str
    error_message: str
    cost: int = Field(description="Credits charged for what was delivered before the failure.")


NoteSource = Literal["editor", "answer", "comparison", "duplicate", "shared_copy"]
NoteChange = Literal["title", "content", "folder", "restored"]


class NoteCreated(EventPayload):
    note_id: str
    title: str
    folder_id: str | None
    version: int
    actor_id: str | None = Field(description="Who created it.")
    source: NoteSource = Field(
        description="How it came to be: written, a saved answer or comparison, a duplicate, "
        "or a copy of a note someone shared."
    )


class NoteUpdated(EventPayload):
    note_id: str
    title: str
    folder_id: str | None
    version: int
    actor_id: str | None = Field(description="Who changed it (an editor it is shared with, too).")
    changes: list[NoteChange] = Field(
        description="What changed; restored: it came back from the trash."
    )


class NoteDeleted(EventPayload):
    note_id: str
    title: str
    actor_id: str | None


class NoteShared(EventPayload):
    share_id: str
    object_type: Literal["document", "folder"] = Field(
        description="What was shared: a note (document) or a folder of notes."
    )
    object_id: str
    role: str = Field(description="viewer, commenter or editor.")
    kind: Literal["user", "link"] = Field(description="With a person, or as a public link.")
    recipient_id: str | None = Field(description="The account shared with, if it has one.")


class ShareCreated(EventPayload):
    share_id: str
    object_type: Literal["document", "folder", "file", "conversation", "comparison"] = Field(
        description="What was shared: a note (document), a folder, a file, a conversation or "
        "a blind comparison."
    )
    object_id: str
    role: str = Field(description="viewer, commenter or editor.")
    kind: Literal["user", "link"] = Field(description="With a person, or as a public link.")
    recipient_id: str | None = Field(description="The account shared with, if it has one.")


class CommentCreated(EventPayload):
    comment_id: str
    note_id: str
    author_id: str
    mentioned_ids: list[str] = Field(description="Accounts mentioned with @name.")


class CommentEdited(EventPayload):
    comment_id: str
    note_id: str
    author_id: str
    mentioned_ids: list[str] = Field(
        description="Accounts the edit mentions that the comment did not mention before."
    )


class FolderCreated(EventPayload):
    folder_id: str
    name: str
    parent_id: str | None


class ExportCompleted(EventPayload):
    export_id: str
    size: int = Field(description="Bytes in the archive.")


class OrderPaid(EventPayload):
    order_id: str
    plan_id: str
    plan_name: str
    backend: str = Field(description="The payment backend that took the money (stripe, ...).")
    total: int = Field(description="What was paid, in the currency's minor unit (cents).")
    currency: str = Field(description="ISO 4217 code, upper case.")
    credits: int = Field(description="Credits the plan granted (bonus credits not included).")
    bonus_credits: int = Field(description="Extra credits from a coupon.")
    interval: Literal["once", "month", "year"] = Field(
        description="once, or a subscription's period (its renewals do not repeat this event)."
    )


class CreditsLow(EventPayload):
    balance: int = Field(description="The wallet balance after the change.")
    threshold: int = Field(description="The low-balance threshold it fell below.")


class SupportMessageAdded(EventPayload):
    ticket_id: str
    message_id: str
    from_staff: bool = Field(description="Written by the operator (else by the ticket's owner).")
    internal: bool = Field(description="A staff-only note the ticket's owner never sees.")


class EmailVerified(EventPayload):
    email_domain: str = Field(
        description="The domain of the address just verified (the part after @, lower case)."
    )


GENERATION_COMPLETED = EventType(
    "generation.completed", 1, "A model finished an answer (or was stopped).", GenerationCompleted
)
GENERATION_FAILED = EventType(
    "generation.failed", 1, "A model's answer failed with a provider error.", GenerationFailed
)
NOTE_CREATED = EventType("note.created", 1, "A note was created.", NoteCreated)
NOTE_UPDATED = EventType(
    "note.updated", 1, "A note's title, content or folder changed.", NoteUpdated
)
NOTE_DELETED = EventType(
    "note.deleted",
    1,
    "A note was moved to the trash, alone or with its folder (one event per note).",
    NoteDeleted,
)
NOTE_SHARED = EventType(
    "note.shared", 1, "A note or folder was shared with a person or a link.", NoteShared
)
COMMENT_CREATED = EventType(
    "comment.created",
    1,
    "Someone commented on a note; user_id is the note's owner.",
    CommentCreated,
)
COMMENT_EDITED = EventType(
    "comment.edited",
    1,
    "Its author edited a comment on a note; user_id is the note's owner.",
    CommentEdited,
)
SHARE_CREATED = EventType(
    "share.created",
    1,
    "Something was shared with a person or by public link: a note, a folder, a file, a "
    "conversation or a blind comparison (a note or folder also publishes note.shared).",
    ShareCreated,
)
FOLDER_CREATED = EventType("folder.created", 1, "A folder was created.", FolderCreated)
EXPORT_COMPLETED = EventType(
    "export.completed", 1, "A data export archive is ready to download.", ExportCompleted
)
CREDITS_LOW = EventType(
    "credits.low", 1, "A wallet's balance fell below the low-balance threshold.", CreditsLow
)
ORDER_PAID = EventType(
    "order.paid",
    1,
    "An order's payment was confirmed by its provider and its credits were granted (once).",
    OrderPaid,
)

SUPPORT_MESSAGE_ADDED = EventType(
    "support.message_added",
    1,
    "A message was added to a support ticket (opening it, a reply or a staff note); user_id is "
    "the ticket's owner.",
    SupportMessageAdded,
)

EMAIL_VERIFIED = EventType(
    "account.email_verified",
    1,
    "An account's email address was verified: its mailed link, a password reset link, a "
    "confirmed address change, or a sign-up through a provider that vouches for the address; "
    "user_id is the account.",
    EmailVerified,
)

CORE_EVENTS: tuple[EventType[Any], ...] = (
    GENERATION_COMPLETED,
    GENERATION_FAILED,
    NOTE_CREATED,
    NOTE_UPDATED,
    NOTE_DELETED,
    NOTE_SHARED,
    SHARE_CREATED,
    COMMENT_CREATED,
    COMMENT_EDITED,
    FOLDER_CREATED,
    EXPORT_COMPLETED,
    CREDITS_LOW,
    ORDER_PAID,
    SUPPORT_MESSAGE_ADDED,
    EMAIL_VERIFIED,
)


@dataclass(frozen=True)
class CatalogueEntry:
    event: EventType[Any]
    #: ``"core"`` or the plugin that registered it.
    owner: str


class EventCatalogue:
    """Every event type: the core's and those plugins registered (``register_events``)."""

    def __init__(self, core: Iterable[EventType[Any]] = CORE_EVENTS) -> None:
        self._entries: dict[str, CatalogueEntry] = {}
        for event in core:
            self.add(event, "core")

    def add(self, event: EventType[Any], owner: str) -> None:
        if not isinstance(event, EventType):
            raise TypeError("the catalogue takes EventType objects")
        taken = self._entries.get(event.name)
        if taken is not None:
            raise ValueError(f"{owner} and {taken.owner} both define the event {event.name!r}")
        self._entries[event.name] = CatalogueEntry(event, owner)

    def get(self, name: str) -> EventType[Any] | None:
        entry = self._entries.get(name)
        return entry.event if entry else None

    def entries(self) -> list[CatalogueEntry]:
        return sorted(self._entries.values(), key=lambda e: e.event.name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


# -- publishing --------------------------------------------------------------------------------

Subscriber = Callable[["web.Application", DomainEvent], Awaitable[None]]
"""``async def handler(app, event)``: reacts to one event; exceptions are logged and contained."""


@dataclass(frozen=True)
class Subscription:
    handler: Subscriber
    #: ``"core"`` or a plugin's name: a disabled plugin's subscribers are skipped.
    owner: str


class EventBus:
    """Subscribers per event name (or for every event) and ``publish``. A name outside the
    catalogue (a plugin emitting an event it never registered) reaches only the subscribers
    of every event, i.e. the integrations."""

    def __init__(
        self,
        app: web.Application,
        catalogue: EventCatalogue,
        is_enabled: Callable[[str], bool] = lambda owner: True,
    ) -> None:
        self.app = app
        self.catalogue = catalogue
        self._is_enabled = is_enabled
        self._by_name: dict[str, list[Subscription]] = defaultdict(list)
        self._every: list[Subscription] = []

    def subscribe(
        self, event: EventType[Any] | str, handler: Subscriber, *, owner: str = "core"
    ) -> None:
        """Call ``handler(app, event)`` after each published event of this type."""
        name = event.name if isinstance(event, EventType) else event
        if name not in self.catalogue:
            raise ValueError(f"no event {name!r} in the catalogue")
        self._by_name[name].append(Subscription(handler, owner))

    def subscribe_all(self, handler: Subscriber, *, owner: str = "core") -> None:
        """Call ``handler(app, event)`` after every published event, whatever its type."""
        self._every.append(Subscription(handler, owner))

    async def publish(self, *events: DomainEvent) -> None:
        """Run every subscriber of each event, in order of subscription. Never raises for a
        subscriber: a failure is logged with the event and the subscriber."""
        for event in events:
            for subscription in [*self._by_name.get(event.name, ()), *self._every]:
                if subscription.owner != "core" and not self._is_enabled(subscription.owner):
                    continue
                try:
                    await subscription.handler(self.app, event)
                except Exception:
                    log.exception(
                        "event_subscriber_failed",
                        event_name=event.name,
                        event_id=event.id,
                        owner=subscription.owner,
                        subscriber=getattr(subscription.handler, "__qualname__", "?"),
                    )

    async def publish_staged(self, staged: list[Any]) -> None:
        """``Database.transaction``'s after-commit callback."""
        await self.publish(*staged)


EVENTS = web.AppKey("events", EventBus)


class Staging(Protocol):
    """A unit of work that carries ``info`` to its commit: an ``AsyncSession`` from
    ``Database.transaction`` or a ``DriverTransaction`` from ``Database.driver_transaction``."""

    @property
    def info(self) -> dict[str, Any]: ...


def stage(session: Staging, event: DomainEvent) -> None:
    """Publish ``event`` once the transaction of ``session`` (from ``Database.transaction`` or
    ``driver_transaction``) commits; if it rolls back, the event is dropped with it."""
    staged = session.info.get(STAGED_EVENTS)
    if staged is None:
        raise RuntimeError("stage() needs a session from Database.transaction()")
    staged.append(event)


def validated(
    catalogue: EventCatalogue, name: str, user_id: str | None, data: dict[str, Any]
) -> DomainEvent:
    """An event from a name and plain data, checked against the catalogue: ``ValueError`` for
    an unknown name or a payload that does not fit its schema."""
    event_type = catalogue.get(name)
    if event_type is None:
        raise ValueError(f"no event {name!r} in the catalogue (register it with register_events)")
    try:
        return event_type.from_data(user_id, data)
    except ValidationError as exc:
        raise ValueError(f"the payload does not fit {name} v{event_type.version}: {exc}") from exc
