"""Smart assistance's JSON API: model recommendations for a prompt, tags and a summary suggested
for a note (and the ones accepted), and the switches for suggestions."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes import audit
from multinotes.app_settings import get_setting, set_setting
from multinotes.assist import cheap, notes, recommend
from multinotes.assist.schemas import (
    AdminAssistIn,
    AdminAssistOut,
    DetailsIn,
    DetailsOut,
    PreferencesIn,
    PreferencesOut,
    RecommendationQuery,
    RecommendationsOut,
    SuggestionOut,
)
from multinotes.chat.context import SUMMARISER_SETTING
from multinotes.errors import Invalid, NotFound
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_admin, require_user, require_verified
from multinotes.keys import CATALOG, DB

routes = web.RouteTableDef()
TAGS = ["assist"]


@routes.get("/api/models/recommendations", name="api_model_recommendations")
@endpoint(access="user", query=RecommendationQuery, response=RecommendationsOut, tags=["models"])
async def model_recommendations(request: web.Request, query: RecommendationQuery) -> dict[str, Any]:
    """Models suggested for a prompt, best first, each with its reasons: what it can do (image
    prompts get image models, code prompts models strong at code), its price, your ratings of
    its answers, the leaderboard in the prompt's category, and its availability and latency
    over the last 7 days. Changes nothing."""
    actor = require_user(request)
    return await recommend.recommend(
        request.app, actor.user_id, query.prompt, query.category, query.limit
    )


def _id(request: web.Request) -> str:
    return request.match_info["id"]


@routes.get("/api/documents/{id}/suggestion", name="api_note_suggestion")
@endpoint(access="user", response=SuggestionOut, tags=TAGS, errors=[404])
async def get_suggestion(request: web.Request) -> dict[str, Any]:
    """The latest suggested tags and summary for one of your notes (`status` none when there
    is none; pending while a model works on it)."""
    actor = require_user(request)
    return await notes.get_suggestion(request.app[DB], actor.user_id, _id(request))


@routes.post("/api/documents/{id}/suggestion", name="api_note_suggest")
@endpoint(access="user", response=SuggestionOut, status=202, tags=TAGS, errors=[402, 404, 409])
async def suggest(request: web.Request) -> dict[str, Any]:
    """Ask a cheap model for tags and a one-line summary of one of your notes. It runs in the
    background (poll GET .../suggestion) and is charged to your wallet like an answer; the note
    itself is not changed until you accept (PUT .../details). 409 `suggestions_off` or
    `no_model`, 402 when your credits cannot cover it: nothing is queued or charged."""
    actor = require_verified(request)
    return await notes.request(request.app, actor.user_id, _id(request))


@routes.delete("/api/documents/{id}/suggestion", name="api_note_suggestion_dismiss")
@endpoint(access="user", response=SuggestionOut, tags=TAGS, errors=[404])
async def dismiss_suggestion(request: web.Request) -> dict[str, Any]:
    """Dismiss the suggestion (one still running is dropped when it arrives)."""
    actor = require_user(request)
    return await notes.dismiss(request.app[DB], actor.user_id, _id(request))


@routes.get("/api/documents/{id}/details", name="api_note_details")
@endpoint(access="user", response=DetailsOut, tags=TAGS, errors=[404])
async def get_details(request: web.Request) -> dict[str, Any]:
    """One of your notes' tags and one-line summary."""
    actor = require_user(request)
    return await notes.get_details(request.app[DB], actor.user_id, _id(request))


@routes.put("/api/documents/{id}/details", name="api_note_details_save")
@endpoint(access="user", body=DetailsIn, response=DetailsOut, tags=TAGS, errors=[404])
async def save_details(request: web.Request, body: DetailsIn) -> dict[str, Any]:
    """Set a note's tags and summary: a suggestion accepted as it is or edited, or your own.
    Tags are lowercased and deduplicated (at most 10, 40 characters each)."""
    actor = require_user(request)
    return await notes.save_details(
        request.app[DB], actor.user_id, _id(request), body.tags, body.summary
    )


async def _preferences(request: web.Request, user_id: str) -> dict[str, Any]:
    db = request.app[DB]
    return {
        "note_suggestions": await notes.automatic_for(db, user_id),
        "instance_enabled": await notes.instance_enabled(db),
    }


@routes.get("/api/me/assist", name="api_assist_preferences")
@endpoint(access="user", response=PreferencesOut, tags=TAGS)
async def get_preferences(request: web.Request) -> dict[str, Any]:
    """Whether saving an answer as a note suggests tags and a summary for you."""
    actor = require_user(request)
    return await _preferences(request, actor.user_id)


@routes.patch("/api/me/assist", name="api_assist_preferences_update")
@endpoint(access="user", body=PreferencesIn, response=PreferencesOut, tags=TAGS)
async def update_preferences(request: web.Request, body: PreferencesIn) -> dict[str, Any]:
    """Switch automatic suggestions for your saved answers on or off."""
    actor = require_user(request)
    await notes.set_automatic(request.app[DB], actor.user_id, body.note_suggestions)
    return await _preferences(request, actor.user_id)


async def _admin_settings(request: web.Request) -> dict[str, Any]:
    db = request.app[DB]
    return {
        "note_suggestions": await notes.instance_enabled(db),
        "model": await get_setting(db, cheap.MODEL_SETTING) or None,
        "summariser_model": await get_setting(db, SUMMARISER_SETTING) or None,
    }


async def _text_model(request: web.Request, name: str, value: str | None) -> str | None:
    """A model id for a cheap-model setting: a text model of the catalogue, or None (empty:
    the cheapest usable one)."""
    model = (value or "").strip() or None
    if model is not None:
        try:
            entry = await request.app[CATALOG].get(model, include_disabled=True)
        except NotFound:
            raise Invalid("Unknown model.", fields={name: "not in the catalogue"}) from None
        if "text" not in entry.model.capabilities:
            raise Invalid("Not a text model.", fields={name: "must be a text model"})
    return model


@routes.get("/api/admin/assist", name="api_admin_assist")
@endpoint(access="admin", response=AdminAssistOut, tags=["admin"])
async def admin_settings(request: web.Request) -> dict[str, Any]:
    """Note suggestions on this instance and the model that writes them, and the model that
    summarises long conversations (context policy `summarise`)."""
    return await _admin_settings(request)


@routes.patch("/api/admin/assist", name="api_admin_assist_update")
@endpoint(access="admin", body=AdminAssistIn, response=AdminAssistOut, tags=["admin"])
async def update_admin_settings(request: web.Request, body: AdminAssistIn) -> dict[str, Any]:
    """Switch note suggestions on or off for everyone, or name the model that writes them or
    the one that summarises long conversations (a text model of the catalogue; empty for the
    cheapest usable one)."""
    require_admin(request)
    db = request.app[DB]
    chosen = {  # all checked before anything is saved
        name: await _text_model(request, name, getattr(body, name))
        for name in ("model", "summariser_model")
        if name in body.model_fields_set
    }
    if body.note_suggestions is not None:
        await notes.set_instance_enabled(db, body.note_suggestions)
    if "model" in chosen:
        await set_setting(db, cheap.MODEL_SETTING, chosen["model"])
    if "summariser_model" in chosen:
        await set_setting(db, SUMMARISER_SETTING, chosen["summariser_model"])
    await audit.record(
        request.app, request, "assist.updated", details=body.model_dump(exclude_unset=True)
    )
    return await _admin_settings(request)
