"""Hits: recording them, the review queue, and the operator's decisions (dismiss, warn,
block), each audited. Blocking keeps its reason on the user, told to them at login."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select, update

from multinotes import audit
from multinotes.abuse import throttle
from multinotes.abuse.models import AbuseHit, AbuseRule
from multinotes.abuse.rules import RULE_CACHE, RULES, RuleSettings
from multinotes.abuse.schemas import RuleIn
from multinotes.db import Database, utcnow
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.identity import service as identity
from multinotes.identity.actor import require_admin
from multinotes.identity.admin import UserPatch, apply_user_patch
from multinotes.identity.models import User
from multinotes.keys import DB
from multinotes.links import site_url
from multinotes.mail import queue_mail
from multinotes.sharing.notifications import notify

KIND = "abuse_warning"
DEFAULT_WARNING = (
    "Our abuse detection flagged activity on your account. Please keep to the terms of "
    "service; repeated abuse gets the account blocked."
)
DEFAULT_BLOCK_REASON = "Blocked after review of abuse reports. Contact support if this is wrong."


async def record_hit(
    db: Database,
    rule: str,
    *,
    evidence: dict[str, Any],
    action_taken: str = "none",
    user_id: str | None = None,
    network: str | None = None,
) -> AbuseHit:
    hit = AbuseHit(
        rule=rule,
        status="open",
        action_taken=action_taken,
        user_id=user_id,
        network=network,
        evidence=evidence,
        created_at=utcnow(),
    )
    async with db.transaction() as session:
        session.add(hit)
    return hit


async def recent_hit(db: Database, rule: str, network: str, since: datetime) -> bool:
    """Whether the rule already flagged this network since ``since`` (one hit per window)."""
    async with db.read() as session:
        found = await session.scalar(
            select(AbuseHit.id)
            .where(AbuseHit.rule == rule, AbuseHit.network == network, AbuseHit.created_at >= since)
            .limit(1)
        )
    return found is not None


async def suspend_user(db: Database, user_id: str, reason: str) -> None:
    """Block an account without an operator (an automatic rule): it cannot log in, its
    sessions end and its API keys stop working (the key cache drops them on commit)."""
    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.id == user_id).values(is_active=False, blocked_reason=reason)
        )
    await identity.revoke_all_sessions(db, user_id)


async def list_hits(
    db: Database,
    *,
    rule: str | None = None,
    status: str | None = None,
    limit: int = 50,
    before: str | None = None,
) -> tuple[list[tuple[AbuseHit, str | None]], str | None]:
    """Newest first, with each hit's user's email; and the next page's cursor."""
    query = select(AbuseHit, User.email).outerjoin(User, User.id == AbuseHit.user_id)
    if rule:
        query = query.where(AbuseHit.rule == rule)
    if status:
        query = query.where(AbuseHit.status == status)
    if before:
        query = query.where(AbuseHit.id < before)
    async with db.read() as session:
        rows: list[tuple[AbuseHit, str | None]] = [
            (hit, email)
            for hit, email in (
                await session.execute(query.order_by(AbuseHit.id.desc()).limit(limit + 1))
            ).all()
        ]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1][0].id if more and rows else None)


async def get_hit(db: Database, hit_id: str) -> tuple[AbuseHit, str | None]:
    async with db.read() as session:
        row = (
            await session.execute(
                select(AbuseHit, User.email)
                .outerjoin(User, User.id == AbuseHit.user_id)
                .where(AbuseHit.id == hit_id)
            )
        ).first()
    if row is None:
        raise NotFound("No such abuse report.")
    return row[0], row[1]


async def act(request: web.Request, hit_id: str, action: str, note: str) -> AbuseHit:
    """The operator's decision on a hit: ``dismiss`` (a false alarm), ``warn`` (the user is
    mailed and notified in the app) or ``block`` (the account is blocked with ``note`` as the
    reason it is told). Warn and block need a hit about an account."""
    admin = require_admin(request)
    db = request.app[DB]
    hit, _email = await get_hit(db, hit_id)
    note = note.strip()
    if action != "dismiss" and hit.user_id is None:
        raise Conflict(
            "This report is about a network, not an account: it can only be dismissed.",
            code="no_account",
        )
    if action == "warn":
        assert hit.user_id is not None
        await _warn(request, hit, hit.user_id, note or DEFAULT_WARNING)
    elif action == "block":
        assert hit.user_id is not None
        reason = note or DEFAULT_BLOCK_REASON
        # The users console's rules apply (not yourself, not the last admin); sessions end.
        await apply_user_patch(request, hit.user_id, UserPatch(is_active=False))
        async with db.transaction() as session:
            await session.execute(
                update(User).where(User.id == hit.user_id).values(blocked_reason=reason)
            )
    elif hit.user_id is not None and hit.action_taken == "rate_limited":
        # A false alarm: the throttle it set is lifted at once.
        await throttle.lift(request.app, hit.user_id)
    status = {"dismiss": "dismissed", "warn": "warned", "block": "blocked"}[action]
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(
            update(AbuseHit)
            .where(AbuseHit.id == hit.id)
            .values(status=status, reviewed_by=admin.user_id, reviewed_at=now, review_note=note)
        )
    await audit.record(
        request.app,
        request,
        f"abuse.{status}",
        target_type="abuse_hit",
        target_id=hit.id,
        details={"rule": hit.rule, "user_id": hit.user_id},
    )
    hit.status, hit.reviewed_by, hit.reviewed_at, hit.review_note = status, admin.user_id, now, note
    return hit


async def _warn(request: web.Request, hit: AbuseHit, user_id: str, message: str) -> None:
    app = request.app
    async with app[DB].transaction() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("The account of this report is gone.")
        notify(
            session,
            user_id=user.id,
            kind=KIND,
            actor_id=None,
            actor_name="Trust & safety",
            object_type="abuse_hit",
            object_id=hit.id,
            title="A warning about your account",
            url="/account",
            text=message,
        )
        to, name = user.email, " ".join(user.name.split())
    await queue_mail(
        app,
        template="abuse_warning",
        to=to,
        context={"name": name, "message": message, "link": site_url(app, "/account")},
    )


async def save_rule(request: web.Request, rule: str, body: RuleIn) -> RuleSettings:
    if rule not in RULES:
        raise NotFound("No such rule.")
    domains: list[str] = []
    for raw in body.extra_domains:
        domain = raw.strip().lower().lstrip("@").rstrip(".")
        if not domain:
            continue
        if "." not in domain or " " in domain or len(domain) > 253:
            raise Invalid(fields={"extra_domains": f"Not a domain: {raw[:60]}"})
        domains.append(domain)
    params: dict[str, Any] = {}
    if rule == "disposable_email":
        params = {"extra_domains": sorted(set(domains))}
    elif rule == "api_key_misuse":
        default = RULES[rule][1].params["refusal_threshold"]
        params = {"refusal_threshold": body.refusal_threshold or default}
    async with request.app[DB].transaction() as session:
        row = await session.get(AbuseRule, rule)
        if row is None:
            row = AbuseRule(rule=rule)
            session.add(row)
        row.enabled = body.enabled
        row.action = body.action
        row.threshold = body.threshold
        row.window_minutes = body.window_minutes
        row.params = params
        row.updated_at = utcnow()
    request.app[RULE_CACHE].clear()
    await audit.record(
        request.app,
        request,
        "abuse.rule_changed",
        target_type="abuse_rule",
        target_id=rule,
        details={
            "enabled": body.enabled,
            "action": body.action,
            "threshold": body.threshold,
            "window_minutes": body.window_minutes,
        },
    )
    return RuleSettings(
        rule, body.enabled, body.action, body.threshold, body.window_minutes, params
    )


def window_start(settings: RuleSettings) -> datetime:
    return utcnow() - timedelta(minutes=settings.window_minutes)
