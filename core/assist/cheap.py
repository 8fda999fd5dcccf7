"""One short request to a cheap text model on a user's behalf, metered like an answer: the most
it can cost is held in the user's wallet first (``PaymentRequired`` when it is not there), the
model is called with no database session open, and the hold is settled to what it really used
(the provider's usage, or the delivered text counted offline) under the caller's own ledger
reference. A failure settles what was used (usually nothing) and raises.

Which model: the one an admin named (setting ``assist.model``) while it is usable, otherwise the
usable text model with the lowest price per token.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from pydantic import BaseModel

from multinotes.app_settings import get_setting
from multinotes.catalog import CatalogEntry, cost_of
from multinotes.chat.pipeline import complete_usage, max_usage
from multinotes.errors import Conflict, ProviderBadResponse, ProviderError
from multinotes.keys import CATALOG, DB
from multinotes.providers import ChatMessage, MediaOutput, Usage
from multinotes.tokens import count_tokens
from multinotes.wallet import service as wallet

MODEL_SETTING = "assist.model"
#: Seconds a cheap request may take in all.
TIMEOUT = 60.0


def _price(entry: CatalogEntry) -> float:
    return entry.pricing.input_per_million + entry.pricing.output_per_million


def usable_text_models(entries: list[CatalogEntry]) -> list[CatalogEntry]:
    return [e for e in entries if e.available and "text" in e.model.capabilities]


async def pick_model(app: web.Application, setting: str = MODEL_SETTING) -> CatalogEntry:
    """The admin's chosen model (``setting`` names it) if usable now, else the cheapest usable
    text model."""
    usable = usable_text_models(await app[CATALOG].entries())
    chosen = await get_setting(app[DB], setting)
    for entry in usable:
        if entry.id == chosen:
            return entry
    if not usable:
        raise Conflict("No text model can be used right now.", code="no_model")
    return min(usable, key=lambda e: (_price(e), e.id))


def _planned(
    entry: CatalogEntry, messages: list[ChatMessage], max_tokens: int
) -> tuple[BaseModel, int, int]:
    """The request's options, its prompt's tokens and the most it can cost (the hold)."""
    options = entry.model.Options()
    if "max_tokens" in type(options).model_fields:
        limit = min(max_tokens, entry.model.max_output or max_tokens)
        options.max_tokens = limit  # type: ignore[attr-defined]
    prompt_tokens = sum(count_tokens(m.content) for m in messages) + 4 * len(messages)
    return (
        options,
        prompt_tokens,
        cost_of(max_usage(entry, options, prompt_tokens, messages), entry.pricing),
    )


def most_it_costs(entry: CatalogEntry, messages: list[ChatMessage], max_tokens: int = 200) -> int:
    """What ``ask`` would hold for this request (to refuse one up front that cannot be paid)."""
    return _planned(entry, messages, max_tokens)[2]


async def ask(
    app: web.Application,
    user_id: str,
    entry: CatalogEntry,
    messages: list[ChatMessage],
    *,
    reference: str,
    reason: str,
    max_tokens: int = 200,
) -> tuple[str, int]:
    """The model's text and the credits it cost. Raises ``PaymentRequired`` (nothing held) or a
    ``ProviderError`` (what was used is charged, usually nothing)."""
    options, prompt_tokens, hold = _planned(entry, messages, max_tokens)
    db = app[DB]
    await wallet.reserve(db, user_id, hold, reference, entry.id)
    usage = Usage()
    parts: list[str] = []
    try:
        request = entry.request(
            messages, options, usage=usage, timeout=TIMEOUT, clients=app[CATALOG].clients
        )
        async with asyncio.timeout(TIMEOUT):
            async for chunk in entry.model.stream(request):
                if isinstance(chunk, str):
                    parts.append(chunk)
                elif not isinstance(chunk, MediaOutput):
                    raise ProviderBadResponse(f"{entry.provider.name} sent something unexpected.")
    except BaseException as exc:
        used = cost_of(complete_usage(usage, "".join(parts), prompt_tokens), entry.pricing)
        await asyncio.shield(wallet.settle(db, reference, used, reason=reason))
        if isinstance(exc, TimeoutError):
            raise ProviderError(
                f"{entry.provider.name} did not answer within {TIMEOUT:g} s.",
                code="provider_timeout",
            ) from None
        raise
    text = "".join(parts)
    cost = await wallet.settle(
        db,
        reference,
        cost_of(complete_usage(usage, text, prompt_tokens), entry.pricing),
        reason=reason,
    )
    return text, cost
