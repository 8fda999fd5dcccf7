"""The prompt library's pages: ``/prompts`` (search, tags, favourites, trending; works without
JavaScript), the create and edit form with its variables editor, and two partials the workspace
loads with htmx: the template picker (``/prompts/picker``) and a template's variables form
(``/prompts/{id}/fill``), whose values ``prompt-picker.js`` renders into the composer."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from multinotes.errors import AppError, Forbidden, Invalid
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.prompts import service
from multinotes.prompts import variables as vars_
from multinotes.prompts.schemas import TemplateIn

routes = web.RouteTableDef()

SCOPES = {
    "all": "All",
    "mine": "Mine",
    "organisation": "My organisations'",
    "favourites": "Favourites",
    "shared": "Shared with me",
    "public": "Public",
    "builtin": "Built-in starters",
}
SORTS = {
    "recent": "Recently changed",
    "trending": "Trending",
    "popular": "Most used",
    "title": "Title",
}
#: Blank rows the variables editor offers below the declared ones (more with "Add a variable").
BLANK_ROWS = 2


def _choice(value: str, allowed: dict[str, str], default: str) -> str:
    return value if value in allowed else default


@routes.get("/prompts", name="prompts")
@page(access="user")
async def library(request: web.Request) -> web.StreamResponse:
    """The library: a GET search form, tag links, the templates with their counts."""
    actor = require_user(request)
    q = request.query.get("q", "").strip()[:200]
    tag = request.query.get("tag", "").strip()[:40]
    scope = _choice(request.query.get("scope", ""), SCOPES, "all")
    sort = _choice(request.query.get("sort", ""), SORTS, "recent")
    found = await service.list_templates(
        request.app[DB],
        actor.user_id,
        q=q,
        tag=tag,
        scope=cast(service.Scope, scope),
        sort=cast(service.Sort, sort),
        limit=100,
        admin=actor.is_admin,
    )
    trending = await service.list_templates(
        request.app[DB], actor.user_id, sort="trending", limit=5
    )
    params = {"q": q, "tag": tag, "scope": scope, "sort": sort}
    return render(
        request,
        "prompts/index.html",
        {
            "nav": "prompts",
            "listing": found,
            "trending": [v for v in trending.templates if v.recent_uses],
            "params": params,
            "scopes": SCOPES,
            "sorts": SORTS,
            "url": lambda **extra: "/prompts?" + urlencode({**params, **extra}),
        },
    )


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


def form_fields(form: MultiDictProxy[Any]) -> dict[str, Any]:
    """The template the form describes. Variables come from rows ``var-<n>-<field>``; a row
    without a name is ignored, and a ``{{name}}`` in the body that no row declares becomes a
    required text variable (so a quick template needs no editing of variables at all)."""
    text = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    rows: list[dict[str, Any]] = []
    for n in range(vars_.MAX_VARIABLES + BLANK_ROWS):
        name = text.get(f"var-{n}-name", "").strip()
        if not name:
            continue
        kind = text.get(f"var-{n}-type", "text")
        default: str | None = text.get(f"var-{n}-default", "").strip() or None
        rows.append(
            {
                "name": name,
                "label": text.get(f"var-{n}-label", "").strip(),
                "type": kind,
                "required": f"var-{n}-required" in text,
                "default": default,
                "options": _split(text.get(f"var-{n}-options", "")) if kind == "choice" else [],
            }
        )
    body = text.get("body", "")
    system = text.get("system_prompt", "").strip() or None
    declared = {r["name"] for r in rows}
    for name in vars_.placeholders(body + "\n" + (system or "")):
        if name not in declared:
            rows.append({"name": name, "type": "text", "required": True})
            declared.add(name)
    return {
        "title": text.get("title", "").strip(),
        "description": text.get("description", "").strip(),
        "body": body,
        "system_prompt": system,
        "variables": rows,
        "preferred_models": _split(text.get("preferred_models", "")),
        "tags": _split(text.get("tags", "")),
        "visibility": text.get("visibility", "private"),
        "shared_with": _split(text.get("shared_with", "")),
    }


def _form_page(
    request: web.Request,
    values: dict[str, Any],
    *,
    template_id: str | None,
    error: AppError | None,
    builtin: bool = False,
) -> web.StreamResponse:
    rows = list(values.get("variables") or [])
    rows += [{"name": "", "type": "text", "required": True}] * BLANK_ROWS
    return render(
        request,
        "prompts/form.html",
        {
            "nav": "prompts",
            "values": values,
            "rows": rows,
            "template_id": template_id,
            "builtin": builtin,
            "error": error,
            "fields": error.fields if error else {},
        },
        status=422 if error else 200,
    )


@routes.get("/prompts/new", name="prompt_new")
@page(access="user")
async def new_form(request: web.Request) -> web.StreamResponse:
    require_user(request)
    empty = {"title": "", "body": "", "visibility": "private", "variables": []}
    return _form_page(request, empty, template_id=None, error=None)


@routes.post("/prompts/new", name="prompt_create")
@page(access="user")
async def create(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    values = form_fields(await request.post())
    try:
        data = validate(TemplateIn, values).model_dump()
        template_id = await service.create(request.app[DB], actor.user_id, data)
    except Invalid as exc:
        return _form_page(request, values, template_id=None, error=exc)
    return redirect(f"/prompts?{urlencode({'scope': 'mine'})}#t-{template_id}", "Template saved.")


@routes.get("/prompts/{id}/edit", name="prompt_edit")
@page(access="user")
async def edit_form(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    view = await service.get(
        request.app[DB], actor.user_id, request.match_info["id"], admin=actor.is_admin
    )
    if not view.can_edit:
        return redirect("/prompts", "Only the template's owner can change it.", "error")
    t = view.template
    values = {
        "title": t.title,
        "description": t.description,
        "body": t.body,
        "system_prompt": t.system_prompt or "",
        "variables": [v.model_dump() for v in view.variables],
        "preferred_models": list(t.preferred_models or []),
        "tags": view.tags,
        "visibility": t.visibility,
        "shared_with": view.shared_with,
    }
    return _form_page(request, values, template_id=t.id, error=None, builtin=view.builtin)


@routes.post("/prompts/{id}/edit", name="prompt_update")
@page(access="user")
async def update(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    template_id = request.match_info["id"]
    # Whose it is before what the form says: someone else's template is a 404 (or a 403).
    view = await service.get(request.app[DB], actor.user_id, template_id, admin=actor.is_admin)
    if not view.can_edit:
        raise Forbidden("Only the template's owner can change it.", code="not_owner")
    values = form_fields(await request.post())
    try:
        data = validate(TemplateIn, values).model_dump()
        await service.update(
            request.app[DB], actor.user_id, template_id, data, admin=actor.is_admin
        )
    except Invalid as exc:
        return _form_page(request, values, template_id=template_id, error=exc, builtin=view.builtin)
    return redirect(f"/prompts#t-{template_id}", "Template saved.")


@routes.post("/prompts/{id}/delete", name="prompt_delete")
@page(access="user")
async def delete(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    await service.remove(
        request.app[DB], actor.user_id, request.match_info["id"], admin=actor.is_admin
    )
    return redirect("/prompts", "Template deleted.")


@routes.post("/prompts/{id}/favourite", name="prompt_favourite")
@page(access="user")
async def favourite(request: web.Request) -> web.StreamResponse:
    """Star or unstar (``on=1`` / ``on=0``), then back to the list it was done from."""
    actor = require_user(request)
    form = await request.post()
    on = str(form.get("on", "1")) == "1"
    template_id = request.match_info["id"]
    await service.set_favourite(request.app[DB], actor.user_id, template_id, on)
    back = str(form.get("back", "/prompts"))
    if not back.startswith("/prompts") or back.startswith("//"):
        back = "/prompts"
    return redirect(f"{back}#t-{template_id}", "Starred." if on else "Unstarred.")


@routes.get("/prompts/picker", name="prompt_picker")
@page(access="user")
async def picker(request: web.Request) -> web.StreamResponse:
    """The workspace's template picker (a partial): favourites first, then by use."""
    actor = require_user(request)
    q = request.query.get("q", "").strip()[:200]
    found = await service.list_templates(
        request.app[DB], actor.user_id, q=q, sort="popular", limit=30
    )
    templates = sorted(found.templates, key=lambda v: not v.favourite)
    return render(request, "prompts/_picker.html", {"templates": templates, "q": q})


@routes.get("/prompts/{id}/fill", name="prompt_fill")
@page(access="user")
async def fill_form(request: web.Request) -> web.StreamResponse:
    """A template's variables as a form (a partial for the workspace)."""
    actor = require_user(request)
    view = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    return render(request, "prompts/_fill.html", {"view": view})
