"""The model catalog: every model of every enabled provider, with the admin's overrides
(enabled, prices, markup) and live availability (key present, circuit breaker closed).

Provider model lists are cached per process for a minute and dropped whenever plugin state or
settings change, so a provider that asks its server for models is not asked on every request.
The catalog also keeps the providers' long-lived SDK clients (``clients``), closed with the app.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import structlog
from aiohttp import web
from sqlalchemy import Boolean, Float, String, select
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.app_settings import get_setting
from multinotes.db import Base, UTCDateTime, utcnow
from multinotes.errors import Invalid, NeedsKey, NotFound, ProviderError, ProviderUnavailable
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS
from multinotes.providers import (
    PRICE_FIELDS,
    ChatMessage,
    ClientCache,
    GenerationRequest,
    Model,
    Pricing,
    Provider,
    Usage,
    call_with_credentials,
    generation_request,
    provider_base_url,
    provider_key,
)

log = structlog.get_logger(__name__)

Status = Literal["ok", "needs_key", "unavailable"]
MODEL_CACHE_SECONDS = 60.0
OVERRIDES_CACHE_SECONDS = 2.0


class ModelSetting(Base):
    """An admin's overrides for one model. No row: the provider's defaults apply."""

    __tablename__ = "model_settings"

    model_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    input_per_million: Mapped[float | None] = mapped_column(Float)
    output_per_million: Mapped[float | None] = mapped_column(Float)
    per_image: Mapped[float | None] = mapped_column(Float)
    per_audio_minute: Mapped[float | None] = mapped_column(Float)
    markup_percent: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def cost_of(usage: Usage, pricing: Pricing) -> int:
    """Whole credits for ``usage`` at ``pricing`` (rounded up: a request is never free by
    rounding when it used anything billable)."""
    amount = (
        usage.input_tokens * pricing.input_per_million / 1_000_000
        + usage.output_tokens * pricing.output_per_million / 1_000_000
        + usage.images * pricing.per_image
        + usage.audio_seconds / 60 * pricing.per_audio_minute
    )
    return math.ceil(amount - 1e-9) if amount > 0 else 0


@dataclass
class CatalogEntry:
    model: Model
    provider: Provider
    plugin: str
    config: Any
    pricing: Pricing
    base_pricing: Pricing
    markup_percent: float
    enabled: bool
    status: Status
    has_override: bool = False

    @property
    def id(self) -> str:
        return self.model.model_id

    @property
    def available(self) -> bool:
        return self.enabled and self.status == "ok"

    def request(
        self, messages: list[ChatMessage], options: Any, **kwargs: Any
    ) -> GenerationRequest:
        """A call of this model: the plugin's settings, the key and base URL read from them
        (``NeedsKey`` when a needed key is missing), and ``kwargs`` (usage, timeout, clients)."""
        return generation_request(self.provider, messages, options, self.config, **kwargs)

    def public(self, rating: tuple[float, int] | None = None) -> dict[str, Any]:
        average, count = rating or (None, 0)
        return {
            "id": self.id,
            "provider": self.provider.provider_id,
            "provider_name": self.provider.name,
            "name": self.model.name,
            "label": self.model.label,
            "description": self.model.description,
            "capabilities": sorted(self.model.capabilities),
            "context_window": self.model.context_window,
            "max_output": self.model.max_output,
            "pricing": _pricing_dict(self.pricing),
            "available": self.available,
            "status": self.status,
            "rating": {"average": average, "count": count},
        }


def _pricing_dict(pricing: Pricing) -> dict[str, float]:
    return {name: round(getattr(pricing, name), 6) for name in PRICE_FIELDS}


@dataclass
class CircuitBreaker:
    """Per provider: after ``threshold`` consecutive failures the provider is unavailable for
    ``cooldown`` seconds; then one trial request decides whether it recovered."""

    threshold: int = 5
    cooldown: float = 30.0
    failures: dict[str, int] = field(default_factory=dict)
    opened_at: dict[str, float] = field(default_factory=dict)

    def is_open(self, provider: str) -> bool:
        opened = self.opened_at.get(provider)
        # After the cooldown it is half-open: the next request may try.
        return opened is not None and time.monotonic() - opened < self.cooldown

    def record_success(self, provider: str) -> None:
        self.failures.pop(provider, None)
        self.opened_at.pop(provider, None)

    def record_failure(self, provider: str) -> None:
        count = self.failures.get(provider, 0) + 1
        self.failures[provider] = count
        if count >= self.threshold:
            if provider not in self.opened_at or not self.is_open(provider):
                log.warning("provider_circuit_opened", provider=provider, failures=count)
            self.opened_at[provider] = time.monotonic()


def _key_missing(provider: Provider, config: Any) -> bool:
    return bool(provider.key_field) and provider_key(provider, config, required=False) is None


class Catalog:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.breaker = CircuitBreaker()
        self._models: dict[str, tuple[float, list[Model]]] = {}
        self._overrides: tuple[float, dict[str, ModelSetting], float] | None = None
        #: Handed to every model call as ``GenerationRequest.clients``.
        self.clients = ClientCache()
        app[PLUGINS].on_change(self.invalidate)
        app.on_cleanup.append(self._close_clients)

    async def _close_clients(self, app: web.Application) -> None:
        await self.clients.aclose()

    def invalidate(self) -> None:
        """Forget cached model lists and admin overrides (after a change in this process;
        other processes pick changes up within ``OVERRIDES_CACHE_SECONDS``)."""
        self._models.clear()
        self._overrides = None

    async def _admin_overrides(self) -> tuple[dict[str, ModelSetting], float]:
        """Per-model overrides and the global markup, read at most every couple of seconds:
        every generation resolves its models, and these change only when an admin edits."""
        now = time.monotonic()
        if self._overrides is not None and now - self._overrides[0] < OVERRIDES_CACHE_SECONDS:
            return self._overrides[1], self._overrides[2]
        async with self.app[DB].read() as session:
            overrides = {row.model_id: row for row in await session.scalars(select(ModelSetting))}
        markup = float(await get_setting(self.app[DB], "pricing.markup_percent") or 0)
        self._overrides = (now, overrides, markup)
        return overrides, markup

    async def _provider_models(self, provider: Provider, config: Any) -> list[Model]:
        cached = self._models.get(provider.provider_id)
        now = time.monotonic()
        if cached and now - cached[0] < MODEL_CACHE_SECONDS:
            return cached[1]
        try:
            models = await call_with_credentials(
                provider.list_models,
                config,
                key=provider_key(provider, config, required=False),
                base_url=provider_base_url(provider, config),
            )
        except Exception as exc:  # a provider that cannot list models offers none for now
            log.warning(
                "provider_models_failed",
                provider=provider.provider_id,
                error=f"{type(exc).__name__}: {exc}",
            )
            models = []
        self._models[provider.provider_id] = (now, models)
        return models

    async def entries(
        self, *, include_disabled: bool = False, only: Collection[str] | None = None
    ) -> list[CatalogEntry]:
        """Every model of every provider on, as offered now (sorted by provider and name).
        ``only``: just the models with these ids (a generation builds the entries it uses, not
        the hundreds a few providers list)."""
        app = self.app
        overrides, global_markup = await self._admin_overrides()
        entries: list[CatalogEntry] = []
        for plugin, provider in app[PLUGINS].registries.providers.values():
            config = await app[PLUGIN_SETTINGS].config(plugin)
            missing_key = _key_missing(provider, config)
            for model in await self._provider_models(provider, config):
                if only is not None and model.model_id not in only:
                    continue
                override = overrides.get(model.model_id)
                entry = self._entry(
                    model, provider, plugin, config, override, global_markup, missing_key
                )
                if entry.enabled or include_disabled:
                    entries.append(entry)
        entries.sort(key=lambda e: (e.provider.name.lower(), e.model.name.lower()))
        return entries

    def _entry(
        self,
        model: Model,
        provider: Provider,
        plugin: str,
        config: Any,
        override: ModelSetting | None,
        global_markup: float,
        missing_key: bool,
    ) -> CatalogEntry:
        base = model.pricing
        if override is not None:
            base = replace(
                base,
                **{
                    name: getattr(override, name)
                    for name in PRICE_FIELDS
                    if getattr(override, name) is not None
                },
            )
        markup = (
            override.markup_percent
            if override and override.markup_percent is not None
            else global_markup
        )
        factor = 1 + markup / 100
        pricing = Pricing(*(getattr(base, name) * factor for name in PRICE_FIELDS))
        status: Status = "ok"
        if missing_key:
            status = "needs_key"
        elif self.breaker.is_open(provider.provider_id):
            status = "unavailable"
        return CatalogEntry(
            model=model,
            provider=provider,
            plugin=plugin,
            config=config,
            pricing=pricing,
            base_pricing=base,
            markup_percent=markup,
            enabled=override.enabled if override is not None else True,
            status=status,
            has_override=override is not None,
        )

    async def get(self, model_id: str, *, include_disabled: bool = False) -> CatalogEntry:
        for entry in await self.entries(include_disabled=include_disabled):
            if entry.id == model_id:
                return entry
        raise NotFound(f"No model {model_id!r} is available.", code="unknown_model")

    async def resolve_for_use(self, model_ids: list[str]) -> list[CatalogEntry]:
        """Models a user asked for, each usable now; ``Invalid`` names the ones that are not."""
        entries = {e.id: e for e in await self.entries(only=set(model_ids))}
        problems: dict[str, str] = {}
        resolved = []
        for index, model_id in enumerate(model_ids):
            entry = entries.get(model_id)
            if entry is None:
                problems[f"models.{index}"] = f"unknown or disabled model {model_id!r}"
            elif entry.status == "needs_key":
                problems[f"models.{index}"] = (
                    f"{entry.provider.name} needs an API key; an admin can set it in the "
                    "Plugins console"
                )
            elif entry.status == "unavailable":
                problems[f"models.{index}"] = (
                    f"{entry.provider.name} is failing right now; try again shortly"
                )
            else:
                resolved.append(entry)
        if problems:
            raise Invalid("Some models cannot be used.", fields=problems)
        return resolved

    async def check(self, model_id: str) -> dict[str, Any]:
        """The console's "Test connection": asks the provider, reports the outcome and timing."""
        entry = await self.get(model_id, include_disabled=True)
        started = time.perf_counter()
        try:
            if _key_missing(entry.provider, entry.config):
                raise NeedsKey(f"{entry.provider.name} has no API key set.")
            result = await call_with_credentials(
                entry.provider.check,
                entry.config,
                key=provider_key(entry.provider, entry.config),
                base_url=provider_base_url(entry.provider, entry.config),
            )
            ok = True
            self.breaker.record_success(entry.provider.provider_id)
        except ProviderError as exc:
            ok, result = False, exc.message
        except Exception as exc:  # a plugin bug must not break the console
            ok = False
            result = ProviderUnavailable(f"{type(exc).__name__} while checking").message
        latency = round((time.perf_counter() - started) * 1000, 1)
        return {
            "model": model_id,
            "provider": entry.provider.provider_id,
            "ok": ok,
            "latency_ms": latency,
            "result": result,
        }
