"""The prompt library's JSON API, ``/api/templates``: list and search, create, read, change and
delete (the owner only), favourite, and render a template with values. Rendering changes
nothing; ``POST /api/templates/{id}/uses`` records a run (the workspace calls it once the
rendered prompt was sent)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.prompts import service
from multinotes.prompts.schemas import TemplateIn, TemplatePatch, Visibility
from multinotes.prompts.variables import Variable

routes = web.RouteTableDef()
TAGS = ["templates"]


class TemplateOut(BaseModel):
    id: str
    title: str
    description: str
    body: str
    system_prompt: str | None
    variables: list[Variable]
    preferred_models: list[str]
    tags: list[str]
    visibility: Visibility
    shared_with: list[str] = Field(description="Only shown to the owner.")
    owner: str = Field(description="The owner's name.")
    is_owner: bool
    builtin: bool = Field(description="A built-in starter template (admins change it).")
    can_edit: bool = Field(description="Whether you may change and delete it.")
    organisation_id: str | None = Field(
        description="The organisation whose space it is in (its members see and use it); "
        "null: its owner's own library."
    )
    organisation_name: str | None = Field(
        description="That organisation's name (the library's badge); null: not in one."
    )
    favourite: bool
    use_count: int
    recent_uses: int = Field(description=f"Uses in the last {service.TRENDING_DAYS} days.")
    created_at: str
    updated_at: str


class TagCount(BaseModel):
    tag: str
    count: int


class TemplateList(BaseModel):
    templates: list[TemplateOut]
    total: int
    tags: list[TagCount] = Field(description="The most used tags among what you can see.")


class TemplateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(default="", max_length=200, description="Words in title, body or tags.")
    tag: str = Field(default="", max_length=40)
    scope: service.Scope = Field(
        default="all",
        description="Whose templates: `all` (everything you can see), `mine` (yours), "
        "`organisation` (in the space of an organisation you belong to; each names it in "
        "`organisation_name`), `shared` (shared with you), `public`, `favourites`, "
        "`builtin` (the starters).",
    )
    sort: service.Sort = "recent"
    limit: int = Field(default=50, ge=1, le=100)
    offset: int = Field(default=0, ge=0, le=100_000)


class SuggestQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default="", max_length=2000, description="What you are typing.")
    limit: int = Field(default=3, ge=1, le=10)


class Suggestions(BaseModel):
    templates: list[TemplateOut]


class RenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    values: dict[str, str | float | None] = Field(
        default_factory=dict, description="A value per variable name."
    )


class Rendered(BaseModel):
    prompt: str
    system_prompt: str | None
    preferred_models: list[str]


class UseOut(Rendered):
    use_count: int


def template_out(view: service.TemplateView) -> dict[str, Any]:
    t = view.template
    return {
        "id": t.id,
        "title": t.title,
        "description": t.description,
        "body": t.body,
        "system_prompt": t.system_prompt,
        "variables": view.variables,
        "preferred_models": list(t.preferred_models or []),
        "tags": view.tags,
        "visibility": t.visibility,
        "shared_with": view.shared_with if view.is_owner else [],
        "owner": view.owner_name,
        "is_owner": view.is_owner,
        "builtin": view.builtin,
        "can_edit": view.can_edit,
        "organisation_id": t.organisation_id,
        "organisation_name": view.organisation_name,
        "favourite": view.favourite,
        "use_count": view.use_count,
        "recent_uses": view.recent_uses,
        "created_at": t.created_at.isoformat(),
        "updated_at": t.updated_at.isoformat(),
    }


def _fields(body: BaseModel, *, unset: bool) -> dict[str, Any]:
    return body.model_dump(exclude_unset=unset)


@routes.get("/api/templates", name="api_templates")
@endpoint(access="user", query=TemplateQuery, response=TemplateList, tags=TAGS)
async def list_templates(request: web.Request, query: TemplateQuery) -> dict[str, Any]:
    """Prompt templates you can see (yours, shared with you, public), searched and filtered;
    `sort=trending` orders by uses in the last seven days."""
    actor = require_user(request)
    found = await service.list_templates(
        request.app[DB], actor.user_id, **query.model_dump(), admin=actor.is_admin
    )
    return {
        "templates": [template_out(v) for v in found.templates],
        "total": found.total,
        "tags": [{"tag": tag, "count": count} for tag, count in found.tags],
    }


@routes.get("/api/templates/suggestions", name="api_template_suggestions")
@endpoint(access="user", query=SuggestQuery, response=Suggestions, tags=TAGS)
async def suggest_templates(request: web.Request, query: SuggestQuery) -> dict[str, Any]:
    """Templates that fit a prompt being written (the composer's suggestions): those whose
    title, description or tags hold its words, best match first; none for an empty text."""
    actor = require_user(request)
    found = await service.suggest(
        request.app[DB], actor.user_id, query.text, limit=query.limit, admin=actor.is_admin
    )
    return {"templates": [template_out(v) for v in found]}


@routes.post("/api/templates", name="api_templates_create")
@endpoint(access="user", body=TemplateIn, response=TemplateOut, status=201, tags=TAGS)
async def create_template(request: web.Request, body: TemplateIn) -> dict[str, Any]:
    """Create a template. Every `{{name}}` in the body and system prompt must be a declared
    variable (422 `unknown_variable`); `shared_with` must name existing accounts."""
    actor = require_user(request)
    db = request.app[DB]
    template_id = await service.create(db, actor.user_id, _fields(body, unset=False))
    view = await service.get(db, actor.user_id, template_id, admin=actor.is_admin)
    return template_out(view)


@routes.get("/api/templates/{id}", name="api_template")
@endpoint(access="user", response=TemplateOut, tags=TAGS, errors=[404])
async def get_template(request: web.Request) -> dict[str, Any]:
    """One template you can see, with its usage counts."""
    actor = require_user(request)
    view = await service.get(
        request.app[DB], actor.user_id, request.match_info["id"], admin=actor.is_admin
    )
    return template_out(view)


@routes.patch("/api/templates/{id}", name="api_template_update")
@endpoint(access="user", body=TemplatePatch, response=TemplateOut, tags=TAGS, errors=[403, 404])
async def update_template(request: web.Request, body: TemplatePatch) -> dict[str, Any]:
    """Change your template (403 `not_owner` for one shared with you). Admins change the
    built-in starters, which stay public."""
    actor = require_user(request)
    db, template_id = request.app[DB], request.match_info["id"]
    await service.update(
        db, actor.user_id, template_id, _fields(body, unset=True), admin=actor.is_admin
    )
    view = await service.get(db, actor.user_id, template_id, admin=actor.is_admin)
    return template_out(view)


@routes.delete("/api/templates/{id}", name="api_template_delete")
@endpoint(access="user", status=204, tags=TAGS, errors=[403, 404])
async def delete_template(request: web.Request) -> None:
    """Delete your template (with its favourites and usage counts); admins delete a built-in
    starter for good (it is not seeded again)."""
    actor = require_user(request)
    await service.remove(
        request.app[DB], actor.user_id, request.match_info["id"], admin=actor.is_admin
    )


@routes.put("/api/templates/{id}/favourite", name="api_template_favourite")
@endpoint(access="user", response=TemplateOut, tags=TAGS, errors=[404])
async def favourite(request: web.Request) -> dict[str, Any]:
    """Star a template you can see."""
    actor = require_user(request)
    db, template_id = request.app[DB], request.match_info["id"]
    await service.set_favourite(db, actor.user_id, template_id, True)
    view = await service.get(db, actor.user_id, template_id, admin=actor.is_admin)
    return template_out(view)


@routes.delete("/api/templates/{id}/favourite", name="api_template_unfavourite")
@endpoint(access="user", response=TemplateOut, tags=TAGS, errors=[404])
async def unfavourite(request: web.Request) -> dict[str, Any]:
    """Unstar a template."""
    actor = require_user(request)
    db, template_id = request.app[DB], request.match_info["id"]
    await service.set_favourite(db, actor.user_id, template_id, False)
    view = await service.get(db, actor.user_id, template_id, admin=actor.is_admin)
    return template_out(view)


@routes.post("/api/templates/{id}/render", name="api_template_render")
@endpoint(access="user", body=RenderIn, response=Rendered, tags=TAGS, errors=[404])
async def render_template(request: web.Request, body: RenderIn) -> dict[str, Any]:
    """The prompt (and system prompt) with your values put in; records nothing. A missing
    required value or one of the wrong type is a 422 whose field is `values.<name>`."""
    actor = require_user(request)
    view = await service.get(request.app[DB], actor.user_id, request.match_info["id"])
    prompt, system = service.render(view, body.values)
    return {
        "prompt": prompt,
        "system_prompt": system,
        "preferred_models": list(view.template.preferred_models or []),
    }


@routes.post("/api/templates/{id}/uses", name="api_template_use")
@endpoint(access="user", body=RenderIn, response=UseOut, status=201, tags=TAGS, errors=[404])
async def use_template(request: web.Request, body: RenderIn) -> dict[str, Any]:
    """Record a run of the template with these values (they must render: a use is counted
    only for a prompt that could be sent); returns the rendered prompt and the new count."""
    actor = require_user(request)
    db, template_id = request.app[DB], request.match_info["id"]
    view = await service.get(db, actor.user_id, template_id)
    prompt, system = service.render(view, body.values)
    await service.record_use(db, actor.user_id, template_id)
    view = await service.get(db, actor.user_id, template_id)
    return {
        "prompt": prompt,
        "system_prompt": system,
        "preferred_models": list(view.template.preferred_models or []),
        "use_count": view.use_count,
    }
