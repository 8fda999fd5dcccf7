"""Feature flags and A/B experiments, read from code through one small API::

    from multinotes import flags

    if await flags.enabled(request, "new_editor"):
        ...
    variant = await flags.variant(request, "checkout_button")  # "control", "green" or None

``enabled_for(app, user_id, name)`` and ``variant_for(app, user_id, name)`` do the same in a
background task. Templates get ``flags``, the set of names on for the reader
(``{% if "new_editor" in flags %}``).

A flag is on for a user when it is enabled and either lists them (id or email) or lets them in
by segment (``multinotes.segments``) *and* by its rollout percentage (a stable hash of flag
name and user id). An unknown flag is off. Asking for a running experiment's variant records,
once, that the user saw it; the experiment's conversion event then counts once for them. An
experiment that is not running has no variant (None): code shows its default.

Rules are cached per process and reloaded across processes on every change
(``multinotes.flags.cache``); only segment rules and email allow-lists read the database, at
most once per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from multinotes.flags import service
from multinotes.flags.cache import FlagCache
from multinotes.identity.actor import current_actor
from multinotes.keys import DB, FLAGS
from multinotes.segments import Traits, traits_of

__all__ = ["enabled", "enabled_for", "enabled_names", "variant", "variant_for"]

_TRAITS: web.RequestKey[dict[str, Traits | None]] = web.RequestKey("flag_traits")


def _traits_loader(app: web.Application, user_id: str) -> Callable[[], Awaitable[Traits | None]]:
    """Read the user's traits on first need, then reuse them."""
    found: list[Traits | None] = []

    async def load() -> Traits | None:
        if not found:
            found.append(await traits_of(app[DB], user_id))
        return found[0]

    return load


def _request_traits(request: web.Request, user_id: str) -> Callable[[], Awaitable[Traits | None]]:
    """As ``_traits_loader``, remembered on the request (several flags, one read)."""
    memo = request.get(_TRAITS)
    if memo is None:
        memo = {}
        request[_TRAITS] = memo

    async def load() -> Traits | None:
        if user_id not in memo:
            memo[user_id] = await traits_of(request.app[DB], user_id)
        return memo[user_id]

    return load


async def _cache(app: web.Application) -> FlagCache:
    cache = app[FLAGS]
    await cache.fresh()
    return cache


async def enabled(request: web.Request, name: str) -> bool:
    """Is flag ``name`` on for whoever makes this request (anyone: only if on for everyone)?"""
    rule = (await _cache(request.app)).flags.get(name)
    if rule is None:
        return False
    actor = current_actor(request)
    if actor is None:
        return await rule.decide(None, None, _no_traits)
    return await rule.decide(actor.user_id, actor.email, _request_traits(request, actor.user_id))


async def enabled_for(app: web.Application, user_id: str | None, name: str) -> bool:
    """Is flag ``name`` on for ``user_id``? For tasks and code without a request."""
    rule = (await _cache(app)).flags.get(name)
    if rule is None:
        return False
    if user_id is None:
        return await rule.decide(None, None, _no_traits)
    return await rule.decide(user_id, None, _traits_loader(app, user_id))


async def enabled_names(request: web.Request) -> frozenset[str]:
    """Every flag on for whoever makes this request (what templates see as ``flags``)."""
    cache = await _cache(request.app)
    actor = current_actor(request)
    on: set[str] = set()
    for name, rule in cache.flags.items():
        if actor is None:
            decided = await rule.decide(None, None, _no_traits)
        else:
            traits = _request_traits(request, actor.user_id)
            decided = await rule.decide(actor.user_id, actor.email, traits)
        if decided:
            on.add(name)
    return frozenset(on)


async def variant(request: web.Request, experiment: str) -> str | None:
    """The requester's variant of a running experiment (recorded as seen, once); None when the
    experiment is not running or nobody is logged in."""
    actor = current_actor(request)
    return await variant_for(request.app, actor.user_id if actor else None, experiment)


async def variant_for(app: web.Application, user_id: str | None, experiment: str) -> str | None:
    """``variant`` for ``user_id``, for tasks and code without a request."""
    if user_id is None:
        return None
    cache = await _cache(app)
    rule = cache.experiments.get(experiment)
    if rule is None:
        return None
    known = cache.known_exposure(rule.id, user_id)
    if known is not None:
        return known
    chosen = await service.expose(app[DB], rule.id, user_id, rule.assign(user_id))
    cache.remember_exposure(rule.id, user_id, chosen)
    return chosen


async def _no_traits() -> Traits | None:
    return None
