"""Conversations, multi-model generation over SSE, stop, regenerate, ratings, media."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from multinotes.chat import service as chat
from multinotes.chat.models import SEALED_TOOL, Message, MessageMedia
from multinotes.chat.pipeline import (
    MAX_MODELS,
    cancel_generation,
    decode_attachments,
    follow_answer,
    plan_again,
    plan_generations,
    stream_generations,
)
from multinotes.chat.schemas import ConversationQuery
from multinotes.errors import NotFound
from multinotes.http.endpoint import endpoint, raw
from multinotes.identity.actor import Actor, require_user, require_verified
from multinotes.keys import DB
from multinotes.organisations import service as organisations
from multinotes.organisations import spaces as organisation_spaces
from multinotes.search.tasks import queue_embedding
from multinotes.sharing import access
from multinotes.storage import objects
from multinotes.wallet import service as wallet

routes = web.RouteTableDef()


def _not_sealed(tool: str | None) -> str | None:
    """Blind comparisons' tool is theirs: a chat started from it would vanish from every list."""
    if tool == SEALED_TOOL:
        raise ValueError("reserved for blind comparisons (/api/comparisons)")
    return tool


class ConversationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    tool: str | None = Field(default=None, max_length=40, pattern=r"^[a-z0-9_-]+$")

    _tool = field_validator("tool")(_not_sealed)


class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    pinned: bool | None = Field(default=None, description="Pinned ones head the sidebar.")
    archived: bool | None = Field(
        default=None, description="Archived ones leave the list (see `archived=true`)."
    )
    context_policy: Literal["drop", "summarise"] | None = Field(
        default=None,
        description=(
            "When it outgrows a model's context window: `drop` the oldest turns, or "
            "`summarise` them with a cheap model (charged; the summary is kept and reused)."
        ),
    )

    @model_validator(mode="after")
    def _something(self) -> ConversationPatch:
        if (
            self.title is None
            and self.pinned is None
            and self.archived is None
            and self.context_policy is None
        ):
            raise ValueError("send a title, pinned, archived or context_policy")
        return self


class ConversationOut(BaseModel):
    id: str
    title: str
    tool: str | None
    created_at: str
    updated_at: str
    pinned: bool
    archived: bool
    context_policy: str = Field(description="`drop` or `summarise` (see PATCH).")
    organisation_id: str | None = Field(
        default=None,
        description="The organisation whose space it is in (its members read it; its wallet "
        "pays for prompts in it); null: your own space. Move it with `POST "
        "/api/conversations/{id}/move-space`.",
    )


class ConversationPage(BaseModel):
    conversations: list[ConversationOut]
    next_cursor: str | None


class MessageOut(BaseModel):
    id: str
    parent_id: str | None
    role: str
    content: str
    model: str | None
    status: str
    created_at: str
    html: str | None = Field(default=None, description="Answers as sanitised HTML.")
    generation: dict[str, Any] | None = None
    media: list[dict[str, Any]] = []
    rating: dict[str, Any] | None = None


class ConversationTreeOut(ConversationOut):
    messages: list[MessageOut] = Field(
        description="Every message in creation order; parent_id links them into a tree."
    )


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_type: str = Field(pattern=r"^(image|audio|video)/[a-z0-9.+-]+$|^application/pdf$")
    data: str = Field(description="The file, base64-encoded.")
    name: str | None = Field(default=None, max_length=200)


class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=200_000)
    models: list[str] = Field(min_length=1, max_length=MAX_MODELS)
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per model id: temperature, max_tokens, system, ..."
    )
    parent_id: str | None = Field(
        default=None,
        max_length=32,
        description=(
            "The message this prompt follows (default: the newest message). Give the parent of an "
            "earlier prompt to edit it into a new branch."
        ),
    )
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=8)
    org_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description=(
            "Generate in this organisation's context: its shared wallet pays (within your "
            "monthly limit there). Absent: your own wallet, or, for a conversation in an "
            "organisation's space, that organisation's (naming another one: 409 "
            "`conversation_in_other_space`). 404 when you are not a member."
        ),
    )


class NewChatIn(GenerateIn):
    tool: str | None = Field(
        default=None,
        max_length=40,
        pattern=r"^[a-z0-9_-]+$",
        description="The tool the new conversation is started from.",
    )

    _tool = field_validator("tool")(_not_sealed)


class RegenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_MODELS,
        description="Default: the model of this answer.",
    )
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    org_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="As for a prompt: this organisation's shared wallet pays (absent: yours).",
    )


class CancelOut(BaseModel):
    id: str
    status: str


class RatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stars: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=2000)


class RatingOut(BaseModel):
    message_id: str
    stars: int
    comment: str | None


@routes.post("/api/conversations", name="api_conversations_create")
@endpoint(
    access="user", body=ConversationIn, response=ConversationOut, status=201, tags=["conversations"]
)
async def create_conversation(request: web.Request, body: ConversationIn) -> dict[str, Any]:
    """Start a conversation (its title comes from the first prompt unless given)."""
    actor = require_user(request)
    conversation = await chat.create_conversation(
        request.app[DB], actor.user_id, body.title, body.tool
    )
    return chat.conversation_out(conversation)


@routes.get("/api/conversations", name="api_conversations_list")
@endpoint(access="user", query=ConversationQuery, response=ConversationPage, tags=["conversations"])
async def list_conversations(request: web.Request, query: ConversationQuery) -> dict[str, Any]:
    """Your conversations, most recently active first; page with `before`."""
    actor = require_user(request)
    summaries, cursor = await chat.list_conversation_summaries(
        request.app[DB],
        actor.user_id,
        limit=query.limit,
        before=query.before,
        q=query.q,
        tool=query.tool,
        pinned=query.pinned,
        archived=query.archived,
    )
    return {"conversations": summaries, "next_cursor": cursor}


@routes.get("/api/conversations/{id}", name="api_conversation")
@endpoint(access="user", response=ConversationTreeOut, tags=["conversations"], errors=[404])
async def get_conversation(request: web.Request) -> dict[str, Any]:
    """One conversation with its whole message tree (also for people it is shared with)."""
    actor = require_user(request)
    _, rights = await access.conversation(request.app[DB], actor.user_id, request.match_info["id"])
    tree = await chat.load_tree(request.app[DB], rights.owner_id, request.match_info["id"])
    return {
        **chat.conversation_out(tree.conversation),
        "messages": [chat.message_out(m, tree) for m in tree.messages],
    }


@routes.patch("/api/conversations/{id}", name="api_conversation_update")
@endpoint(
    access="user",
    body=ConversationPatch,
    response=ConversationOut,
    tags=["conversations"],
    errors=[404],
)
async def rename_conversation(request: web.Request, body: ConversationPatch) -> dict[str, Any]:
    """Rename a conversation, pin or unpin it, archive or unarchive it, or choose what happens
    when it outgrows a model's context window (`context_policy`)."""
    actor = require_user(request)
    db, conversation_id = request.app[DB], request.match_info["id"]
    async with access.owner_only(db, actor.user_id, "conversation", conversation_id, "change it"):
        conversation = await chat.update_conversation(
            db,
            actor.user_id,
            conversation_id,
            title=body.title,
            pinned=body.pinned,
            archived=body.archived,
            context_policy=body.context_policy,
        )
    if body.title is not None:
        await queue_embedding(request.app, actor.user_id)
    return chat.conversation_out(conversation)


@routes.delete("/api/conversations/{id}", name="api_conversation_delete")
@endpoint(access="user", status=204, tags=["conversations"], errors=[404])
async def delete_conversation(request: web.Request) -> None:
    """Delete a conversation, its messages and generated media."""
    actor = require_user(request)
    db, conversation_id = request.app[DB], request.match_info["id"]
    async with access.owner_only(db, actor.user_id, "conversation", conversation_id, "delete it"):
        paths = await chat.delete_conversation(db, actor.user_id, conversation_id)
    await objects.delete_all(objects.storage_of(request.app), paths)


def _require_generation_rights(request: web.Request) -> Actor:
    """Generating spends credits and calls providers: it needs a verified address where the
    install requires one."""
    return require_verified(request)


@routes.post("/api/conversations/{id}/messages", name="api_conversation_generate")
@endpoint(
    access="user",
    body=GenerateIn,
    tags=["conversations"],
    rate="generation",
    errors=[402, 404, 409, 413],
    content_type="text/event-stream",
)
async def generate(request: web.Request, body: GenerateIn) -> web.StreamResponse:
    """Send one prompt to 1..8 models; their answers stream concurrently over SSE.

    The maximum cost of each model's answer is reserved first (402 when the wallet cannot cover
    it, before any provider is called) and settled to the real cost when it ends.
    """
    actor = _require_generation_rights(request)
    db, conversation_id = request.app[DB], request.match_info["id"]

    async def payer(space: str | None) -> wallet.OrganisationHold | None:
        """The wallet that pays: the conversation's organisation space's (read with it), else
        the one the request names, else the user's own (no read)."""
        paying = organisation_spaces.payer_of(space, body.org_id)
        return await organisations.wallet_hold(db, actor.user_id, paying)

    async with access.owner_only(db, actor.user_id, "conversation", conversation_id, "write in it"):
        prompt, planned = await plan_generations(
            request.app,
            user_id=actor.user_id,
            conversation_id=conversation_id,
            content=body.content,
            model_ids=body.models,
            options=body.options,
            parent_id=body.parent_id,
            attachments=decode_attachments(body.attachments),
            continue_latest="parent_id" not in body.model_fields_set,
            payer=payer,
            # The prompt and answer rows are written while the models start.
            rows_later=True,
        )
    return await stream_generations(request, planned, prompt)


@routes.post("/api/messages", name="api_messages_new_chat")
@endpoint(
    access="user",
    body=NewChatIn,
    tags=["conversations"],
    rate="generation",
    errors=[402, 413],
    content_type="text/event-stream",
)
async def start_chat(request: web.Request, body: NewChatIn) -> web.StreamResponse:
    """Start a new conversation with its first prompt (same SSE events as sending a prompt;
    the first one, `prompt`, names the new conversation). Nothing is created when the request
    is refused (invalid options, unknown model, empty wallet)."""
    actor = _require_generation_rights(request)
    organisation = await organisations.wallet_hold(request.app[DB], actor.user_id, body.org_id)
    prompt, planned = await plan_generations(
        request.app,
        user_id=actor.user_id,
        conversation_id=None,
        content=body.content,
        model_ids=body.models,
        options=body.options,
        parent_id=None,
        attachments=decode_attachments(body.attachments),
        tool=body.tool,
        organisation=organisation,
        rows_later=True,
    )
    return await stream_generations(request, planned, prompt)


@routes.get("/api/messages/{id}/stream", name="api_message_stream")
@endpoint(access="user", tags=["conversations"], errors=[404], content_type="text/event-stream")
async def follow(request: web.Request) -> web.StreamResponse:
    """Follow one answer: its text from the position in `Last-Event-ID` (or `?offset=`, a
    character count; default the start) on, live until it ends, then its `done`. For a client
    that comes back while the answer is still being written (answers do not stop when the
    client that asked goes away); for a finished answer, its text and `done` at once."""
    actor = require_user(request)
    return await follow_answer(request, actor.user_id, request.match_info["id"])


@routes.post("/api/messages/{id}/regenerate", name="api_message_regenerate")
@endpoint(
    access="user",
    body=RegenerateIn,
    tags=["conversations"],
    rate="generation",
    errors=[402, 404, 409, 413],
    content_type="text/event-stream",
)
async def regenerate(request: web.Request, body: RegenerateIn) -> web.StreamResponse:
    """Answer the same prompt again: new answers become siblings of this one (same SSE events
    as sending a prompt). Give a user message to answer it with other models."""
    actor = _require_generation_rights(request)
    db = request.app[DB]
    async with db.read() as session:
        message = await session.scalar(
            select(Message).where(
                Message.id == request.match_info["id"], Message.user_id == actor.user_id
            )
        )
        prompt = message
        if message is not None and message.role == "assistant" and message.parent_id:
            prompt = await session.get(Message, message.parent_id)
    if message is None or prompt is None or prompt.role != "user":
        raise NotFound("No such message.")
    paying = await organisation_spaces.paying_organisation(
        db, actor.user_id, prompt.conversation_id, body.org_id
    )
    organisation = await organisations.wallet_hold(db, actor.user_id, paying)
    prompt_message, planned = await plan_again(
        request.app,
        user_id=actor.user_id,
        prompt=prompt,
        model_ids=body.models or ([message.model_id] if message.model_id else None),
        options=body.options,
        organisation=organisation,
    )
    return await stream_generations(request, planned, prompt_message)


@routes.post("/api/generations/{id}/cancel", name="api_generation_cancel")
@endpoint(access="user", response=CancelOut, tags=["conversations"], errors=[404])
async def cancel(request: web.Request) -> dict[str, Any]:
    """Stop one model's answer (the only way to: closing its stream does not). What it wrote
    so far is kept and charged for."""
    actor = require_user(request)
    generation_id = request.match_info["id"]
    status = await cancel_generation(request.app, actor.user_id, generation_id)
    return {"id": generation_id, "status": status}


@routes.post("/api/messages/{id}/rating", name="api_message_rating")
@endpoint(access="user", body=RatingIn, response=RatingOut, tags=["conversations"], errors=[404])
async def rate(request: web.Request, body: RatingIn) -> dict[str, Any]:
    """Rate an answer 1-5 stars (again to change it); the catalog shows each model's average."""
    actor = require_user(request)
    rating = await chat.rate(
        request.app[DB], actor.user_id, request.match_info["id"], body.stars, body.comment
    )
    return {"message_id": rating.message_id, "stars": rating.stars, "comment": rating.comment}


@routes.get("/api/media/{id}", name="api_media")
@raw(
    access="user",
    summary="A generated or attached image or audio file (owner only).",
    content_type="application/octet-stream",
)
async def media(request: web.Request) -> web.StreamResponse:
    actor = require_user(request)
    async with request.app[DB].read() as session:
        found = (
            await session.execute(
                select(MessageMedia, Message.conversation_id)
                .join(Message, Message.id == MessageMedia.message_id)
                .where(MessageMedia.id == request.match_info["id"])
            )
        ).first()
        item, conversation_id = found if found is not None else (None, None)
        if item is not None and conversation_id is not None and item.user_id != actor.user_id:
            try:  # media of a conversation shared with the actor
                await access.conversation_in(session, actor.user_id, conversation_id)
            except NotFound:
                item = None
    if item is None:
        raise NotFound("No such file.")
    # Images and audio display inline; anything else downloads (it could run in a browser).
    inline = (
        item.media_type.split("/")[0] in ("image", "audio", "video")
        and item.media_type != "image/svg+xml"
    )
    disposition = "inline" if inline else "attachment"
    return await objects.serve(
        request,
        objects.storage_of(request.app),
        objects.key_of(item.path),
        {
            "Content-Type": item.media_type,
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(item.name)}",
            "Cache-Control": "private, max-age=3600",
        },
    )
