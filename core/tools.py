"""Tools on the home screen: text, image, code, prompt writer, speech, transcription, vision.

A tool is a capability plus the inputs it needs (an image size, a voice, a file). Which models a
tool offers follows from the catalog: every available model with that capability, or the subset
an admin chose. Admins rename, reorder and hide tools; their changes live in the ``tools`` table.

The eight defaults are seeded lazily on first read (and again whenever one is missing, so a
wiped table heals itself); concurrent first reads race on the primary key and the loser simply
re-reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Boolean, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.catalog import CatalogEntry
from multinotes.db import Base, Database, UTCDateTime, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.keys import CATALOG, DB
from multinotes.providers import ImageOptions, SpeechOptions


class Tool(Base):
    __tablename__ = "tools"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    description: Mapped[str] = mapped_column(String(300), default="")
    capability: Mapped[str] = mapped_column(String(40))
    position: Mapped[int] = mapped_column(Integer, default=0)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    #: None: every available model with the capability; a list: only these (in this order).
    model_ids: Mapped[list[str] | None] = mapped_column(JSON)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


PROMPT_WRITER_SYSTEM = (
    "You are an expert prompt engineer. The user gives you a rough idea of what they want from "
    "an AI model. Rewrite it as one clear, complete prompt they can paste into any model: state "
    "the goal, the audience, the context the model needs, constraints, the format and length of "
    "the answer, and an example when it helps. Keep the user's intent and language; do not "
    "answer the prompt yourself. Reply with the improved prompt only."
)


@dataclass(frozen=True)
class ToolDefault:
    id: str
    name: str
    description: str
    capability: str
    system_prompt: str | None = None


DEFAULT_TOOLS: tuple[ToolDefault, ...] = (
    ToolDefault("text", "Text", "Write, summarise, translate and brainstorm.", "text"),
    ToolDefault("image", "Image", "Create images from a description.", "image_generation"),
    ToolDefault("code", "Code", "Write, explain and fix code.", "code"),
    ToolDefault(
        "prompt_writer",
        "Prompt writer",
        "Turn a rough idea into a strong prompt.",
        "text",
        PROMPT_WRITER_SYSTEM,
    ),
    ToolDefault(
        "text_to_speech", "Text to speech", "Read text aloud in a voice.", "text_to_speech"
    ),
    ToolDefault(
        "speech_to_text", "Speech to text", "Transcribe an audio recording.", "speech_to_text"
    ),
    ToolDefault("image_to_text", "Image to text", "Describe or read an image.", "vision"),
    ToolDefault(
        "video_to_text", "Video to text", "Transcribe and summarise a video.", "file_input"
    ),
)

#: Capabilities whose models take a system prompt (chat models).
SYSTEM_PROMPT_CAPABILITIES = frozenset({"text", "code", "vision", "file_input"})

VOICES = ("alloy", "ash", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer")


def _choices(model: Any, field: str) -> list[str]:
    return [str(v) for v in get_args(model.model_fields[field].annotation)]


def inputs_for(capability: str) -> list[dict[str, Any]]:
    """What the workspace asks for besides the prompt. ``select``/``number`` inputs are options
    sent per model; a ``file`` input is an attachment of the prompt."""
    if capability == "image_generation":
        size = ImageOptions.model_fields["size"].default
        return [
            {
                "name": "size",
                "label": "Size",
                "type": "select",
                "choices": _choices(ImageOptions, "size"),
                "default": size,
            },
            {"name": "n", "label": "Images", "type": "number", "min": 1, "max": 4, "default": 1},
        ]
    if capability == "text_to_speech":
        return [
            {
                "name": "voice",
                "label": "Voice",
                "type": "select",
                "choices": list(VOICES),
                "default": SpeechOptions.model_fields["voice"].default,
            },
            {
                "name": "format",
                "label": "Format",
                "type": "select",
                "choices": _choices(SpeechOptions, "format"),
                "default": SpeechOptions.model_fields["format"].default,
            },
        ]
    accept = {"speech_to_text": "audio/*", "vision": "image/*", "file_input": "video/*"}
    if capability in accept:
        label = {"speech_to_text": "Audio", "vision": "Image", "file_input": "Video"}[capability]
        return [
            {
                "name": "file",
                "label": f"{label} file",
                "type": "file",
                "accept": accept[capability],
                "required": True,
            }
        ]
    return []


async def load_tools(db: Database) -> list[Tool]:
    """Every tool in order, seeding the defaults that are missing."""
    async with db.read() as session:
        rows = list(await session.scalars(select(Tool)))
    missing = [d for d in DEFAULT_TOOLS if d.id not in {row.id for row in rows}]
    if missing:
        start = max((row.position for row in rows), default=-1) + 1
        try:
            async with db.transaction() as session:
                for offset, default in enumerate(missing):
                    session.add(
                        Tool(
                            id=default.id,
                            name=default.name,
                            description=default.description,
                            capability=default.capability,
                            position=start + offset,
                            hidden=False,
                            model_ids=None,
                            system_prompt=default.system_prompt,
                        )
                    )
        except IntegrityError:
            pass  # another request seeded them first
        async with db.read() as session:
            rows = list(await session.scalars(select(Tool)))
    return sorted(rows, key=lambda t: (t.position, t.id))


def offered_models(tool: Tool, entries: list[CatalogEntry]) -> list[CatalogEntry]:
    """The catalog entries a tool offers (available or not), in the admin's order if chosen."""
    capable = [e for e in entries if tool.capability in e.model.capabilities]
    if tool.model_ids is None:
        return capable
    by_id = {e.id: e for e in capable}
    return [by_id[m] for m in tool.model_ids if m in by_id]


def tool_out(tool: Tool, entries: list[CatalogEntry]) -> dict[str, Any]:
    """A tool as users see it: its available models, inputs and system prompt."""
    return {
        "id": tool.id,
        "name": tool.name,
        "description": tool.description,
        "capability": tool.capability,
        "position": tool.position,
        "models": [e.id for e in offered_models(tool, entries) if e.available],
        "inputs": inputs_for(tool.capability),
        "system_prompt": tool.system_prompt,
    }


def admin_tool_out(tool: Tool, entries: list[CatalogEntry]) -> dict[str, Any]:
    capable = [e for e in entries if tool.capability in e.model.capabilities]
    return {
        **tool_out(tool, entries),
        "hidden": tool.hidden,
        "model_ids": tool.model_ids,
        "candidates": [
            {
                "id": e.id,
                "name": e.model.name,
                "provider": e.provider.name,
                "available": e.available,
            }
            for e in capable
        ],
        "accepts_system_prompt": tool.capability in SYSTEM_PROMPT_CAPABILITIES,
        "updated_at": tool.updated_at,
    }


async def visible_tools(app: web.Application) -> list[dict[str, Any]]:
    entries = await app[CATALOG].entries()
    return [tool_out(t, entries) for t in await load_tools(app[DB]) if not t.hidden]


async def admin_tools(app: web.Application) -> list[dict[str, Any]]:
    entries = await app[CATALOG].entries(include_disabled=True)
    return [admin_tool_out(t, entries) for t in await load_tools(app[DB])]


async def admin_tool(app: web.Application, tool_id: str) -> dict[str, Any]:
    for tool in await admin_tools(app):
        if tool["id"] == tool_id:
            return tool
    raise NotFound(f"No tool {tool_id!r}.", code="unknown_tool")


async def update_tool(app: web.Application, tool_id: str, changes: dict[str, Any]) -> None:
    """Apply an admin's changes (already shape-validated). ``position`` moves the tool to that
    place in the order; the others shift. Model ids must name catalog models with the tool's
    capability."""
    db = app[DB]
    tools = await load_tools(db)
    tool = next((t for t in tools if t.id == tool_id), None)
    if tool is None:
        raise NotFound(f"No tool {tool_id!r}.", code="unknown_tool")
    fields: dict[str, str] = {}
    if changes.get("model_ids") is not None:
        entries = {e.id: e for e in await app[CATALOG].entries(include_disabled=True)}
        model_ids: list[str] = changes["model_ids"]
        if not model_ids:
            fields["model_ids"] = (
                "choose at least one model, or null to offer every model that can "
                f"do {tool.capability}"
            )
        if len(set(model_ids)) != len(model_ids):
            fields["model_ids"] = "a model is listed twice"
        for index, model_id in enumerate(model_ids):
            entry = entries.get(model_id)
            if entry is None:
                fields[f"model_ids.{index}"] = f"unknown model {model_id!r}"
            elif tool.capability not in entry.model.capabilities:
                fields[f"model_ids.{index}"] = (
                    f"{entry.model.name} cannot do {tool.capability}, which this tool needs"
                )
    if changes.get("system_prompt") and tool.capability not in SYSTEM_PROMPT_CAPABILITIES:
        fields["system_prompt"] = f"models for {tool.capability} take no system prompt"
    if "name" in changes and not (changes["name"] or "").strip():
        fields["name"] = "a tool needs a name"
    if fields:
        raise Invalid("The tool was not changed.", fields=fields)

    order = [t.id for t in tools]
    if changes.get("position") is not None:
        order.remove(tool_id)
        order.insert(min(int(changes["position"]), len(order)), tool_id)
    async with db.transaction() as session:
        for index, other_id in enumerate(order):
            row = await session.get(Tool, other_id)
            assert row is not None
            if row.position != index:
                row.position = index
            if other_id != tool_id:
                continue
            if changes.get("name") is not None:
                row.name = changes["name"].strip()
            if changes.get("description") is not None:
                row.description = changes["description"].strip()
            if changes.get("hidden") is not None:
                row.hidden = bool(changes["hidden"])
            if "model_ids" in changes:
                row.model_ids = changes["model_ids"]
            if "system_prompt" in changes:
                prompt = (changes["system_prompt"] or "").strip()
                row.system_prompt = prompt or None
            row.updated_at = utcnow()


async def reorder_tools(app: web.Application, ids: list[str]) -> None:
    """Put the tools in exactly this order (every tool once)."""
    db = app[DB]
    current = [t.id for t in await load_tools(db)]
    unknown = [i for i in ids if i not in current]
    missing = [i for i in current if i not in ids]
    problems = []
    if unknown:
        problems.append("unknown: " + ", ".join(unknown))
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if len(set(ids)) != len(ids):
        problems.append("a tool is listed twice")
    if problems:
        raise Invalid("List every tool exactly once.", fields={"ids": "; ".join(problems)})
    async with db.transaction() as session:
        for index, tool_id in enumerate(ids):
            row = await session.get(Tool, tool_id)
            assert row is not None
            if row.position != index:
                row.position = index
                row.updated_at = utcnow()


async def move_tool(app: web.Application, tool_id: str, step: int) -> None:
    """One place up (-1) or down (+1); the ends stay where they are."""
    order = [t.id for t in await load_tools(app[DB])]
    if tool_id not in order:
        raise NotFound(f"No tool {tool_id!r}.", code="unknown_tool")
    index = order.index(tool_id)
    target = index + step
    if 0 <= target < len(order):
        order[index], order[target] = order[target], order[index]
        await reorder_tools(app, order)


class ToolPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=60)
    description: str | None = Field(default=None, max_length=300)
    position: int | None = Field(default=None, ge=0, description="Move to this place (0 first).")
    hidden: bool | None = None
    model_ids: list[str] | None = Field(
        default=None,
        max_length=100,
        description="Models to offer, in order; null offers every model with the capability.",
    )
    system_prompt: str | None = Field(default=None, max_length=20_000)
