"""The rules about accounts in use: credit draining, repeated content-filter refusals and API-key
misuse, and the throttle their ``rate_limit`` action sets.

Credit draining and refusals react to the generation pipeline's domain events
(``generation.completed`` / ``generation.failed``): one counter increment per answer that cost
something or was refused, in the rate-limit storage, and SQL only when a rule trips (to record
the hit). API-key misuse is seen by ``middleware`` around each request made with a key: a
network the key was not seen from in this window costs two increments, a 403 or 429 answer one;
anything else costs none (networks already seen are remembered in the process for a minute).
The same middleware refuses a throttled account's generation requests (429
``abuse_throttled`` with Retry-After) before they hold any credits.

A rule trips once per window and account (or key): the hit is recorded with its evidence, then
its action runs: ``none`` (only the review queue), ``rate_limit`` (the throttle, for the rule's
window) or ``suspend`` (the account is blocked and told why; never an admin's).
"""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from multinotes.abuse import rules, service, throttle
from multinotes.abuse.rules import RULE_CACHE, RuleSettings
from multinotes.db import utcnow
from multinotes.domain_events import (
    GENERATION_COMPLETED,
    GENERATION_FAILED,
    DomainEvent,
    EventBus,
)
from multinotes.errors import AppError, RateLimited
from multinotes.http.endpoint import spec_of
from multinotes.identity.actor import ACTOR, Actor
from multinotes.identity.models import User
from multinotes.keys import DB

#: The error code of an answer a content filter refused (``multinotes.errors.ContentFiltered``).
CONTENT_FILTERED = "content_filtered"

SUSPENDED_REASON = {
    "credit_drain": "Suspended automatically: the account spent an unusual amount of credits "
    "in a short time. Contact support to have it reviewed.",
    "moderation_flags": "Suspended automatically: many requests from the account were refused "
    "by the content filter. Contact support to have it reviewed.",
    "api_key_misuse": "Suspended automatically: an API key of the account was misused. "
    "Contact support to have it reviewed.",
}

#: How long a process remembers that a key was seen from a network (skipping the counter).
SEEN_SECONDS = 60.0
SEEN_MAX = 10_000


class SeenNetworks:
    """(API key, network) pairs this process counted recently, so a key used again and again
    from the same network costs nothing after its first request."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], float] = {}

    def fresh(self, key_id: str, network: str) -> bool:
        now = time.monotonic()
        if self._until.get((key_id, network), 0.0) > now:
            return False
        if len(self._until) >= SEEN_MAX:
            self._until = {k: t for k, t in self._until.items() if t > now}
            if len(self._until) >= SEEN_MAX:
                self._until.clear()
        self._until[(key_id, network)] = now + SEEN_SECONDS
        return True

    def forget(self, key_id: str, network: str) -> None:
        """Count this pair again next time (it could not be counted now)."""
        self._until.pop((key_id, network), None)


SEEN_NETWORKS = web.AppKey("abuse_seen_networks", SeenNetworks)


def setup(app: web.Application, bus: EventBus) -> None:
    app[RULE_CACHE] = rules.RuleCache()
    app[SEEN_NETWORKS] = SeenNetworks()
    bus.subscribe(GENERATION_COMPLETED, on_generation)
    bus.subscribe(GENERATION_FAILED, on_generation)


async def on_generation(app: web.Application, event: DomainEvent) -> None:
    user_id = event.user_id
    if user_id is None:
        return
    cost = int(event.payload.get("cost") or 0)
    refused = event.payload.get("error_code") == CONTENT_FILTERED
    cache, db = app[RULE_CACHE], app[DB]
    if cost > 0:
        settings = await cache.get(db, "credit_drain")
        if settings.enabled:
            spent = await throttle.add(app, f"credits:{user_id}", cost, _window(settings))
            if throttle.crossed(spent, cost, settings.threshold):
                await trip(
                    app,
                    settings,
                    user_id,
                    {
                        "credits_in_window": spent,
                        "threshold": settings.threshold,
                        "window_minutes": settings.window_minutes,
                        "last_answer_cost": cost,
                        "last_model": event.payload.get("model") or "(blind)",
                    },
                )
    if refused:
        settings = await cache.get(db, "moderation_flags")
        if settings.enabled:
            count = await throttle.add(app, f"refusals:{user_id}", 1, _window(settings))
            if throttle.crossed(count, 1, settings.threshold):
                await trip(
                    app,
                    settings,
                    user_id,
                    {
                        "refusals_in_window": count,
                        "threshold": settings.threshold,
                        "window_minutes": settings.window_minutes,
                        "last_model": event.payload.get("model") or "(blind)",
                        "last_conversation_id": event.payload.get("conversation_id"),
                    },
                )


@web.middleware
async def throttle_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuses a throttled account's generation requests before they hold any credits. Runs
    after authentication."""
    actor: Actor | None = request.get(ACTOR)
    spec = spec_of(request.match_info.handler) if request.match_info is not None else None
    if actor is not None and spec is not None and spec.rate == "generation":
        wait = await throttle.throttled_for(request.app, actor.user_id)
        if wait:
            minutes = max(1, math.ceil(wait / 60))
            raise RateLimited(
                "Generation is paused for your account after unusual activity was detected. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
                code="abuse_throttled",
                retry_after=wait,
            )
    return await handler(request)


@web.middleware
async def key_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Watches requests made with an API key: the networks it comes from, and its 403 and 429
    answers (a scope refused by authentication, a rate limit). Runs around authentication."""
    if not request.headers.get("Authorization", "").lower().startswith("bearer "):
        return await handler(request)
    try:
        response = await handler(request)
    except AppError as exc:
        await _key_seen(request, exc.status, exc.error_code)
        raise
    await _key_seen(request, response.status, None)
    return response


async def _key_seen(request: web.Request, status: int, code: str | None) -> None:
    actor: Actor | None = request.get(ACTOR)
    if actor is None or actor.via != "api_key" or actor.api_key_id is None:
        return  # an unknown or revoked key: nobody to attribute it to
    network = rules.network_of(request.remote)
    if network is not None and request.app[SEEN_NETWORKS].fresh(actor.api_key_id, network):
        await _key_network(request.app, actor, network)
    if status in (403, 429):
        await _key_refused(request.app, actor, network, status, code)


async def _key_network(app: web.Application, actor: Actor, network: str) -> None:
    settings = await app[RULE_CACHE].get(app[DB], "api_key_misuse")
    if not settings.enabled:
        return
    key_id = str(actor.api_key_id)
    window = _window(settings)
    first = await throttle.add(app, f"keynet:{key_id}:{network}", 1, window)
    if first is None:
        app[SEEN_NETWORKS].forget(key_id, network)
    if first != 1:
        return
    networks = await throttle.add(app, f"keynets:{key_id}", 1, window)
    if throttle.crossed(networks, 1, settings.threshold):
        await trip(
            app,
            settings,
            actor.user_id,
            {
                "signal": "many networks",
                "api_key_id": key_id,
                "networks_in_window": networks,
                "threshold": settings.threshold,
                "window_minutes": settings.window_minutes,
            },
            network=network,
        )


async def _key_refused(
    app: web.Application, actor: Actor, network: str | None, status: int, code: str | None
) -> None:
    settings = await app[RULE_CACHE].get(app[DB], "api_key_misuse")
    if not settings.enabled:
        return
    key_id = str(actor.api_key_id)
    limit = int(settings.params.get("refusal_threshold") or 50)
    refusals = await throttle.add(app, f"keyrefusals:{key_id}", 1, _window(settings))
    if throttle.crossed(refusals, 1, limit):
        await trip(
            app,
            settings,
            actor.user_id,
            {
                "signal": "many refusals",
                "api_key_id": key_id,
                "refusals_in_window": refusals,
                "refusal_threshold": limit,
                "window_minutes": settings.window_minutes,
                "last_status": status,
                "last_code": code or str(status),
            },
            network=network,
        )


async def trip(
    app: web.Application,
    settings: RuleSettings,
    user_id: str,
    evidence: dict[str, Any],
    *,
    network: str | None = None,
) -> None:
    """Record the rule's hit on the account with its evidence and run the rule's action."""
    db = app[DB]
    evidence = {**evidence, "at": utcnow().isoformat()}
    action_taken = "none"
    if settings.action == "rate_limit":
        seconds = _window(settings)
        await throttle.throttle(app, user_id, seconds)
        evidence["throttled_for_seconds"] = seconds
        action_taken = "rate_limited"
    elif settings.action == "suspend":
        async with db.read() as session:
            user = await session.get(User, user_id)
        if user is not None and user.is_admin:
            evidence["not_suspended"] = "an administrator's account"
        elif user is not None:
            await service.suspend_user(db, user_id, SUSPENDED_REASON[settings.rule])
            action_taken = "suspended"
    await service.record_hit(
        db,
        settings.rule,
        evidence=evidence,
        action_taken=action_taken,
        user_id=user_id,
        network=network,
    )


def _window(settings: RuleSettings) -> int:
    return settings.window_minutes * 60
