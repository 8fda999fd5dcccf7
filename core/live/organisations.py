"""An organisation's membership changed: every member's open tabs hear of it at once (issue
#20), as one event for all of them (``Hub.publish_many``: one bus message however many members).

``organisation.members_changed`` ``{"organisation_id", "change", "user_id"}`` goes, after the
transaction that made the change committed, to everyone who is a member then, and to the person
who left or was removed (it is about them). Nothing in it is more than what any member reads on
``GET /api/orgs/{id}/members``; someone outside the organisation gets nothing.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select

from multinotes.db import Database
from multinotes.live.hub import Hub
from multinotes.organisations.models import OrganisationMember
from multinotes.organisations.service import MEMBERS_CHANGED

log = structlog.get_logger(__name__)

MEMBERS_CHANGED_EVENT = "organisation.members_changed"


async def members(db: Database, organisation_id: str) -> list[str]:
    """The user ids of an organisation's members, as they are now."""
    async with db.read() as session:
        return list(
            await session.scalars(
                select(OrganisationMember.user_id).where(
                    OrganisationMember.organisation_id == organisation_id
                )
            )
        )


def install(db: Database, hub: Hub) -> None:
    """Tell each changed organisation's members once the transaction committed."""

    async def committed(info: dict[str, Any]) -> None:
        changes: list[tuple[str, str, str]] = info.get(MEMBERS_CHANGED) or []
        for organisation_id, change, user_id in changes:
            try:
                to = await members(db, organisation_id)
                if change in ("left", "removed"):
                    to.append(user_id)
                await hub.publish_many(
                    to,
                    MEMBERS_CHANGED_EVENT,
                    {"organisation_id": organisation_id, "change": change, "user_id": user_id},
                )
            except Exception:  # a live update is a nicety: never fail the committed work for it
                log.exception("live_organisation_failed")

    db.on_commit.append(committed)
