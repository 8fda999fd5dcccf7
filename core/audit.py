"""The audit log: an append-only record of security events.

``record(app, request, action, ...)`` is the one way in, called wherever something
security-relevant happens (logins and their failures, logouts, registrations, password and
email changes, API keys, sessions, roles and blocks, plugins, models and prices, credit
adjustments, exports and deletions). It stores who did it (the request's actor unless told
otherwise), from which IP and User-Agent, on what, and when.

Append-only: there is no API to change or delete an entry, and the ORM refuses to (an UPDATE or
DELETE of an ``AuditEntry``, one by one or in bulk, raises). ``actor_id`` and ``target_id`` are
plain columns, not foreign keys, so entries outlive the accounts they mention.

Never put a secret in ``details``: record which fields changed, not their values. Keys that look
like a password, token or secret are redacted as a last line of defence.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import JSON, Index, String, and_, event, or_, select
from sqlalchemy.orm import Mapped, ORMExecuteState, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from multinotes.db import Base, Database, UTCDateTime, new_id, utcnow
from multinotes.identity.actor import current_actor
from multinotes.keys import DB, SETTINGS
from multinotes.settings import Settings

log = structlog.get_logger(__name__)

#: Every action the core records, with what a person reads for it.
ACTIONS: dict[str, str] = {
    "auth.login": "Logged in",
    "auth.login_failed": "Failed login",
    "auth.locked": "Logins locked after repeated failures",
    "auth.logout": "Logged out",
    "auth.register": "Account created",
    "auth.email_verified": "Email address verified",
    "auth.password_changed": "Password changed",
    "auth.password_reset_requested": "Password reset requested",
    "auth.password_reset": "Password reset by email",
    "session.revoked": "Session logged out",
    "session.revoked_all": "Logged out everywhere",
    "api_key.created": "API key created",
    "api_key.revoked": "API key revoked",
    "api_key.narrowed": "API key narrowed to fewer scopes",
    "oauth.linked": "Sign-in with Google/Facebook linked",
    "oauth.unlinked": "Sign-in with Google/Facebook unlinked",
    "profile.updated": "Profile changed",
    "profile.avatar_changed": "Avatar changed",
    "profile.avatar_removed": "Avatar removed",
    "profile.email_change_requested": "Email change requested",
    "profile.email_changed": "Email address changed",
    "user.role_changed": "Role changed",
    "user.blocked": "Account blocked",
    "user.unblocked": "Account unblocked",
    "user.rate_limit_tier_changed": "Rate-limit tier changed",
    "plugin.enabled": "Plugin enabled",
    "plugin.disabled": "Plugin disabled",
    "plugin.settings_changed": "Plugin settings changed",
    "model.updated": "Model settings changed",
    "pricing.updated": "Pricing settings changed",
    "assist.updated": "Note suggestion settings changed",
    "wallet.adjusted": "Credits adjusted by an admin",
    "billing.plan_created": "Plan created",
    "billing.plan_changed": "Plan changed",
    "billing.plan_archived": "Plan archived",
    "billing.plan_restored": "Plan put back on sale",
    "billing.coupon_created": "Coupon created",
    "billing.coupon_archived": "Coupon deactivated",
    "billing.order_refunded": "Order refunded by an admin",
    "billing.order_marked_paid": "Order marked paid (offline payment) by an admin",
    "billing.seller_changed": "Receipt seller details changed",
    "privacy.export_requested": "Data export requested",
    "privacy.account_deletion_requested": "Account deletion requested",
    "privacy.account_deletion_cancelled": "Account deletion cancelled",
    "privacy.account_deleted": "Account deleted",
    "legal.updated": "Legal page edited",
    "support.replied": "Support ticket answered by staff",
    "support.note_added": "Staff note added to a support ticket",
    "support.status_changed": "Support ticket closed or reopened",
    "support.assigned": "Support ticket assigned",
    "announcement.published": "Announcement published",
    "announcement.removed": "Announcement removed",
}

_SECRET_KEY = re.compile(r"password|secret|token|api_key$|^key$", re.IGNORECASE)
REDACTED = "[redacted]"


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_actor", "actor_id", "id"),
        Index("ix_audit_log_action", "action", "id"),
        Index("ix_audit_log_target", "target_type", "target_id", "id"),
        Index("ix_audit_log_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    actor_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditLogIsAppendOnly(RuntimeError):
    """Raised on any attempt to change or delete an audit entry through the ORM."""


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _refuse_change(_mapper: Any, _connection: Any, _target: Any) -> None:
    raise AuditLogIsAppendOnly("The audit log is append-only.")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if (state.is_update or state.is_delete) and mapper is not None and mapper.class_ is AuditEntry:
        raise AuditLogIsAppendOnly("The audit log is append-only.")


# -- writing ------------------------------------------------------------------------------------


def _scrub(details: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in details.items():
        if _SECRET_KEY.search(key):
            clean[key] = REDACTED
        elif isinstance(value, dict):
            clean[key] = _scrub(value)
        else:
            clean[key] = value
    return clean


class _RequestActor:
    """The default actor: whoever the request is authenticated as."""


REQUEST_ACTOR = _RequestActor()


async def record(
    app_or_db: web.Application | Database,
    request: web.Request | None,
    action: str,
    *,
    actor_id: str | _RequestActor | None = REQUEST_ACTOR,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry. The actor defaults to the request's (pass ``actor_id=None`` for "no
    one", e.g. a failed login); IP and User-Agent come from the request (None for the CLI and
    background tasks).

    Writing the entry never fails the action it records (that already happened): a failure is
    logged loudly instead."""
    db = app_or_db[DB] if isinstance(app_or_db, web.Application) else app_or_db
    if isinstance(actor_id, _RequestActor):
        actor = current_actor(request) if request is not None else None
        actor_id = actor.user_id if actor else None
    ip = user_agent = None
    if request is not None:
        ip = request.remote
        user_agent = (request.headers.get("User-Agent") or "")[:400] or None
    entry = AuditEntry(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        ip=ip,
        user_agent=user_agent,
        details=_scrub(details) if details else None,
        created_at=utcnow(),
    )
    try:
        async with db.transaction() as session:
            session.add(entry)
    except Exception:
        log.exception("audit_write_failed", action=action, actor_id=actor_id)
        return
    log.info(
        "audit", action=action, actor_id=actor_id, target_type=target_type, target_id=target_id
    )


def mask_email(email: str) -> str:
    """``a***@example.com``: enough for a person to recognise, not enough to read."""
    local, at, domain = email.strip().lower().partition("@")
    return f"{local[:1]}***{at}{domain}" if at else f"{local[:1]}***"


@functools.lru_cache(maxsize=8)
def _hash_key(master: str) -> bytes:
    return hashlib.sha256(b"multinotes-audit-email:" + master.encode()).digest()


def email_fingerprint(settings: Settings, email: str) -> str:
    """A keyed hash of an address, so entries about one address can be matched without
    storing it (a plain hash of an email is guessable)."""
    key = _hash_key(settings.master_keys()[0])
    return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:20]


def attempted_email(app: web.Application, email: str) -> dict[str, str]:
    """What a failure records of the address someone tried: masked and fingerprinted."""
    return {"email": mask_email(email), "email_hash": email_fingerprint(app[SETTINGS], email)}


# -- reading ------------------------------------------------------------------------------------


def subject_of(user_id: str) -> ColumnElement[bool]:
    """Entries about a user: what they did, and what was done to their account."""
    return or_(
        AuditEntry.actor_id == user_id,
        and_(AuditEntry.target_type == "user", AuditEntry.target_id == user_id),
    )


async def list_entries(
    db: Database,
    *,
    limit: int,
    before: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    subject: str | None = None,
) -> list[AuditEntry]:
    """Entries newest first. ``action`` ending in "." matches a family ("auth."); ``before``
    is the id of the last entry of the previous page (ids sort by time)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before:
        query = query.where(AuditEntry.id < before)
    if actor_id:
        query = query.where(AuditEntry.actor_id == actor_id)
    if action:
        if action.endswith("."):
            query = query.where(AuditEntry.action.startswith(action, autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if target_type:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id:
        query = query.where(AuditEntry.target_id == target_id)
    if since:
        query = query.where(AuditEntry.created_at >= since)
    if until:
        query = query.where(AuditEntry.created_at < until)
    if subject:
        query = query.where(subject_of(subject))
    async with db.read() as session:
        return list(await session.scalars(query))


def label(action: str) -> str:
    return ACTIONS.get(action, action)
