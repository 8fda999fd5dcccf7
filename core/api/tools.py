"""Tools on the home screen, for users (what each offers) and admins (rename, reorder, hide,
choose models, system prompt)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from multinotes import tools
from multinotes.http.endpoint import endpoint
from multinotes.tools import ToolPatch

routes = web.RouteTableDef()


class ToolInputOut(BaseModel):
    name: str = Field(description="Option name (size, n, voice, format) or `file`.")
    label: str
    type: Literal["select", "number", "file"]
    choices: list[str] | None = None
    default: str | int | None = None
    min: int | None = None
    max: int | None = None
    accept: str | None = Field(default=None, description="Media types a file input takes.")
    required: bool = False


class ToolOut(BaseModel):
    id: str
    name: str
    description: str
    capability: str
    position: int
    models: list[str] = Field(
        description="Ids of the models this tool offers that are available now, in order."
    )
    inputs: list[ToolInputOut] = Field(
        description="What to ask for besides the prompt: `select`/`number` inputs are per-model "
        "options; a `file` input is an attachment of the prompt."
    )
    system_prompt: str | None = Field(description="Sent as the `system` option, when set.")


class CandidateOut(BaseModel):
    id: str
    name: str
    provider: str
    available: bool


class AdminToolOut(ToolOut):
    hidden: bool
    model_ids: list[str] | None = Field(
        description="The admin's choice; null offers every model with the capability."
    )
    candidates: list[CandidateOut] = Field(description="Every model with the capability.")
    accepts_system_prompt: bool
    updated_at: datetime


class ToolOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(max_length=100, description="Every tool id, in the new order.")


@routes.get("/api/tools", name="api_tools")
@endpoint(access="user", response=list[ToolOut], tags=["tools"])
async def list_tools(request: web.Request) -> list[dict[str, Any]]:
    """The tools on the home screen, in order, each with the models it offers and its inputs."""
    return await tools.visible_tools(request.app)


@routes.get("/api/admin/tools", name="api_admin_tools")
@endpoint(access="admin", response=list[AdminToolOut], tags=["admin"])
async def admin_list_tools(request: web.Request) -> list[dict[str, Any]]:
    """Every tool, hidden ones included, with the admin's choices and candidate models."""
    return await tools.admin_tools(request.app)


@routes.post("/api/admin/tools/order", name="api_admin_tools_order")
@endpoint(access="admin", body=ToolOrder, response=list[AdminToolOut], tags=["admin"])
async def admin_order_tools(request: web.Request, body: ToolOrder) -> list[dict[str, Any]]:
    """Reorder the tools: send every tool id once, in the new order."""
    await tools.reorder_tools(request.app, body.ids)
    return await tools.admin_tools(request.app)


@routes.patch("/api/admin/tools/{id}", name="api_admin_tool_update")
@endpoint(access="admin", body=ToolPatch, response=AdminToolOut, tags=["admin"], errors=[404, 422])
async def admin_update_tool(request: web.Request, body: ToolPatch) -> dict[str, Any]:
    """Rename, describe, move, hide or show a tool, choose its models or its system prompt."""
    tool_id = request.match_info["id"]
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    await tools.update_tool(request.app, tool_id, changes)
    return await tools.admin_tool(request.app, tool_id)
