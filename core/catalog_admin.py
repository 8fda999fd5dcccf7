"""An admin's changes to the model catalog: per-model switches, price overrides and markup,
and the global pricing settings. The admin API and the console pages both call these, with the
same patch models."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.app_settings import get_settings
from multinotes.catalog import PRICE_FIELDS, ModelSetting
from multinotes.chat.service import model_ratings
from multinotes.keys import CATALOG, DB


class PriceOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_million: float | None = Field(default=None, ge=0)
    output_per_million: float | None = Field(default=None, ge=0)
    per_image: float | None = Field(default=None, ge=0)
    per_audio_minute: float | None = Field(default=None, ge=0)


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    pricing: PriceOverride | None = Field(
        default=None, description="Prices replacing the provider's; null fields keep theirs."
    )
    markup_percent: float | None = Field(default=None, ge=-100, le=1000)
    reset: bool = Field(default=False, description="Drop every override of this model first.")


class PricingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    markup_percent: float | None = Field(default=None, ge=-100, le=1000)
    trial_credits: int | None = Field(default=None, ge=0, le=10**12)
    low_balance_credits: int | None = Field(default=None, ge=0, le=10**12)


SETTING_KEYS = {
    "markup_percent": "pricing.markup_percent",
    "trial_credits": "wallet.trial_credits",
    "low_balance_credits": "wallet.low_balance_credits",
}


async def admin_models(app: web.Application) -> list[dict[str, Any]]:
    """Every model of every enabled provider, switched off ones included, with overrides."""
    ratings = await model_ratings(app[DB])
    out = []
    for entry in await app[CATALOG].entries(include_disabled=True):
        item = entry.public(ratings.get(entry.id))
        item.update(
            enabled=entry.enabled,
            markup_percent=entry.markup_percent,
            plugin=entry.plugin,
            base_pricing={n: getattr(entry.base_pricing, n) for n in PRICE_FIELDS},
        )
        out.append(item)
    return out


async def apply_model_patch(app: web.Application, model_id: str, body: ModelPatch) -> None:
    """Store an admin's change to one model (the API and the console page both use this)."""
    await app[CATALOG].get(model_id, include_disabled=True)  # 404 if unknown
    async with app[DB].transaction() as session:
        row = await session.get(ModelSetting, model_id)
        if row is None:
            row = ModelSetting(model_id=model_id, enabled=True)
            session.add(row)
        if body.reset:
            row.enabled = True
            row.markup_percent = None
            for name in PRICE_FIELDS:
                setattr(row, name, None)
        if body.enabled is not None:
            row.enabled = body.enabled
        if "markup_percent" in body.model_fields_set:
            row.markup_percent = body.markup_percent
        if body.pricing is not None:
            for name in body.pricing.model_fields_set:
                setattr(row, name, getattr(body.pricing, name))
    app[CATALOG].invalidate()


async def pricing_settings(app: web.Application) -> dict[str, Any]:
    """The global markup, trial credits and low-balance threshold."""
    values = await get_settings(app[DB], list(SETTING_KEYS.values()))
    return {name: values[key] for name, key in SETTING_KEYS.items()}
