"""Seats: an organisation plan is bought per seat, like any plan (``multinotes.billing``), by the
organisation's owner or an admin; the organisation keeps the seats it paid for, and they cap its
members and pending invitations. No plan bought: no cap.

Inviting, accepting an invitation and joining by email domain all check for a free seat; a full
organisation answers 409 ``seats_full``, saying how many seats it has.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.billing.service import Buyer
from multinotes.db import Database, utcnow
from multinotes.errors import Conflict
from multinotes.organisations.models import (
    Organisation,
    OrganisationInvitation,
    OrganisationMember,
)
from multinotes.sharing import access


async def taken_in(session: AsyncSession, organisation_id: str, *, invitations: bool) -> int:
    """Seats in use: the members, and (``invitations``) the pending invitations not expired."""
    members = int(
        await session.scalar(
            select(func.count())
            .select_from(OrganisationMember)
            .where(OrganisationMember.organisation_id == organisation_id)
        )
        or 0
    )
    if not invitations:
        return members
    pending = int(
        await session.scalar(
            select(func.count())
            .select_from(OrganisationInvitation)
            .where(
                OrganisationInvitation.organisation_id == organisation_id,
                OrganisationInvitation.status == "pending",
                OrganisationInvitation.expires_at > utcnow(),
            )
        )
        or 0
    )
    return members + pending


def _full(seats: int) -> Conflict:
    return Conflict(
        f"Every seat is taken ({seats} bought): buy more seats first, or remove someone.",
        code="seats_full",
    )


async def require_free_seat_in(
    session: AsyncSession, organisation_id: str, *, invitations: bool
) -> None:
    """409 ``seats_full`` when the organisation has bought seats and every one is taken
    (``invitations``: pending invitations hold a seat too; an invitation being accepted counts
    only the members, as its own seat was held by it)."""
    seats = await session.scalar(
        select(Organisation.seats).where(Organisation.id == organisation_id)
    )
    if seats is None:
        return
    if await taken_in(session, organisation_id, invitations=invitations) >= seats:
        raise _full(seats)


async def buyer(db: Database, user_id: str, org_id: str | None, seats: int | None) -> Buyer:
    """Who a checkout buys for: oneself (no ``org_id``), or an organisation the caller owns or
    administers (404 for a non-member, 403 for a plain member), for at least as many seats as
    it has members and pending invitations (409 ``seats_below_members``)."""
    if org_id is None:
        if seats is not None:
            return Buyer(None, seats)  # refused by billing.check_buyer, naming the field
        return Buyer()
    who = await access.organisation(db, user_id, org_id)
    who.require("admin", "buy a plan for the organisation")
    async with db.read() as session:
        taken = await taken_in(session, org_id, invitations=True)
    wanted = seats if seats is not None else max(taken, 1)
    if wanted < taken:
        raise Conflict(
            f"The organisation has {taken} members and pending invitations: buy at least "
            f"{taken} seats.",
            code="seats_below_members",
            fields={"seats": f"at least {taken}"},
        )
    return Buyer(org_id, wanted)
