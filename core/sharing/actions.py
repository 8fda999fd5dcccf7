"""What a person does to share or comment, the same whether they use the JSON API or the
pages: the share with its hourly limit and the invitation limit; a comment.
Notifications, their mail and the invitations' audit records react to the events these publish
(``multinotes.sharing.notifier``, ``multinotes.sharing.audit_trail``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web
from limits import RateLimitItemPerHour
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import func, select

from multinotes.audit import AuditEntry
from multinotes.db import utcnow
from multinotes.errors import RateLimited
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import Actor, require_user, require_verified
from multinotes.identity.models import User
from multinotes.identity.service import normalize_email
from multinotes.keys import DB, RATE_LIMITS, SETTINGS
from multinotes.sharing import comments
from multinotes.sharing import service as sharing
from multinotes.sharing.audit_trail import INVITATION
from multinotes.sharing.models import Share
from multinotes.wallet.models import LedgerEntry

ObjectType = Literal["document", "folder", "file", "conversation", "comparison"]
#: Person shares (each mails someone) a user may make per hour.
PERSON_SHARES_PER_HOUR = RateLimitItemPerHour(100)
ID = Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_-]+$")


class ShareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    object_type: ObjectType
    object_id: str = ID
    email: EmailStr | None = Field(
        default=None, max_length=320, description="Share with this person (or use `public`)."
    )
    public: bool = Field(default=False, description="Make a read-only public link instead.")
    role: Literal["viewer", "editor"] = Field(
        default="viewer",
        description="Editors may edit a note's title and content (notes and folders only).",
    )
    expires_at: datetime | None = Field(
        default=None, description="When access ends (ISO 8601; without a zone: UTC)."
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Public links only: visitors must enter it.",
    )


def public_link(request: web.Request, token: str) -> str:
    return f"{public_base_url(request)}{sharing.PUBLIC_PREFIX}{token}"


async def create(request: web.Request, body: ShareIn) -> sharing.Created:
    """Shared by the API and the share dialog: create the share (its notification, mail and
    invitation audit record follow its ``share.created`` event).

    Sharing with a person sends mail to an address the sharer chooses, so it needs a verified
    address (where the install requires one) and is limited per hour."""
    actor = require_user(request)
    if body.email is not None:
        require_verified(request)
        limits = request.app[RATE_LIMITS]
        if limits.enabled and not await limits.limiter.hit(
            PERSON_SHARES_PER_HOUR, "share_person", actor.user_id
        ):
            raise RateLimited(
                "You shared with too many people in the last hour. Try again later.",
                retry_after=3600,
            )
        await _check_invitations(request, actor, body)
    return await sharing.create_share(
        request.app[DB],
        actor,
        object_type=body.object_type,
        object_id=body.object_id,
        email=str(body.email) if body.email is not None else None,
        public=body.public,
        role=body.role,
        expires_at=body.expires_at,
        password=body.password,
    )


async def _check_invitations(request: web.Request, actor: Actor, body: ShareIn) -> None:
    """An invitation mails someone without an account, at an address the sharer chooses: at
    most ``invitations_per_day`` in 24 hours per account, fewer for an account on the free
    trial (it never bought credits: signing up costs nothing) and fewer still for one whose
    own address is not verified, so sharing cannot be used to send spam. Shares with people
    who have an account are not counted (they are notified in the app too, and limited per
    hour above), nor is sharing again with someone already invited (that mails no one)."""
    settings = request.app[SETTINGS]
    since = utcnow() - timedelta(days=1)
    address = normalize_email(str(body.email))
    async with request.app[DB].read() as session:
        if await session.scalar(select(User.id).where(User.email == address)):
            return
        again = await session.scalar(
            select(Share.id).where(
                Share.object_type == body.object_type,
                Share.object_id == body.object_id,
                Share.recipient_email == address,
                Share.live_key == "",
            )
        )
        if again is not None:
            return
        sent = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(
                AuditEntry.action == INVITATION,
                AuditEntry.actor_id == actor.user_id,
                AuditEntry.created_at >= since,
            )
        )
        paid = await session.scalar(
            select(LedgerEntry.id)
            .where(LedgerEntry.user_id == actor.user_id, LedgerEntry.kind == "purchase")
            .limit(1)
        )
    limit, hint = settings.invitations_per_day, ""
    if paid is None and settings.invitations_per_day_trial < limit:
        limit, hint = settings.invitations_per_day_trial, " Buying credits raises the limit."
    if not actor.email_verified and settings.invitations_per_day_unverified < limit:
        limit = settings.invitations_per_day_unverified
        hint = " Verify your address to invite more."
    if int(sent or 0) >= limit:
        raise RateLimited(
            f"You invited {limit} people without an account in the last 24 hours, the most "
            f"allowed. Try again tomorrow, or share with people who have an account.{hint}",
            code="invitation_limit",
            retry_after=3600,
        )


async def add_comment(request: web.Request, document_id: str, body: str) -> dict[str, Any]:
    """Shared by the API and the note's comment form (the mentions' notifications and mail
    react to ``comment.created``)."""
    actor = require_user(request)
    return await comments.add_comment(request.app[DB], actor, document_id, body)
