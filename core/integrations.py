"""The integration contract: reacts to app events (Slack, Notion, outgoing webhooks, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from multinotes.user_sets import UserSet


@dataclass(frozen=True)
class Event:
    """Something that happened, e.g. ``note.created`` (the catalogue: ``GET
    /api/events/catalog``). ``user_id`` owns what changed; ``data`` is the JSON payload, valid
    against the schema ``version`` of that event; ``id`` is the same on every delivery attempt
    of one event (use it to drop duplicates)."""

    name: str
    user_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    id: str = field(default="", compare=False)
    version: int = field(default=1, compare=False)
    occurred_at: str = field(default="", compare=False)


class Integration(ABC):
    integration_id: ClassVar[str]
    name: ClassVar[str]
    #: Event names it wants; empty means all.
    events: ClassVar[frozenset[str]] = frozenset()
    #: The users whose events it acts on (a ``UserSet``; a NULL in it: every user, and events
    #: of no user); None: everyone's. The core hands it no event of anyone outside the set,
    #: and queues nothing when no integration wants the event.
    audience: ClassVar[UserSet | None] = None

    @property
    def id(self) -> str:
        return self.integration_id

    @abstractmethod
    async def handle(self, event: Event, config: Any) -> None:
        """Deliver the event. Runs in a background task; raising marks the delivery failed."""
