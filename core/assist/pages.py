"""Smart assistance's pages: the model catalogue with each model's measured latency and
availability (``/models``), the composer's "Suggested models" (an htmx fragment), and the tags
and summary panel of a note (a fragment its page loads; its forms work without JavaScript).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes.assist import notes, recommend
from multinotes.assist.stats import NO_TRAFFIC, model_stats
from multinotes.chat.service import model_ratings
from multinotes.errors import AppError
from multinotes.http.endpoint import page
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user, require_verified
from multinotes.keys import CATALOG, DB

routes = web.RouteTableDef()
SUGGESTED = 3


def _is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


@routes.get("/models", name="models_catalogue")
@page(access="user")
async def models_page(request: web.Request) -> web.Response:
    """Every model you can choose, with its prices and how it did over the last 7 days."""
    require_user(request)
    entries = await request.app[CATALOG].entries()
    stats = await model_stats(request.app, [e.id for e in entries])
    ratings = await model_ratings(request.app[DB])
    rows = []
    for entry in entries:
        measured = stats.get(entry.id, NO_TRAFFIC)
        availability = measured.availability
        rows.append(
            {
                **entry.public(ratings.get(entry.id)),
                "latency": _ms(measured.p50_latency_ms),
                "duration": _ms(measured.p50_duration_ms),
                "availability": "—" if availability is None else f"{availability * 100:.1f}%",
                "requests": measured.requests,
            }
        )
    return render(request, "assist/models.html", {"nav": "models", "models": rows})


@routes.get("/chat/model-suggestions", name="chat_model_suggestions")
@page(access="user", rate="api")
async def model_suggestions(request: web.Request) -> web.Response:
    """The composer's "Suggested models" for the prompt being written (``content``)."""
    actor = require_user(request)
    prompt = " ".join(request.query.get("content", "").split())[:2000]
    found: dict[str, Any] = {"models": [], "category": None}
    if len(prompt) >= 8:  # not for a word or two
        found = await recommend.recommend(request.app, actor.user_id, prompt, None, SUGGESTED)
    return render(request, "assist/_model_suggestions.html", found)


# -- a note's tags and summary ------------------------------------------------------------------


def _note_id(request: web.Request) -> str:
    return request.match_info["id"]


async def _panel(
    request: web.Request, user_id: str, note_id: str, *, error: str | None = None, status: int = 200
) -> web.Response:
    db = request.app[DB]
    details = await notes.get_details(db, user_id, note_id)  # 404 for anyone else's note
    suggestion = await notes.get_suggestion(db, user_id, note_id)
    shown = suggestion if suggestion["status"] == "ready" else details
    names = {e.id: e.model.name for e in await request.app[CATALOG].entries(include_disabled=True)}
    return render(
        request,
        "assist/_note_assist.html",
        {
            "note_id": note_id,
            "details": details,
            "suggestion": suggestion,
            "model_name": names.get(suggestion["model"] or "", suggestion["model"]),
            "form": {"tags": ", ".join(shown["tags"]), "summary": shown["summary"]},
            "enabled": await notes.instance_enabled(db),
            "automatic": await notes.automatic_for(db, user_id),
            "error": error,
        },
        status=status,
    )


async def _after(
    request: web.Request, user_id: str, note_id: str, message: str, error: AppError | None = None
) -> web.Response:
    """The panel again for htmx; otherwise back to the note with a message."""
    if _is_htmx(request):
        return await _panel(request, user_id, note_id, error=error.message if error else None)
    return redirect(
        f"/notes/{note_id}", error.message if error else message, "error" if error else "success"
    )


@routes.get("/notes/{id}/assist", name="note_assist")
@page(access="user")
async def note_assist(request: web.Request) -> web.Response:
    actor = require_user(request)
    return await _panel(request, actor.user_id, _note_id(request))


@routes.post("/notes/{id}/assist/suggest", name="note_assist_suggest")
@page(access="user", rate="api")
async def note_assist_suggest(request: web.Request) -> web.Response:
    actor = require_verified(request)
    note_id = _note_id(request)
    try:
        await notes.request(request.app, actor.user_id, note_id)
    except AppError as exc:
        if exc.status == 404:
            raise
        return await _after(request, actor.user_id, note_id, "", exc)
    return await _after(request, actor.user_id, note_id, "Suggesting tags and a summary…")


@routes.post("/notes/{id}/assist/details", name="note_assist_details")
@page(access="user")
async def note_assist_details(request: web.Request) -> web.Response:
    actor = require_user(request)
    note_id = _note_id(request)
    form = await request.post()
    tags = [t for t in form_field(form, "tags").split(",") if t.strip()]
    try:
        await notes.save_details(
            request.app[DB], actor.user_id, note_id, tags, form_field(form, "summary")
        )
    except AppError as exc:
        if exc.status == 404:
            raise
        return await _after(request, actor.user_id, note_id, "", exc)
    return await _after(request, actor.user_id, note_id, "Tags and summary saved.")


@routes.post("/notes/{id}/assist/dismiss", name="note_assist_dismiss")
@page(access="user")
async def note_assist_dismiss(request: web.Request) -> web.Response:
    actor = require_user(request)
    note_id = _note_id(request)
    await notes.dismiss(request.app[DB], actor.user_id, note_id)
    return await _after(request, actor.user_id, note_id, "Suggestion dismissed.")


@routes.post("/notes/{id}/assist/automatic", name="note_assist_automatic")
@page(access="user")
async def note_assist_automatic(request: web.Request) -> web.Response:
    """Switch automatic suggestions for saved answers (from a note's panel)."""
    actor = require_user(request)
    note_id = _note_id(request)
    await notes.get_details(request.app[DB], actor.user_id, note_id)  # 404 for others' notes
    form = await request.post()
    on = form_field(form, "automatic") == "on"
    await notes.set_automatic(request.app[DB], actor.user_id, on)
    message = "New saved answers get suggestions." if on else "No automatic suggestions."
    return await _after(request, actor.user_id, note_id, message)
