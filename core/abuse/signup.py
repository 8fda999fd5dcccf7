"""The sign-up rules, run by ``identity.guard.register_account`` around creating an account.

``before_signup`` counts the sign-up against its network and checks the address; it refuses
(429 ``signup_burst``, 422 ``disposable_email``) when a rule says ``rate_limit``, and otherwise
returns what ``after_signup`` must record about the new account (and whether to suspend it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from limits import RateLimitItemPerSecond
from limits.errors import StorageError

from multinotes import audit
from multinotes.abuse import rules, service
from multinotes.db import utcnow
from multinotes.errors import Invalid, RateLimited
from multinotes.identity.models import User
from multinotes.keys import DB, RATE_LIMITS

log = structlog.get_logger(__name__)

SUSPENDED_REASON = {
    "signup_burst": "Suspended automatically: many accounts were created from your network. "
    "Contact support to have it reviewed.",
    "disposable_email": "Suspended automatically: the account uses a throw-away email "
    "address. Contact support to have it reviewed.",
}


@dataclass
class Pending:
    """Hits to record once the account exists (``after_signup``)."""

    hits: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
    suspend: str | None = None  # the rule that suspends the new account


async def before_signup(request: web.Request, email: str) -> Pending:
    pending = Pending()
    await _signup_burst(request, pending)
    await _disposable_email(request, email, pending)
    return pending


async def _signup_burst(request: web.Request, pending: Pending) -> None:
    db = request.app[DB]
    settings = await rules.settings_of(db, "signup_burst")
    network = rules.network_of(request.remote)
    if not settings.enabled or network is None:
        return
    limiter = request.app[RATE_LIMITS].limiter
    item = RateLimitItemPerSecond(settings.threshold, settings.window_minutes * 60)
    try:
        # A moving window per network: a hit past the threshold is refused and not counted.
        allowed = await limiter.hit(item, "abuse-signup", network)
        if allowed:
            return
        reset_at, _remaining = await limiter.get_window_stats(item, "abuse-signup", network)
    except StorageError:
        log.warning("abuse_signup_counter_unavailable", network=network)
        return
    retry_after = max(1, math.ceil(reset_at - time.time()))
    evidence = {
        "network": network,
        "signups_in_window": settings.threshold,
        "threshold": settings.threshold,
        "window_minutes": settings.window_minutes,
        "at": utcnow().isoformat(),
    }
    if settings.action == "rate_limit":
        # One hit per network and window: the refusals that follow it add nothing to review.
        if not await service.recent_hit(
            db, "signup_burst", network, service.window_start(settings)
        ):
            await service.record_hit(
                db,
                "signup_burst",
                evidence={**evidence, "throttled_for_seconds": retry_after},
                action_taken="rate_limited",
                network=network,
            )
        minutes = max(1, math.ceil(retry_after / 60))
        raise RateLimited(
            "Too many accounts were created from your network recently. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            code="signup_burst",
            retry_after=retry_after,
        )
    pending.hits.append(("signup_burst", network, evidence))
    if settings.action == "suspend":
        pending.suspend = pending.suspend or "signup_burst"


async def _disposable_email(request: web.Request, email: str, pending: Pending) -> None:
    db = request.app[DB]
    settings = await rules.settings_of(db, "disposable_email")
    if not settings.enabled:
        return
    domain = rules.is_disposable(email, list(settings.params.get("extra_domains") or []))
    if domain is None:
        return
    network = rules.network_of(request.remote)
    evidence = {"domain": domain, "email": audit.mask_email(email), "at": utcnow().isoformat()}
    if settings.action == "rate_limit":
        await service.record_hit(
            db, "disposable_email", evidence=evidence, action_taken="refused", network=network
        )
        raise Invalid(
            "Sign up with a permanent email address: throw-away addresses are not accepted.",
            code="disposable_email",
            fields={"email": f"Addresses at {domain} are not accepted."},
        )
    pending.hits.append(("disposable_email", network, evidence))
    if settings.action == "suspend":
        pending.suspend = pending.suspend or "disposable_email"


async def after_signup(request: web.Request, user: User, pending: Pending) -> None:
    db = request.app[DB]
    if pending.suspend:
        await service.suspend_user(db, user.id, SUSPENDED_REASON[pending.suspend])
        user.is_active = False
    for rule, network, evidence in pending.hits:
        await service.record_hit(
            db,
            rule,
            evidence=evidence,
            action_taken="suspended" if pending.suspend == rule else "none",
            user_id=user.id,
            network=network,
        )
