"""Endpoints (who owns what), dispatch of events into deliveries, and the delivery attempts
with their retry schedule. Route handlers and tasks call these; nothing here speaks HTTP to a
browser."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import structlog
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from multinotes.plugin import (
    Event,
    Forbidden,
    Invalid,
    NotFound,
    PluginContext,
    new_id,
    outgoing,
    utcnow,
)

from .signing import headers, new_secret
from .tables import Attempt, Delivery, Endpoint

log = structlog.get_logger(__name__)

PLUGIN = "webhooks"
DELIVER_TASK = "webhooks.deliver"
SWEEP_TASK = "webhooks.sweep"
TEST_EVENT = "webhook.test"
#: What the log keeps of a receiver's answer.
EXCERPT = 1000
#: Retries at most this far away run in the same task (a sleep), later ones come from the sweep.
INLINE_RETRY_SECONDS = 15.0
#: An attempt that neither succeeded nor failed by then crashed: the sweep sends it again.
CRASH_LEASE = timedelta(minutes=2)
#: Receivers' answers longer than this are cut in the log.
MAX_URL = 2000


class WebhooksSettings(BaseModel):
    """What an admin can tune in the Plugins console."""

    timeout_seconds: float = Field(
        default=15.0, gt=0, le=60, description="How long a receiver has to answer one attempt."
    )
    retry_schedule_seconds: list[float] = Field(
        # Standard Webhooks' suggestion: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (~27.6 h).
        default=[5, 300, 1800, 7200, 18000, 36000, 36000],
        max_length=20,
        description="Delays before each retry after a failed attempt (each with ±20% jitter); "
        "after the last one the delivery is failed.",
    )
    disable_after_hours: float = Field(
        default=120.0,
        ge=0,
        description="An endpoint whose attempts have all failed for this long is switched off "
        "and its owner notified.",
    )
    max_endpoints_per_user: int = Field(default=20, ge=1, le=1000)


# -- endpoints ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    user_id: str
    is_admin: bool


def validate_url(url: str) -> str:
    """https or http, a host, no user name or password in it (the field error otherwise)."""
    url = url.strip()
    if len(url) > MAX_URL:
        raise Invalid(fields={"url": f"At most {MAX_URL} characters."})
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise Invalid(fields={"url": "Must start with https:// (or http://)."})
    if not parts.hostname:
        raise Invalid(fields={"url": "Must name a host, e.g. https://example.com/hooks."})
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Invalid(fields={"url": "Must not contain a user name or password."})
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise Invalid(fields={"url": "Has an invalid port."}) from None
    return url


async def check_reachable(url: str) -> None:
    """Refuse a URL whose host resolves to an address the outgoing policy forbids (private,
    loopback, link-local, metadata, ...) unless the operator allowed it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = await outgoing.resolve(host, port)
    except OSError:
        raise Invalid(fields={"url": f"The host {host} cannot be resolved."}) from None
    try:
        outgoing.policy().allowed(host, addresses)
    except outgoing.OutgoingRefused as exc:
        raise Invalid(fields={"url": exc.message}) from None


def validate_events(events: list[str]) -> list[str]:
    names = list(dict.fromkeys(e.strip() for e in events))
    if not names:
        raise Invalid(fields={"events": "Choose at least one event, e.g. note.created."})
    for name in names:
        if not _is_event_name(name):
            raise Invalid(fields={"events": f"{name!r} is not an event name (e.g. note.created)."})
    return names


def _is_event_name(name: str) -> bool:
    parts = name.split(".")
    return (
        0 < len(name) <= 100
        and len(parts) >= 2
        and all(p and p[0].isalpha() and p.replace("_", "").isalnum() for p in parts)
        and name == name.lower()
        and name.isascii()
    )


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "events": list(endpoint.events),
        "scope": endpoint.scope,
        "owner_id": endpoint.user_id,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": _iso(endpoint.failing_since),
        "previous_secret_until": _iso(endpoint.previous_secret_until)
        if endpoint.previous_secret
        else None,
        "created_at": _iso(endpoint.created_at),
        "updated_at": _iso(endpoint.updated_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def create_endpoint(
    ctx: PluginContext,
    viewer: Viewer,
    *,
    url: str,
    events: list[str],
    description: str = "",
    scope: str = "user",
) -> tuple[Endpoint, str]:
    """A new endpoint and its secret (shown this once)."""
    settings = await ctx.settings(WebhooksSettings)
    if scope == "instance" and not viewer.is_admin:
        raise Invalid(fields={"scope": "Only an administrator may create instance-wide webhooks."})
    url = validate_url(url)
    names = validate_events(events)
    await check_reachable(url)
    secret = new_secret()
    async with ctx.transaction() as session:
        count = await session.scalar(
            select(func.count()).select_from(Endpoint).where(Endpoint.user_id == viewer.user_id)
        )
        if int(count or 0) >= settings.max_endpoints_per_user:
            raise Invalid(
                fields={"url": f"You have {count} webhooks, the most allowed; delete one first."}
            )
        endpoint = Endpoint(
            user_id=viewer.user_id,
            scope=scope,
            url=url,
            description=description.strip(),
            events=names,
            secret=ctx.encrypt(secret),
            enabled=True,
        )
        session.add(endpoint)
    return endpoint, secret


async def get_endpoint(ctx: PluginContext, viewer: Viewer, endpoint_id: str) -> Endpoint:
    """The endpoint as ``viewer`` may see it: their own, or any for an admin; 404 otherwise."""
    async with ctx.read() as session:
        endpoint = await session.get(Endpoint, endpoint_id)
    if endpoint is None or (endpoint.user_id != viewer.user_id and not viewer.is_admin):
        raise NotFound("No such webhook.")
    return endpoint


async def list_endpoints(
    ctx: PluginContext, viewer: Viewer, *, everyone: bool = False
) -> list[Endpoint]:
    query = select(Endpoint).order_by(Endpoint.created_at.desc())
    if not (everyone and viewer.is_admin):
        query = query.where(Endpoint.user_id == viewer.user_id)
    async with ctx.read() as session:
        return list(await session.scalars(query))


async def update_endpoint(
    ctx: PluginContext, viewer: Viewer, endpoint_id: str, changes: dict[str, Any]
) -> Endpoint:
    endpoint = await get_endpoint(ctx, viewer, endpoint_id)
    values: dict[str, Any] = {}
    if "url" in changes:
        values["url"] = validate_url(changes["url"])
        await check_reachable(values["url"])
    if "events" in changes:
        values["events"] = validate_events(changes["events"])
    if "description" in changes:
        values["description"] = changes["description"].strip()
    if "enabled" in changes:
        values.update(_switch(endpoint, viewer, bool(changes["enabled"])))
    if values:
        values["updated_at"] = utcnow()
        async with ctx.transaction() as session:
            await session.execute(
                update(Endpoint).where(Endpoint.id == endpoint.id).values(**values)
            )
    return await get_endpoint(ctx, viewer, endpoint_id)


def _switch(endpoint: Endpoint, viewer: Viewer, enabled: bool) -> dict[str, Any]:
    if enabled and endpoint.disabled_reason == "admin" and not viewer.is_admin:
        raise Forbidden(
            "An administrator switched this webhook off; ask them to switch it on again.",
            code="disabled_by_admin",
        )
    if enabled:
        return {"enabled": True, "disabled_reason": None, "failing_since": None}
    by_admin = viewer.is_admin and endpoint.user_id != viewer.user_id
    return {"enabled": False, "disabled_reason": "admin" if by_admin else "owner"}


async def delete_endpoint(ctx: PluginContext, viewer: Viewer, endpoint_id: str) -> None:
    endpoint = await get_endpoint(ctx, viewer, endpoint_id)
    async with ctx.transaction() as session:
        # Children first: SQLite enforces the cascade too, this keeps it independent of it.
        deliveries = select(Delivery.id).where(Delivery.endpoint_id == endpoint.id)
        await session.execute(delete(Attempt).where(Attempt.delivery_id.in_(deliveries)))
        await session.execute(delete(Delivery).where(Delivery.endpoint_id == endpoint.id))
        await session.execute(delete(Endpoint).where(Endpoint.id == endpoint.id))


async def rotate_secret(
    ctx: PluginContext, viewer: Viewer, endpoint_id: str, grace_hours: float
) -> tuple[Endpoint, str]:
    """A new secret; the old one keeps signing (beside the new) for ``grace_hours``."""
    endpoint = await get_endpoint(ctx, viewer, endpoint_id)
    secret = new_secret()
    now = utcnow()
    async with ctx.transaction() as session:
        await session.execute(
            update(Endpoint)
            .where(Endpoint.id == endpoint.id)
            .values(
                secret=ctx.encrypt(secret),
                previous_secret=endpoint.secret if grace_hours > 0 else None,
                previous_secret_until=now + timedelta(hours=grace_hours)
                if grace_hours > 0
                else None,
                updated_at=now,
            )
        )
    return await get_endpoint(ctx, viewer, endpoint_id), secret


def signing_secrets(ctx: PluginContext, endpoint: Endpoint, now: datetime) -> list[str]:
    keys = [ctx.decrypt(endpoint.secret)]
    if (
        endpoint.previous_secret
        and endpoint.previous_secret_until
        and (endpoint.previous_secret_until > now)
    ):
        keys.append(ctx.decrypt(endpoint.previous_secret))
    return keys


# -- dispatch -----------------------------------------------------------------------------------


def message_body(event_type: str, data: dict[str, Any], occurred_at: str = "") -> str:
    """The JSON body Standard Webhooks describes: ``type``, ``timestamp`` (ISO 8601), ``data``."""
    timestamp = occurred_at or utcnow().isoformat()
    return json.dumps(
        {"type": event_type, "timestamp": timestamp, "data": data}, separators=(",", ":")
    )


async def dispatch(ctx: PluginContext, event: Event) -> list[str]:
    """One delivery per enabled endpoint that wants ``event`` and may see it: the owner's own
    endpoints for events about the owner's objects, and every admin's instance-wide endpoint.
    Handing the same event over twice (at-least-once) makes no second delivery."""
    async with ctx.read() as session:
        query = select(Endpoint).where(Endpoint.enabled.is_(True))
        if event.user_id:
            query = query.where(
                or_(Endpoint.scope == "instance", Endpoint.user_id == event.user_id)
            )
        else:
            query = query.where(Endpoint.scope == "instance")
        endpoints = [e for e in await session.scalars(query) if event.name in e.events]
    event_key = getattr(event, "id", "") or new_id()
    body = message_body(event.name, event.data, getattr(event, "occurred_at", "") or "")
    created = []
    for endpoint in endpoints:
        delivery_id = await _new_delivery(ctx, endpoint.id, event.name, event_key, body)
        if delivery_id:
            created.append(delivery_id)
            await ctx.enqueue(DELIVER_TASK, delivery_id=delivery_id, initial=True)
    return created


async def _new_delivery(
    ctx: PluginContext, endpoint_id: str, event_type: str, event_key: str, body: str
) -> str | None:
    delivery = Delivery(
        endpoint_id=endpoint_id,
        event_type=event_type,
        event_key=event_key[:64],
        body=body,
        status="pending",
        attempts=0,
        # The queued first attempt claims it; if that task is lost, the sweep sends it then.
        next_attempt_at=utcnow() + CRASH_LEASE,
    )
    try:
        async with ctx.transaction() as session:
            session.add(delivery)
    except IntegrityError:
        return None  # this event already has its delivery to this endpoint
    return delivery.id


async def send_test(ctx: PluginContext, viewer: Viewer, endpoint_id: str) -> str:
    endpoint = await get_endpoint(ctx, viewer, endpoint_id)
    body = message_body(
        TEST_EVENT,
        {"endpoint_id": endpoint.id, "message": "A test event sent from MultinotesAI."},
    )
    delivery_id = await _new_delivery(ctx, endpoint.id, TEST_EVENT, new_id(), body)
    assert delivery_id is not None
    await ctx.enqueue(DELIVER_TASK, delivery_id=delivery_id, initial=True)
    return delivery_id


# -- attempts -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    status_code: int | None = None
    latency_ms: int = 0
    excerpt: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def post(url: str, body: str, signed: dict[str, str], seconds: float) -> Outcome:
    """One POST through the outgoing guard (every attempt resolves and checks the address
    again; redirects are not followed)."""
    started = time.perf_counter()
    outcome = Outcome()
    request_headers = {
        "content-type": "application/json",
        "user-agent": "MultinotesAI-Webhooks/1",
        **signed,
    }
    try:
        async with (
            aiohttp.ClientSession(
                connector=outgoing.connector(), timeout=aiohttp.ClientTimeout(total=seconds)
            ) as session,
            session.post(
                url, data=body.encode(), headers=request_headers, **outgoing.AIOHTTP_REQUEST_ARGS
            ) as response,
        ):
            outcome.status_code = response.status
            raw = await response.content.read(EXCERPT)
            outcome.excerpt = raw.decode("utf-8", "replace")
            if outgoing.is_redirect(response.status):
                target = response.headers.get("Location", "")
                outcome.error = f"Redirect to {target[:300]} not followed."
            elif not 200 <= response.status < 300:
                outcome.error = f"The receiver answered HTTP {response.status}."
    except TimeoutError:
        outcome.error = f"No answer within {seconds:g} s."
    except outgoing.OutgoingRefused as exc:
        outcome.error = exc.message[:500]
    except aiohttp.ClientError as exc:
        refused = outgoing.refusal_in(exc)
        outcome.error = (
            refused.message if refused else f"Connection failed: {type(exc).__name__}: {exc}"
        )[:500]
    outcome.latency_ms = round((time.perf_counter() - started) * 1000)
    return outcome


def retry_delay(schedule: list[float], failed_attempts: int) -> float | None:
    """Seconds until the next retry after ``failed_attempts`` failures (±20% jitter), or None
    when the schedule is used up."""
    if failed_attempts > len(schedule):
        return None
    base = schedule[failed_attempts - 1]
    return max(0.0, base * random.uniform(0.8, 1.2))


async def _claim(
    ctx: PluginContext, delivery_id: str, expected_attempts: int, *, due_only: bool = True
) -> bool:
    """Take the due attempt of a pending delivery: the claim pushes ``next_attempt_at`` out by
    the crash lease, so of two tasks holding it (the sweep ran twice, a retry woke up as the
    sweep found it) only one sends. The first attempt, queued with the delivery, is not due
    yet (its lease runs): it claims with ``due_only=False``."""
    now = utcnow()
    conditions = [
        Delivery.id == delivery_id,
        Delivery.status == "pending",
        Delivery.attempts == expected_attempts,
    ]
    if due_only:
        conditions.append(Delivery.next_attempt_at <= now)
    async with ctx.transaction() as session:
        result = await session.execute(
            update(Delivery).where(*conditions).values(next_attempt_at=now + CRASH_LEASE)
        )
    # an UPDATE's result is a CursorResult, which counts the rows it changed
    return bool(cast(CursorResult[Any], result).rowcount)


async def deliver(
    ctx: PluginContext, delivery_id: str, expected_attempts: int, *, initial: bool = False
) -> str:
    """Send a pending delivery, retrying in place while the next retry is near; returns its
    status. A crash at any point leaves it pending with ``next_attempt_at`` set, so the sweep
    sends it again (at-least-once, same ``webhook-id``)."""
    settings = await ctx.settings(WebhooksSettings)
    while True:
        if not ctx.is_enabled():
            return "pending"  # switched off: it waits, the sweep resumes it when back on
        if not await _claim(ctx, delivery_id, expected_attempts, due_only=not initial):
            return "skipped"
        status, delay = await attempt(ctx, delivery_id, settings, trigger="auto")
        if status != "pending" or delay is None or delay > INLINE_RETRY_SECONDS:
            return status
        expected_attempts += 1
        initial = False
        await asyncio.sleep(delay)


async def attempt(
    ctx: PluginContext, delivery_id: str, settings: WebhooksSettings, *, trigger: str
) -> tuple[str, float | None]:
    """One attempt, recorded; returns the delivery's status and, when pending, the delay
    before its next attempt."""
    async with ctx.read() as session:
        delivery = await session.get(Delivery, delivery_id)
        endpoint = await session.get(Endpoint, delivery.endpoint_id) if delivery else None
    if delivery is None or endpoint is None:
        return "gone", None
    if not endpoint.enabled and trigger == "auto":
        async with ctx.transaction() as session:
            await session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(status="failed", next_attempt_at=None)
            )
        return "failed", None
    now = utcnow()
    timestamp = int(time.time())
    signed = headers(
        signing_secrets(ctx, endpoint, now), f"msg_{delivery.id}", timestamp, delivery.body
    )
    # Checked again on every attempt: the host may resolve elsewhere by now.
    outcome = await post(endpoint.url, delivery.body, signed, settings.timeout_seconds)
    number = delivery.attempts + 1
    delay: float | None = None
    if outcome.ok:
        status = "succeeded"
    elif trigger == "manual" and delivery.status != "pending":
        status = delivery.status
    else:
        delay = retry_delay(settings.retry_schedule_seconds, number)
        status = "pending" if delay is not None else "failed"
    disable = False
    async with ctx.transaction() as session:
        session.add(
            Attempt(
                delivery_id=delivery.id,
                number=number,
                trigger=trigger,
                started_at=now,
                status_code=outcome.status_code,
                latency_ms=outcome.latency_ms,
                response_excerpt=outcome.excerpt[:EXCERPT],
                error=outcome.error[:500] if outcome.error else None,
            )
        )
        await session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id)
            .values(
                attempts=number,
                status=status,
                next_attempt_at=utcnow() + timedelta(seconds=delay) if delay is not None else None,
            )
        )
        current = await session.get(Endpoint, endpoint.id)
        if current is not None:
            if outcome.ok:
                current.failing_since = None
            else:
                current.failing_since = current.failing_since or now
                failing_for = now - current.failing_since
                if (
                    current.enabled
                    and failing_for >= timedelta(hours=settings.disable_after_hours)
                    and status == "failed"
                ):
                    current.enabled = False
                    current.disabled_reason = "failing"
                    disable = True
    if disable:
        log.warning("webhook_endpoint_disabled", endpoint_id=endpoint.id)
        since = f"{(endpoint.failing_since or now):%Y-%m-%d %H:%M}"
        page = f"/integrations/webhooks/{endpoint.id}"
        await ctx.notify(
            endpoint.user_id,
            title="A webhook was switched off: its receiver kept failing",
            text=f"{endpoint.url} failed every delivery since {since} UTC. Fix the receiver, "
            "then switch the webhook on again and retry the failed deliveries.",
            url=page,
        )
        # A mail too: the owner may not open the app for days, and nothing arrives meanwhile.
        await ctx.mail(
            endpoint.user_id,
            template="endpoint_disabled",
            context={"url": endpoint.url, "since": since, "link": ctx.url(page)},
        )
    return status, delay


async def retry_now(ctx: PluginContext, viewer: Viewer, endpoint_id: str, delivery_id: str) -> str:
    """Resend a delivery at once (same ``webhook-id``), whatever its status."""
    endpoint = await get_endpoint(ctx, viewer, endpoint_id)
    async with ctx.read() as session:
        delivery = await session.get(Delivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound("No such delivery.")
    await ctx.enqueue(DELIVER_TASK, delivery_id=delivery.id, expected_attempts=-1)
    return delivery.id


async def sweep(ctx: PluginContext, limit: int = 200) -> int:
    """Queue every pending delivery whose next attempt is due (retries, and attempts a crash
    interrupted)."""
    async with ctx.read() as session:
        due = list(
            await session.execute(
                select(Delivery.id, Delivery.attempts)
                .where(Delivery.status == "pending", Delivery.next_attempt_at <= utcnow())
                .order_by(Delivery.next_attempt_at)
                .limit(limit)
            )
        )
    for delivery_id, attempts in due:
        await ctx.enqueue(DELIVER_TASK, delivery_id=delivery_id, expected_attempts=attempts)
    return len(due)


async def deliveries_of(
    ctx: PluginContext, viewer: Viewer, endpoint_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    endpoint = await get_endpoint(ctx, viewer, endpoint_id)
    async with ctx.read() as session:
        rows = list(
            await session.scalars(
                select(Delivery)
                .where(Delivery.endpoint_id == endpoint.id)
                .order_by(Delivery.created_at.desc(), Delivery.id.desc())
                .limit(limit)
            )
        )
        attempts = (
            list(
                await session.scalars(
                    select(Attempt)
                    .where(Attempt.delivery_id.in_([d.id for d in rows]))
                    .order_by(Attempt.number)
                )
            )
            if rows
            else []
        )
    by_delivery: dict[str, list[dict[str, Any]]] = {}
    for a in attempts:
        by_delivery.setdefault(a.delivery_id, []).append(
            {
                "number": a.number,
                "trigger": a.trigger,
                "started_at": _iso(a.started_at),
                "status_code": a.status_code,
                "latency_ms": a.latency_ms,
                "response_excerpt": a.response_excerpt,
                "error": a.error,
                "succeeded": a.error is None
                and a.status_code is not None
                and 200 <= a.status_code < 300,
            }
        )
    return [
        {
            "id": d.id,
            "webhook_id": f"msg_{d.id}",
            "type": d.event_type,
            "status": d.status,
            "attempt_count": d.attempts,
            "next_attempt_at": _iso(d.next_attempt_at) if d.status == "pending" else None,
            "created_at": _iso(d.created_at),
            "attempts": by_delivery.get(d.id, []),
        }
        for d in rows
    ]
