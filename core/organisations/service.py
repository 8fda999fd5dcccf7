"""Organisations: creating one, its members and roles, invitations by email, leaving and
transferring ownership, and what each member spent from the shared wallet.

Every function that acts for someone takes their ``OrganisationAccess`` (from
``multinotes.sharing.access.organisation``, read on this request): callers cannot skip the
membership check. The rules:

- the owner and admins invite (as member or admin), resend and revoke invitations, remove
  members and set a member's monthly limit; an admin cannot remove or demote an admin or the
  owner, only the owner can;
- the owner transfers ownership to a member (and stays on as an admin); the owner cannot leave
  without transferring first; anyone else can leave;
- an invitation is accepted through the link mailed to its address, by the account with that
  address; sending it again replaces the link (an older one stops working), revoking ends it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, new_id, rows_affected, utcnow
from multinotes.errors import Conflict, Forbidden, Invalid, NotFound
from multinotes.identity.models import User
from multinotes.identity.service import normalize_email, token_hash
from multinotes.keys import DB
from multinotes.links import site_url
from multinotes.mail import send_mail
from multinotes.organisations import seats
from multinotes.organisations.models import (
    Organisation,
    OrganisationInvitation,
    OrganisationMember,
)
from multinotes.plugin_host import TaskDef
from multinotes.sharing.access import ORGANISATION_RANK, OrganisationAccess
from multinotes.sharing.access import organisation as access_organisation
from multinotes.wallet import service as wallet

INVITATION_LIFETIME = timedelta(days=7)
#: How soon an invitation may be mailed again.
RESEND_COOLDOWN = timedelta(seconds=30)
SEND_INVITATION_TASK = "organisations.send_invitation"
ACCEPT_PATH = "/organisations/invitations/accept"
INVALID_INVITATION = "This invitation link is not valid any more. Ask for a new one."
#: ``session.info`` key: ``(organisation id, change, user id)`` of each membership the
#: transaction changed. The live channel (``multinotes.live.organisations``) tells the
#: organisation's members once it committed.
MEMBERS_CHANGED = "organisation_members_changed"


def note_members_changed(
    session: AsyncSession, organisation_id: str, change: str, user_id: str
) -> None:
    """``change``: ``joined``, ``left``, ``removed``, ``role`` (a role or limit changed) or
    ``owner`` (the ownership moved to ``user_id``)."""
    session.info.setdefault(MEMBERS_CHANGED, []).append((organisation_id, change, user_id))


@dataclass(frozen=True)
class Membership:
    organisation: Organisation
    role: str


@dataclass(frozen=True)
class Member:
    user_id: str
    name: str
    email: str
    role: str
    monthly_limit: int | None
    joined_at: datetime


async def create(db: Database, user_id: str, name: str) -> Organisation:
    """A new organisation owned by ``user_id``, with its empty wallet."""
    organisation = Organisation(id=new_id(), name=name, owner_id=user_id, created_at=utcnow())
    async with db.transaction() as session:
        session.add(organisation)
        await session.flush()
        session.add(
            OrganisationMember(
                organisation_id=organisation.id, user_id=user_id, role="owner", joined_at=utcnow()
            )
        )
        await wallet.ensure_organisation_wallet_in(session, organisation.id)
    return organisation


async def rename(db: Database, who: OrganisationAccess, name: str) -> None:
    who.require("admin", "rename the organisation")
    async with db.transaction() as session:
        await session.execute(
            update(Organisation).where(Organisation.id == who.organisation_id).values(name=name)
        )


async def for_user(db: Database, user_id: str) -> list[Membership]:
    """The organisations ``user_id`` belongs to, by name."""
    async with db.read() as session:
        rows = await session.execute(
            select(Organisation, OrganisationMember.role)
            .join(OrganisationMember, OrganisationMember.organisation_id == Organisation.id)
            .where(OrganisationMember.user_id == user_id)
            .order_by(Organisation.name, Organisation.id)
        )
        return [Membership(org, role) for org, role in rows.all()]


async def get(db: Database, who: OrganisationAccess) -> Organisation:
    async with db.read() as session:
        organisation = await session.get(Organisation, who.organisation_id)
    if organisation is None:
        raise NotFound("No such organisation.")
    return organisation


async def members(db: Database, organisation_id: str) -> list[Member]:
    async with db.read() as session:
        rows = await session.execute(
            select(OrganisationMember, User.name, User.email)
            .join(User, User.id == OrganisationMember.user_id)
            .where(OrganisationMember.organisation_id == organisation_id)
            .order_by(OrganisationMember.joined_at, OrganisationMember.id)
        )
        return [
            Member(m.user_id, name, email, m.role, m.monthly_limit, m.joined_at)
            for m, name, email in rows.all()
        ]


async def _member_row(db: Database, organisation_id: str, user_id: str) -> OrganisationMember:
    async with db.read() as session:
        row = await session.scalar(
            select(OrganisationMember).where(
                OrganisationMember.organisation_id == organisation_id,
                OrganisationMember.user_id == user_id,
            )
        )
    if row is None:
        raise NotFound("No such member.")
    return row


def _outranks(who: OrganisationAccess, role: str) -> bool:
    """The owner acts on anyone else; an admin only on plain members."""
    return who.is_owner or ORGANISATION_RANK[role] < ORGANISATION_RANK[who.role]


async def update_member(
    db: Database,
    who: OrganisationAccess,
    user_id: str,
    *,
    role: str | None = None,
    monthly_limit: int | None = None,
    set_limit: bool = False,
) -> None:
    """Change a member's role (the owner only; ownership moves by ``transfer``) or monthly limit
    (the owner and admins; None removes it)."""
    who.require("admin", "change members")
    target = await _member_row(db, who.organisation_id, user_id)
    values: dict[str, object] = {}
    if role is not None and role != target.role:
        who.require("owner", "change roles")
        if target.role == "owner":
            raise Conflict(
                "Transfer the ownership instead.", code="owner_role", fields={"role": "owner"}
            )
        values["role"] = role
    if set_limit:
        if target.user_id != who.user_id and not _outranks(who, target.role):
            raise Forbidden("Only the owner can change an admin's limit.", code="outranked")
        values["monthly_limit"] = monthly_limit
    if values:
        async with db.transaction() as session:
            await session.execute(
                update(OrganisationMember)
                .where(OrganisationMember.id == target.id)
                .values(**values)
            )
            note_members_changed(session, who.organisation_id, "role", user_id)


async def remove_member(db: Database, who: OrganisationAccess, user_id: str) -> None:
    """Remove someone: their next request in the organisation is refused."""
    who.require("admin", "remove members")
    if user_id == who.user_id:
        raise Conflict("Leave the organisation instead.", code="remove_self")
    target = await _member_row(db, who.organisation_id, user_id)
    if target.role == "owner" or not _outranks(who, target.role):
        raise Forbidden("Only the owner can remove an admin.", code="outranked")
    async with db.transaction() as session:
        await session.execute(delete(OrganisationMember).where(OrganisationMember.id == target.id))
        note_members_changed(session, who.organisation_id, "removed", user_id)


async def leave(db: Database, who: OrganisationAccess) -> None:
    if who.is_owner:
        raise Conflict(
            "The owner cannot leave: transfer the ownership to another member first.",
            code="owner_cannot_leave",
        )
    async with db.transaction() as session:
        await session.execute(
            delete(OrganisationMember).where(
                OrganisationMember.organisation_id == who.organisation_id,
                OrganisationMember.user_id == who.user_id,
                OrganisationMember.role != "owner",
            )
        )
        note_members_changed(session, who.organisation_id, "left", who.user_id)


async def transfer(db: Database, who: OrganisationAccess, new_owner_id: str) -> None:
    """Make another member the owner; the previous owner stays on as an admin."""
    who.require("owner", "transfer the ownership")
    if new_owner_id == who.user_id:
        raise Invalid("You own it already.", fields={"user_id": "already the owner"})
    target = await _member_row(db, who.organisation_id, new_owner_id)
    async with db.transaction() as session:
        # The conditional UPDATE re-checks ownership inside the transaction: two concurrent
        # transfers cannot both win.
        moved = await session.execute(
            update(Organisation)
            .where(Organisation.id == who.organisation_id, Organisation.owner_id == who.user_id)
            .values(owner_id=new_owner_id)
        )
        if rows_affected(moved) != 1:
            raise Conflict("You are not the owner any more.", code="not_owner")
        await session.execute(
            update(OrganisationMember)
            .where(OrganisationMember.id == target.id)
            .values(role="owner", monthly_limit=None)
        )
        await session.execute(
            update(OrganisationMember)
            .where(
                OrganisationMember.organisation_id == who.organisation_id,
                OrganisationMember.user_id == who.user_id,
            )
            .values(role="admin")
        )
        note_members_changed(session, who.organisation_id, "owner", new_owner_id)


# -- invitations ----------------------------------------------------------------------------------


async def invitations(db: Database, organisation_id: str) -> list[OrganisationInvitation]:
    """Pending invitations, the newest first (expired ones included: they can be resent)."""
    async with db.read() as session:
        rows = await session.scalars(
            select(OrganisationInvitation)
            .where(
                OrganisationInvitation.organisation_id == organisation_id,
                OrganisationInvitation.status == "pending",
            )
            .order_by(OrganisationInvitation.created_at.desc(), OrganisationInvitation.id)
        )
        return list(rows)


async def invite(
    db: Database, who: OrganisationAccess, email: str, role: str
) -> OrganisationInvitation:
    """A pending invitation for ``email`` (the caller queues its mail)."""
    who.require("admin", "invite people")
    if role == "admin" and not who.is_owner:
        raise Forbidden("Only the owner can invite admins.", code="outranked")
    address = normalize_email(email)
    async with db.transaction() as session:
        member = await session.scalar(
            select(OrganisationMember.id)
            .join(User, User.id == OrganisationMember.user_id)
            .where(
                OrganisationMember.organisation_id == who.organisation_id,
                func.lower(User.email) == address,
            )
        )
        if member is not None:
            raise Conflict(
                "That person is a member already.",
                code="already_member",
                fields={"email": "already a member"},
            )
        pending = await session.scalar(
            select(OrganisationInvitation.id).where(
                OrganisationInvitation.organisation_id == who.organisation_id,
                OrganisationInvitation.email == address,
                OrganisationInvitation.status == "pending",
            )
        )
        if pending is not None:
            raise Conflict(
                "That address has a pending invitation: send it again instead.",
                code="already_invited",
                fields={"email": "already invited"},
            )
        await seats.require_free_seat_in(session, who.organisation_id, invitations=True)
        invitation = OrganisationInvitation(
            id=new_id(),
            organisation_id=who.organisation_id,
            email=address,
            role=role,
            invited_by=who.user_id,
            status="pending",
            created_at=utcnow(),
            expires_at=utcnow() + INVITATION_LIFETIME,
        )
        session.add(invitation)
    return invitation


async def _pending(
    db: Database, organisation_id: str, invitation_id: str
) -> OrganisationInvitation:
    async with db.read() as session:
        invitation = await session.scalar(
            select(OrganisationInvitation).where(
                OrganisationInvitation.id == invitation_id,
                OrganisationInvitation.organisation_id == organisation_id,
                OrganisationInvitation.status == "pending",
            )
        )
    if invitation is None:
        raise NotFound("No such invitation.")
    return invitation


async def prepare_resend(
    db: Database, who: OrganisationAccess, invitation_id: str
) -> OrganisationInvitation:
    """Check an invitation may be mailed again now (its new link is made by the mail task)."""
    who.require("admin", "send invitations")
    invitation = await _pending(db, who.organisation_id, invitation_id)
    if invitation.sent_at is not None and utcnow() - invitation.sent_at < RESEND_COOLDOWN:
        raise Conflict(
            "The invitation was sent moments ago; wait a little before sending it again.",
            code="sent_recently",
        )
    async with db.transaction() as session:
        await session.execute(
            update(OrganisationInvitation)
            .where(OrganisationInvitation.id == invitation.id)
            .values(expires_at=utcnow() + INVITATION_LIFETIME)
        )
    return invitation


async def revoke(db: Database, who: OrganisationAccess, invitation_id: str) -> None:
    who.require("admin", "revoke invitations")
    invitation = await _pending(db, who.organisation_id, invitation_id)
    async with db.transaction() as session:
        await session.execute(
            update(OrganisationInvitation)
            .where(
                OrganisationInvitation.id == invitation.id,
                OrganisationInvitation.status == "pending",
            )
            .values(status="revoked", token_hash=None)
        )


async def issue_link_token(db: Database, invitation_id: str) -> str | None:
    """A fresh token for the invitation's link (the previous link stops working), or None when
    the invitation is no longer pending. Only its hash is stored."""
    token = secrets.token_urlsafe(32)
    async with db.transaction() as session:
        changed = await session.execute(
            update(OrganisationInvitation)
            .where(
                OrganisationInvitation.id == invitation_id,
                OrganisationInvitation.status == "pending",
            )
            .values(token_hash=token_hash(token), sent_at=utcnow())
        )
    return token if rows_affected(changed) == 1 else None


async def send_invitation(app: web.Application, *, invitation_id: str) -> None:
    """The task: mail the invitation with a new link. The token is made here, not in the
    request, so it never travels through the task broker."""
    db = app[DB]
    async with db.read() as session:
        row = (
            await session.execute(
                select(OrganisationInvitation, Organisation.name, User.name)
                .join(Organisation, Organisation.id == OrganisationInvitation.organisation_id)
                .outerjoin(User, User.id == OrganisationInvitation.invited_by)
                .where(OrganisationInvitation.id == invitation_id)
            )
        ).one_or_none()
    if row is None:
        return
    invitation, organisation_name, inviter = row
    token = await issue_link_token(db, invitation_id)
    if token is None:
        return
    await send_mail(
        app,
        template="organisation_invite",
        to=invitation.email,
        context={
            "organisation": organisation_name,
            "inviter": inviter or "A member",
            "role": invitation.role,
            "email": invitation.email,
            "link": site_url(app, f"{ACCEPT_PATH}?token={token}"),
            "days": INVITATION_LIFETIME.days,
        },
    )


def organisation_tasks() -> list[TaskDef]:
    return [TaskDef("core", SEND_INVITATION_TASK, send_invitation, None)]


async def invitation_for_token(
    db: Database, token: str
) -> tuple[OrganisationInvitation, Organisation]:
    """The pending, unexpired invitation a link names, or ``Invalid`` (field ``token``)."""
    if not token:
        raise Invalid(INVALID_INVITATION, code="invalid_token", fields={"token": "required"})
    async with db.read() as session:
        row = (
            await session.execute(
                select(OrganisationInvitation, Organisation)
                .join(Organisation, Organisation.id == OrganisationInvitation.organisation_id)
                .where(OrganisationInvitation.token_hash == token_hash(token))
            )
        ).one_or_none()
    if row is None:
        raise Invalid(INVALID_INVITATION, code="invalid_token", fields={"token": "not valid"})
    invitation, organisation = row
    if invitation.status != "pending" or invitation.expires_at <= utcnow():
        raise Invalid(INVALID_INVITATION, code="invalid_token", fields={"token": "expired"})
    return invitation, organisation


async def accept(db: Database, user_id: str, token: str) -> Organisation:
    """Join through an invitation link, as the account with the invited address."""
    invitation, organisation = await invitation_for_token(db, token)
    async with db.read() as session:
        user = await session.get(User, user_id)
    if user is None or normalize_email(user.email) != invitation.email:
        raise Forbidden(
            f"This invitation is for {invitation.email}: sign in with that address to accept it.",
            code="wrong_account",
        )
    try:
        async with db.transaction() as session:
            used = await session.execute(
                update(OrganisationInvitation)
                .where(
                    OrganisationInvitation.id == invitation.id,
                    OrganisationInvitation.status == "pending",
                )
                .values(
                    status="accepted",
                    accepted_by=user_id,
                    accepted_at=utcnow(),
                    token_hash=None,
                )
            )
            if rows_affected(used) != 1:
                raise Invalid(INVALID_INVITATION, code="invalid_token", fields={"token": "used"})
            await seats.require_free_seat_in(session, organisation.id, invitations=False)
            session.add(
                OrganisationMember(
                    organisation_id=organisation.id,
                    user_id=user_id,
                    role=invitation.role,
                    joined_at=utcnow(),
                )
            )
            note_members_changed(session, organisation.id, "joined", user_id)
    except IntegrityError as exc:
        raise Conflict("You are a member already.", code="already_member") from exc
    return organisation


# -- usage ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberUsage:
    user_id: str
    name: str
    email: str
    role: str
    credits: int
    answers: int
    monthly_limit: int | None


def month_bounds(month: str | None) -> tuple[str, datetime, datetime]:
    """``YYYY-MM`` (default: this month, UTC) as its label and ``[start, end)``."""
    start = wallet.month_start()
    if month:
        try:
            year, number = (int(part) for part in month.split("-"))
            start = start.replace(year=year, month=number)
        except ValueError as exc:
            raise Invalid("Give the month as YYYY-MM.", fields={"month": "YYYY-MM"}) from exc
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return f"{start.year:04d}-{start.month:02d}", start, end


async def usage(db: Database, who: OrganisationAccess, month: str | None) -> list[MemberUsage]:
    """Credits each member spent from the organisation's wallet in ``month``: every current
    member (zero if nothing), then anyone who spent and left since."""
    who.require("admin", "see usage per member")
    _, start, end = month_bounds(month)
    spent = await wallet.usage_by_member(db, who.organisation_id, start, end)
    rows = [
        MemberUsage(
            m.user_id,
            m.name,
            m.email,
            m.role,
            spent.get(m.user_id, {}).get("credits", 0),
            spent.get(m.user_id, {}).get("answers", 0),
            m.monthly_limit,
        )
        for m in await members(db, who.organisation_id)
    ]
    gone = [uid for uid in spent if uid not in {r.user_id for r in rows}]
    if gone:
        async with db.read() as session:
            people = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(gone)))}
        for uid in gone:
            person = people.get(uid)
            rows.append(
                MemberUsage(
                    uid,
                    person.name if person else "",
                    person.email if person else "",
                    "former member",
                    spent[uid]["credits"],
                    spent[uid]["answers"],
                    None,
                )
            )
    return rows


def usage_csv(month: str, rows: list[MemberUsage]) -> str:
    """Usage per member as CSV (cells a spreadsheet would run as a formula are quoted)."""
    import csv
    import io

    def cell(value: object) -> object:
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "'" + value
        return value

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["month", "user_id", "name", "email", "role", "credits", "answers", "limit"])
    for row in rows:
        writer.writerow(
            [
                cell(v)
                for v in (
                    month,
                    row.user_id,
                    row.name,
                    row.email,
                    row.role,
                    row.credits,
                    row.answers,
                    "" if row.monthly_limit is None else row.monthly_limit,
                )
            ]
        )
    return out.getvalue()


async def queue_invitation(app: web.Application, invitation_id: str) -> None:
    """Mail the invitation from the task queue (with its new link)."""
    from multinotes.keys import TASKS

    await app[TASKS].enqueue(SEND_INVITATION_TASK, invitation_id=invitation_id)


async def spent_this_month(db: Database, who: OrganisationAccess) -> int:
    """What the member spent from the organisation's wallet this month, with what is held for
    their answers in flight (what their monthly limit is checked against)."""
    async with db.read() as session:
        return await wallet.member_spent_in(session, who.organisation_id, who.user_id)


def new_reference() -> str:
    return new_id()


async def wallet_hold(
    db: Database, user_id: str, organisation_id: str | None
) -> wallet.OrganisationHold | None:
    """The generation context a request names: None (the user's own wallet) or the
    organisation's wallet, with the member's monthly limit; ``NotFound`` for a non-member (the
    membership is read now, so a removed member is refused at once)."""
    if organisation_id is None:
        return None
    who = await access_organisation(db, user_id, organisation_id)
    return wallet.OrganisationHold(organisation_id, who.monthly_limit)
