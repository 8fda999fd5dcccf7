"""The model catalog for users, and its admin side: per-model switches, prices, markup, and a
connection test."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import audit, catalog_admin
from multinotes.app_settings import set_setting
from multinotes.assist.stats import NO_TRAFFIC, model_stats
from multinotes.catalog_admin import ModelPatch, PricingSettings
from multinotes.chat.service import favourite_models, model_ratings, set_favourite
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_admin, require_user
from multinotes.keys import CATALOG, DB

routes = web.RouteTableDef()


class PricingOut(BaseModel):
    input_per_million: float
    output_per_million: float
    per_image: float
    per_audio_minute: float


class RatingOut(BaseModel):
    average: float | None
    count: int


class ModelOut(BaseModel):
    id: str
    provider: str
    provider_name: str
    name: str
    label: str | None
    description: str
    capabilities: list[str]
    context_window: int
    max_output: int
    pricing: PricingOut = Field(description="Credits (1 credit = US$0.00001), markup included.")
    available: bool
    status: str = Field(description="ok, needs_key (no API key set) or unavailable (failing).")
    rating: RatingOut


class ModelStatsOut(BaseModel):
    requests: int = Field(description="Finished or failed generations in the last 7 days.")
    failures: int
    availability: float | None = Field(description="Share that did not fail; null: no traffic.")
    p50_latency_ms: float | None = Field(description="Median first-token latency.")
    p50_duration_ms: float | None = Field(description="Median time for a whole answer.")


class CatalogueModelOut(ModelOut):
    stats: ModelStatsOut = Field(description="Measured from real traffic over the last 7 days.")


class AdminModelOut(ModelOut):
    enabled: bool
    base_pricing: PricingOut
    markup_percent: float
    plugin: str


class ModelTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)


class ModelTestOut(BaseModel):
    model: str
    provider: str
    ok: bool
    latency_ms: float
    result: str


class PricingSettingsOut(BaseModel):
    markup_percent: float
    trial_credits: int
    low_balance_credits: int


@routes.get("/api/models", name="api_models")
@endpoint(access="user", response=list[CatalogueModelOut], tags=["models"])
async def list_models(request: web.Request) -> list[dict[str, Any]]:
    """Models you can choose: capabilities, prices in credits, availability and ratings, and
    `stats` from real traffic over the last 7 days (median first-token latency and duration,
    the share of requests that did not fail)."""
    ratings = await model_ratings(request.app[DB])
    entries = await request.app[CATALOG].entries()
    stats = await model_stats(request.app, [e.id for e in entries])
    return [
        {**e.public(ratings.get(e.id)), "stats": stats.get(e.id, NO_TRAFFIC).out()} for e in entries
    ]


class FavouriteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200, description="A model id of the catalog.")
    favourite: bool = Field(default=True, description="false removes the star.")


class FavouritesOut(BaseModel):
    models: list[str] = Field(description="Model ids, in the order they were starred.")


@routes.get("/api/me/model-favourites", name="api_model_favourites")
@endpoint(access="user", response=FavouritesOut, tags=["models"])
async def list_favourites(request: web.Request) -> dict[str, Any]:
    """The models you starred; the model picker lists them first."""
    actor = require_user(request)
    return {"models": await favourite_models(request.app[DB], actor.user_id)}


@routes.post("/api/me/model-favourites", name="api_model_favourite_set")
@endpoint(access="user", body=FavouriteIn, response=FavouritesOut, tags=["models"], errors=[404])
async def set_model_favourite(request: web.Request, body: FavouriteIn) -> dict[str, Any]:
    """Star (or with `favourite: false` unstar) a model of the catalog."""
    actor = require_user(request)
    if body.favourite:  # a star names a real model; unstarring one that is gone is fine
        await request.app[CATALOG].get(body.model, include_disabled=True)
    await set_favourite(request.app[DB], actor.user_id, body.model, body.favourite)
    return {"models": await favourite_models(request.app[DB], actor.user_id)}


@routes.get("/api/admin/models", name="api_admin_models")
@endpoint(access="admin", response=list[AdminModelOut], tags=["admin"])
async def admin_models(request: web.Request) -> list[dict[str, Any]]:
    """Every model of every enabled provider, including ones switched off, with overrides."""
    return await catalog_admin.admin_models(request.app)


@routes.post("/api/admin/models/test", name="api_admin_models_test")
@endpoint(access="admin", body=ModelTestIn, response=ModelTestOut, tags=["admin"], errors=[404])
async def test_model(request: web.Request, body: ModelTestIn) -> dict[str, Any]:
    """Test the connection behind a model: asks its provider and reports result and latency."""
    return await request.app[CATALOG].check(body.model)


@routes.patch(r"/api/admin/models/{id:.+}", name="api_admin_model_update")
@endpoint(access="admin", body=ModelPatch, response=AdminModelOut, tags=["admin"], errors=[404])
async def update_model(request: web.Request, body: ModelPatch) -> dict[str, Any]:
    """Switch one model on or off, override its prices, or set its own markup."""
    require_admin(request)
    model_id = request.match_info["id"]
    await catalog_admin.apply_model_patch(request.app, model_id, body)
    await audit.record(
        request.app,
        request,
        "model.updated",
        target_type="model",
        target_id=model_id,
        details=body.model_dump(mode="json", exclude_unset=True),
    )
    return next(m for m in await catalog_admin.admin_models(request.app) if m["id"] == model_id)


@routes.get("/api/admin/pricing", name="api_admin_pricing")
@endpoint(access="admin", response=PricingSettingsOut, tags=["admin"])
async def get_pricing(request: web.Request) -> dict[str, Any]:
    """Global markup, free trial credits for new users, and the low-balance threshold."""
    return await catalog_admin.pricing_settings(request.app)


@routes.patch("/api/admin/pricing", name="api_admin_pricing_update")
@endpoint(access="admin", body=PricingSettings, response=PricingSettingsOut, tags=["admin"])
async def update_pricing(request: web.Request, body: PricingSettings) -> dict[str, Any]:
    """Change the global markup, the trial credits or the low-balance threshold."""
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is not None:
            await set_setting(request.app[DB], catalog_admin.SETTING_KEYS[name], value)
    request.app[CATALOG].invalidate()
    await audit.record(
        request.app, request, "pricing.updated", details=body.model_dump(exclude_unset=True)
    )
    return await catalog_admin.pricing_settings(request.app)
