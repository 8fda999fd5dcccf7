"""One prompt to several models: plan, reserve, stream concurrently, settle.

The request flow of ARCHITECTURE.md: models are resolved and their options validated, the maximum
cost of each is reserved (all or nothing: an empty wallet is a 402 before any provider is called),
the prompt and one pending answer per model are stored, then the models stream concurrently
into one SSE response. No database session is open while a model streams and nothing is written
per chunk. Whatever happens (success, provider error, stop, client gone), each generation is
finished: its text, usage, timing and status are stored and its reservation settled to the real
cost, exactly once. A periodic sweep settles what a crashed process left behind.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any, TypeVar, cast

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, exists, func, insert, select, update

from multinotes import driver_sql
from multinotes.catalog import CatalogEntry, cost_of
from multinotes.chat.context import Summaries, fit_context, load_summary, max_output, summary_out
from multinotes.chat.models import (
    SEALED_TOOL,
    ContextSummary,
    Conversation,
    Generation,
    Message,
    MessageMedia,
    open_to_chat,
)
from multinotes.chat.partials import PARTIALS
from multinotes.chat.service import path_to, title_from_prompt
from multinotes.db import new_id, retrying, utcnow
from multinotes.domain_events import (
    EVENTS,
    GENERATION_COMPLETED,
    GENERATION_FAILED,
    GenerationCompleted,
    GenerationFailed,
    stage,
)
from multinotes.driver_sql import DriverStatement, DriverTransaction
from multinotes.errors import (
    Invalid,
    NotFound,
    PayloadTooLarge,
    ProviderBadResponse,
    ProviderError,
    ProviderUnavailable,
)
from multinotes.keys import BUS, CATALOG, DB, METRICS, SETTINGS
from multinotes.markdown import render_markdown
from multinotes.plugin_settings import field_errors
from multinotes.providers import (
    Attachment,
    ChatMessage,
    ChatRole,
    MediaOutput,
    Pricing,
    Usage,
)
from multinotes.storage import STORAGE_QUOTA, objects
from multinotes.tokens import count_tokens
from multinotes.wallet import service as wallet
from multinotes.wallet.models import Reservation

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_MODELS = 8
RETRY_ATTEMPTS = 3
MAX_RETRY_DELAY = 10.0
CANCEL_CHANNEL = "generations"
MEDIA_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/aac": "aac",
    "audio/flac": "flac",
    "audio/webm": "webm",
}


@dataclass
class Planned:
    """Everything one model's run needs, decided before any provider is called."""

    entry: CatalogEntry
    options: BaseModel
    generation_id: str
    message_id: str
    history: list[ChatMessage]
    dropped_turns: int
    reserved: int
    usage: Usage = field(default_factory=Usage)
    user_id: str = ""
    #: The prompt's size counted offline: billed as its input when the provider reports none.
    prompt_tokens: int = 0
    conversation_id: str = ""
    #: An answer of a blind comparison (a sealed conversation): nothing it publishes (events,
    #: the ledger's reason) names its model.
    sealed: bool = False
    #: How the conversation was fitted to the window (``context.Fitted.policy``) and the
    #: summary sent in place of its older turns, if any.
    context_policy: str | None = None
    summary: ContextSummary | None = None
    #: The prompt and answer rows being written while the model already streams
    #: (``plan_generations(rows_later=True)``); None when they were written before. The answer
    #: is stored and settled only once they are, and stopped when they cannot be.
    rows: asyncio.Future[None] | None = None

    @property
    def model_id(self) -> str:
        return self.entry.id


class RunningGenerations:
    """Generations streaming in this process, so a cancel request can reach them and a
    client that comes back can follow their text (``texts``: the chunks so far). The tasks
    belong to the server, not to the request that started them: this keeps them alive."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.texts: dict[str, list[str]] = {}
        self.stopping_at: float | None = None

    def track(self, generation_id: str, task: asyncio.Task[None]) -> None:
        self.tasks[generation_id] = task
        task.add_done_callback(lambda _task: self.tasks.pop(generation_id, None))

    def cancel(self, generation_id: str) -> bool:
        task = self.tasks.get(generation_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True


RUNNING: web.AppKey[RunningGenerations] = web.AppKey("running_generations")


# -- planning -----------------------------------------------------------------------------------


def validate_options(entries: list[CatalogEntry], options: dict[str, Any]) -> list[BaseModel]:
    unknown = sorted(set(options) - {e.id for e in entries})
    fields = {f"options.{m}": "options for a model that was not asked for" for m in unknown}
    validated: list[BaseModel] = []
    for entry in entries:
        raw = options.get(entry.id) or {}
        if not isinstance(raw, dict):
            fields[f"options.{entry.id}"] = "must be an object"
            continue
        try:
            value = entry.model.Options.model_validate(raw)
        except ValidationError as exc:
            fields.update(field_errors(exc, f"options.{entry.id}."))
            continue
        max_tokens = getattr(value, "max_tokens", None)
        if max_tokens and entry.model.max_output and max_tokens > entry.model.max_output:
            fields[f"options.{entry.id}.max_tokens"] = (
                f"at most {entry.model.max_output} for this model"
            )
        validated.append(value)
    if fields:
        raise Invalid("Some options are invalid.", fields=fields)
    return validated


#: When a request names no maximum answer length, this (or the model's own, if lower) is sent
#: to the provider. The reservation covers it, so a long answer can never cost more than was
#: held — and a trial wallet can still use a model whose own maximum is huge.
DEFAULT_MAX_OUTPUT_TOKENS = 4096


def apply_default_max_tokens(entry: CatalogEntry, options: BaseModel) -> None:
    if "max_tokens" in type(options).model_fields and getattr(options, "max_tokens", 0) is None:
        limit = min(DEFAULT_MAX_OUTPUT_TOKENS, entry.model.max_output or DEFAULT_MAX_OUTPUT_TOKENS)
        options.max_tokens = limit  # type: ignore[attr-defined]


def max_usage(
    entry: CatalogEntry, options: BaseModel, prompt_tokens: int, history: list[ChatMessage]
) -> Usage:
    """The most a request can use, for the reservation."""
    capabilities = entry.model.capabilities
    usage = Usage(input_tokens=prompt_tokens, output_tokens=max_output(entry, options))
    if "image_generation" in capabilities:
        usage.images = int(getattr(options, "n", 1) or 1)
    if "text_to_speech" in capabilities:
        # About 15 characters a second of speech, with a generous margin.
        text = history[-1].content if history else ""
        usage.audio_seconds = max(10.0, len(text) / 10)
    if "speech_to_text" in capabilities:
        audio = sum(len(a.data) for m in history for a in m.attachments)
        usage.audio_seconds = max(60.0, audio / 2000)  # ≥ 16 kbit/s for any real audio
    return usage


# Built once and run at the driver (``multinotes.driver_sql``, issue #17): SQLAlchemy's
# execution path cost more CPU than the round trip, and every answer sends these. Parameters
# are named ``p_*``: an UPDATE executed with a parameter named like a column also SETs that
# column.

#: The user's conversation, unless it is sealed: a blind comparison takes no prompt and no
#: regeneration (its answers' events would name their models).
_CONVERSATION_TO_CHAT = DriverStatement(
    select(Conversation.__table__).where(
        Conversation.id == bindparam("p_id"),
        Conversation.user_id == bindparam("p_user"),
        open_to_chat(),
    )
)
_THREAD = DriverStatement(
    select(Message.__table__)
    .where(Message.conversation_id == bindparam("p_id"))
    .order_by(Message.created_at, Message.id)
)
_PROMPT_MEDIA = DriverStatement(
    select(MessageMedia.__table__).where(MessageMedia.message_id == bindparam("p_id"))
)
_INSERT_CONVERSATION = DriverStatement(insert(Conversation))
_TOUCH = (
    update(Conversation)
    .where(Conversation.id == bindparam("p_id"))
    .values(updated_at=bindparam("p_now"))
)
_TOUCH_CONVERSATION = DriverStatement(_TOUCH)
_TOUCH_AND_TITLE_CONVERSATION = DriverStatement(_TOUCH.values(title=bindparam("p_title")))
_INSERT_MESSAGES = DriverStatement(insert(Message))
_INSERT_GENERATIONS = DriverStatement(insert(Generation))
_INSERT_MEDIA = DriverStatement(insert(MessageMedia))
_STORE_ANSWER = DriverStatement(
    update(Message)
    .where(Message.id == bindparam("p_id"))
    .values(content=bindparam("p_content"), status=bindparam("p_status"))
)
#: What an answer's final store writes on its generation row, each bound as ``p_<column>``.
_OUTCOME_COLUMNS = (
    "status",
    "error_code",
    "error_message",
    "input_tokens",
    "output_tokens",
    "images",
    "audio_seconds",
    "cost",
    "provider_cost",
    "latency_ms",
    "duration_ms",
    "finished_at",
)
_STORE_GENERATION = DriverStatement(
    update(Generation)
    .where(Generation.id == bindparam("p_id"))
    .values(**{column: bindparam(f"p_{column}") for column in _OUTCOME_COLUMNS})
)


async def plan_generations(
    app: web.Application,
    *,
    user_id: str,
    conversation_id: str | None,
    content: str | None,
    model_ids: list[str],
    options: dict[str, Any],
    parent_id: str | None,
    attachments: list[Attachment],
    prompt_message: Message | None = None,
    continue_latest: bool = False,
    tool: str | None = None,
    organisation: wallet.OrganisationHold | None = None,
    payer: Callable[[str | None], Awaitable[wallet.OrganisationHold | None]] | None = None,
    rows_later: bool = False,
) -> tuple[Message, list[Planned]]:
    """Validate, reserve and store; raise before anything is kept if any of it fails.

    With ``organisation`` (the caller checked the membership), the credits are held on and
    charged to that organisation's wallet instead of the user's own. ``payer`` instead decides
    it from the conversation's organisation space (its ``organisation_id``, read with the
    conversation, so the space costs no read of its own).

    With ``rows_later`` only the hold is committed before this returns; the prompt, the pending
    answers and their generation rows are written while the models already stream
    (``Planned.rows``; ``stream_generations`` stops the models and the hold is released when
    that write fails, and each answer is settled only after it). What fails before the hold
    still leaves nothing.

    The user's conversation is read here, with its messages (NotFound when the user does not
    own it): one read before the hold, since every step before it delays the first token.
    Without ``conversation_id`` a new conversation (for ``tool``) is created in the same
    transaction as the prompt, so a request that fails validation or payment leaves nothing."""
    if len(set(model_ids)) != len(model_ids):
        raise Invalid("A model is listed twice.", fields={"models": "duplicates"})
    db = app[DB]
    messages: list[Message] = []
    prompt_media: list[MessageMedia] = []
    if conversation_id is None:
        conversation = Conversation(id=new_id(), user_id=user_id, title="New chat", tool=tool)
    else:
        # Rows made into unsaved entities: an ORM session costs ~0.6 ms more CPU here.
        async with db.driver_read() as reader:
            found = await reader.first(
                _CONVERSATION_TO_CHAT, {"p_id": conversation_id, "p_user": user_id}
            )
            if found is None:
                raise NotFound("No such conversation.")
            conversation = Conversation(**_CONVERSATION_TO_CHAT.mapping(found))
            messages = [
                Message(**_THREAD.mapping(row))
                for row in await reader.rows(_THREAD, {"p_id": conversation_id})
            ]
            # Only a prompt answered again sends its files along (earlier turns go as text).
            if prompt_message is not None:
                prompt_media = [
                    MessageMedia(**_PROMPT_MEDIA.mapping(row))
                    for row in await reader.rows(_PROMPT_MEDIA, {"p_id": prompt_message.id})
                ]
    if payer is not None:
        organisation = await payer(conversation.organisation_id)

    if prompt_message is None and attachments:
        await app[STORAGE_QUOTA].check_room(user_id, attachment_bytes(attachments), "attachments")
    entries = await app[CATALOG].resolve_for_use(model_ids)
    if any(MEDIA_MAKERS & entry.model.capabilities for entry in entries):
        await _check_room_for_media(app, user_id)
    validated = validate_options(entries, options)
    for entry, opts in zip(entries, validated, strict=True):
        apply_default_max_tokens(entry, opts)

    if prompt_message is None:
        if continue_latest and parent_id is None and messages:
            parent_id = messages[-1].id  # the newest message: where the talk left off
        if parent_id is not None and parent_id not in {m.id for m in messages}:
            raise Invalid(
                "The parent message is not in this conversation.",
                fields={"parent_id": "unknown message"},
            )
        chain = path_to(messages, parent_id) if parent_id else []
        prompt = ChatMessage("user", content or "", tuple(attachments))
    else:
        chain = path_to(messages, prompt_message.parent_id) if prompt_message.parent_id else []
        prompt = ChatMessage(
            "user",
            prompt_message.content,
            tuple([await _load_attachment(app, row) for row in prompt_media]),
        )
    turns = [m for m in chain if m.content and m.status in ("complete", "stopped")]
    history = [
        ChatMessage(cast(ChatRole, m.role), m.content)  # a stored message's role
        for m in turns
    ] + [prompt]

    planned = []
    sealed = conversation.tool == SEALED_TOOL
    summaries = Summaries(
        user_id,
        conversation.id,
        "drop" if sealed else (conversation.context_policy or "drop"),
        loaded=conversation_id is None,  # a new conversation has none
    )
    for entry, opts in zip(entries, validated, strict=True):
        fitted = await fit_context(app, summaries, [m.id for m in turns], history, entry, opts)
        estimate = cost_of(
            max_usage(entry, opts, fitted.prompt_tokens, fitted.history), entry.pricing
        )
        planned.append(
            Planned(
                entry,
                opts,
                new_id(),
                new_id(),
                fitted.history,
                fitted.dropped,
                estimate,
                user_id=user_id,
                prompt_tokens=fitted.prompt_tokens,
                conversation_id=conversation.id,
                sealed=sealed,
                context_policy=fitted.policy,
                summary=fitted.summary,
            )
        )

    for attempt in range(2):
        try:
            await retrying(functools.partial(_hold, app, user_id, planned, organisation), "hold")
            break
        except wallet.WalletMissing:
            if attempt:
                raise
            await wallet.ensure_wallet(db, user_id)
    new_prompt = prompt_message is None
    if prompt_message is None:
        prompt_message = Message(
            id=new_id(),
            conversation_id=conversation.id,
            user_id=user_id,
            parent_id=parent_id,
            role="user",
            content=content or "",
            model_id=None,
            status="complete",
            created_at=utcnow(),
        )
    store = functools.partial(
        retrying,
        functools.partial(
            _store_plan,
            app,
            user_id,
            conversation,
            content,
            attachments,
            prompt_message,
            planned,
            first=not messages,
            new=conversation_id is None,
            new_prompt=new_prompt,
        ),
        "store_plan",
    )
    if rows_later:
        rows = asyncio.ensure_future(_store_or_release(app, planned, store))
        rows.add_done_callback(_log_rows_failure)
        for item in planned:
            item.rows = rows
        return prompt_message, planned
    await _store_or_release(app, planned, store)
    return prompt_message, planned


async def _store_or_release(
    app: web.Application, planned: list[Planned], store: Callable[[], Awaitable[None]]
) -> None:
    """``_store_plan``; on failure (or cancellation) the hold is given back first."""
    try:
        await store()
    except BaseException:
        await _release(app, planned)
        raise


def _log_rows_failure(rows: asyncio.Future[None]) -> None:
    if rows.cancelled():
        return
    error = rows.exception()
    if error is not None:
        log.error("answer_rows_not_stored", error=f"{type(error).__name__}: {error}")


async def plan_again(
    app: web.Application,
    *,
    user_id: str,
    prompt: Message,
    model_ids: list[str] | None,
    options: dict[str, Any],
    organisation: wallet.OrganisationHold | None = None,
) -> tuple[Message, list[Planned]]:
    """``plan_generations`` for a stored prompt answered again (regenerate, re-running a saved
    note): the new answers become siblings of the earlier ones."""
    if not model_ids:
        raise Invalid("Name the models to answer with.", fields={"models": "required"})
    return await plan_generations(
        app,
        user_id=user_id,
        conversation_id=prompt.conversation_id,
        content=None,
        model_ids=model_ids,
        options=options,
        parent_id=None,
        attachments=[],
        prompt_message=prompt,
        organisation=organisation,
    )


async def _hold(
    app: web.Application,
    user_id: str,
    planned: list[Planned],
    organisation: wallet.OrganisationHold | None,
) -> None:
    """Hold every model's maximum cost, all or nothing (402), in a transaction of its own: the
    conditional UPDATE of the wallet and the reservation rows, committed before the provider is
    called. Nothing else is written while the wallet row is locked; the prompt and the answers'
    rows follow in ``_store_plan``. A process that dies between the two leaves reservations
    without generations, which the crash sweep releases (``release_orphaned_holds``)."""
    async with app[DB].driver_transaction() as tx:
        await wallet.hold_on(
            tx,
            user_id,
            # A blind answer's charge names no model (the ledger is the owner's to read).
            [
                (item.reserved, f"gen:{item.generation_id}", None if item.sealed else item.model_id)
                for item in planned
            ],
            organisation=organisation,
        )


async def _release(app: web.Application, planned: list[Planned]) -> None:
    """Give back the holds of answers whose rows could not be written (nothing was charged and
    the provider was never called). Should this fail too, the crash sweep releases them."""
    try:
        async with app[DB].driver_transaction() as tx:
            for item in planned:
                await wallet.release_on(tx, f"gen:{item.generation_id}")
    except Exception:
        log.exception("hold_release_failed", generations=[i.generation_id for i in planned])


async def _store_plan(
    app: web.Application,
    user_id: str,
    conversation: Conversation,
    content: str | None,
    attachments: list[Attachment],
    prompt_message: Message,
    planned: list[Planned],
    *,
    first: bool,
    new: bool = False,
    new_prompt: bool,
) -> None:
    """One short transaction after the hold (``_hold``): the prompt (when ``new_prompt``), the
    pending answers and their generation rows, and the conversation.

    Core statements, several rows each, rather than ORM objects: this runs before the first
    token of every answer, and on SQLite under the one write lock.
    """
    now = prompt_message.created_at if new_prompt else utcnow()
    title = (
        title_from_prompt(content)
        if first and conversation.title in ("", "New chat") and content
        else None
    )
    rows = [_message_row(prompt_message)] if new_prompt else []
    rows += [
        {
            "id": item.message_id,
            "conversation_id": conversation.id,
            "user_id": user_id,
            "parent_id": prompt_message.id,
            "role": "assistant",
            "content": "",
            "model_id": item.model_id,
            "status": "pending",
            "created_at": now + timedelta(microseconds=index + 1),
        }
        for index, item in enumerate(planned)
    ]
    if new_prompt and attachments:
        async with app[DB].transaction() as session:
            tx = await driver_sql.within(session)
            await _write_plan(tx, user_id, conversation, planned, rows, now, title, new=new)
            # Attachments are stored bytes like any upload: within the owner's quota.
            await app[STORAGE_QUOTA].claim_room_in(
                session, user_id, attachment_bytes(attachments), "attachments"
            )
            for attachment in attachments:
                session.add(await _store_media(app, user_id, prompt_message.id, attachment))
        return
    async with app[DB].driver_transaction() as tx:
        await _write_plan(tx, user_id, conversation, planned, rows, now, title, new=new)


async def _write_plan(
    tx: DriverTransaction,
    user_id: str,
    conversation: Conversation,
    planned: list[Planned],
    rows: list[dict[str, Any]],
    now: datetime,
    title: str | None,
    *,
    new: bool,
) -> None:
    """``_store_plan``'s rows: the conversation (created or touched), the messages, and the
    answers' generation rows."""
    if new:
        await tx.execute(
            _INSERT_CONVERSATION,
            {
                "id": conversation.id,
                "user_id": user_id,
                "title": title or "New chat",
                "tool": conversation.tool,
                "created_at": now,
                "updated_at": now,
            },
        )
    else:
        # Lock the conversation row first: inserting its messages takes a shared lock on
        # it (foreign key check), and two requests upgrading that lock later deadlock on
        # MySQL.
        touch: dict[str, Any] = {"p_id": conversation.id, "p_now": now}
        if title is None:
            await tx.execute(_TOUCH_CONVERSATION, touch)
        else:
            await tx.execute(_TOUCH_AND_TITLE_CONVERSATION, {**touch, "p_title": title})
    await tx.execute_many(_INSERT_MESSAGES, rows)
    await tx.execute_many(
        _INSERT_GENERATIONS,
        [
            {
                "id": item.generation_id,
                "user_id": user_id,
                "conversation_id": conversation.id,
                "message_id": item.message_id,
                "model_id": item.model_id,
                "provider_id": item.entry.provider.provider_id,
                "options": item.options.model_dump(mode="json", exclude_none=True),
                "pricing": _pricing_json(item.entry.pricing),
                "status": "pending",
                "reserved": item.reserved,
                "dropped_turns": item.dropped_turns,
                "context_policy": item.context_policy,
                "summary_id": item.summary.id if item.summary else None,
                # The prompt as counted offline, until the answer's real usage replaces it:
                # what the crash sweep bills when the process died mid-answer.
                "input_tokens": item.prompt_tokens,
                "created_at": now,
            }
            for item in planned
        ],
    )


def _message_row(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "user_id": message.user_id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "model_id": message.model_id,
        "status": message.status,
        "created_at": message.created_at,
    }


def _pricing_json(pricing: Pricing) -> dict[str, float]:
    return {
        "input_per_million": pricing.input_per_million,
        "output_per_million": pricing.output_per_million,
        "per_image": pricing.per_image,
        "per_audio_minute": pricing.per_audio_minute,
    }


#: Capabilities whose answers are files (images, audio) kept with the chat.
MEDIA_MAKERS = frozenset({"image_generation", "text_to_speech"})


async def _check_room_for_media(app: web.Application, user_id: str) -> None:
    """What an image or speech model makes is kept with the chat: stored bytes within the
    owner's storage quota like attachments and uploads. Its size is known only once made, so a
    full quota refuses such a request before anything is held, asked or kept."""
    try:
        await app[STORAGE_QUOTA].check_room(user_id, 1, "models")
    except PayloadTooLarge:
        raise PayloadTooLarge(
            "Your storage quota is full, and the images or audio these models make are kept "
            "with your chats. Delete files or upgrade your storage plan.",
            code="quota_exceeded",
            fields={"models": "the storage quota is full"},
        ) from None


def attachment_bytes(attachments: list[Attachment]) -> int:
    return sum(len(item.data) for item in attachments)


async def _store_media(
    app: web.Application, user_id: str, message_id: str, item: Attachment | MediaOutput
) -> MessageMedia:
    """Keep the bytes in the storage backend; the row's ``path`` is their relative key."""
    media_id = new_id()
    extension = MEDIA_EXTENSIONS.get(item.media_type, "bin")
    key = objects.media_key(user_id, media_id, extension)
    await objects.put_bytes(objects.storage_of(app), key, item.data)
    return MessageMedia(
        id=media_id,
        user_id=user_id,
        message_id=message_id,
        media_type=item.media_type,
        name=(item.name or f"{media_id}.{extension}")[:200],
        size=len(item.data),
        path=key,
    )


async def _load_attachment(app: web.Application, row: MessageMedia) -> Attachment:
    data = await objects.read_bytes(objects.storage_of(app), objects.key_of(row.path))
    return Attachment(row.media_type, data, row.name)


# -- streaming ----------------------------------------------------------------------------------


#: An event for the SSE response: (name, data), or already encoded (``EventSink.emit_encoded``).
SinkEvent = tuple[str, dict[str, Any]] | bytes


class EventSink:
    """Collects events from concurrent model runs for the one SSE response, and knows when
    the last run has ended. A list and one future rather than an ``asyncio.Queue`` (three
    deques, ~2 KB) and a watcher task: this lives as long as the stream does. Once the client
    is gone (``close``) events are dropped: the answers go on without it."""

    def __init__(self) -> None:
        self._events: list[SinkEvent] = []
        self._waiter: asyncio.Future[None] | None = None
        self._running = 0
        self.closed = False

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if self.closed:
            return
        self._events.append((event, data))
        self._wake()

    def emit_encoded(self, event: bytes) -> None:
        """An event already encoded as SSE (``DeltaEncoder``): the per-chunk path, where a
        dict and its JSON per chunk were most of the pipeline's own cost."""
        if self.closed:
            return
        self._events.append(event)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._events = []

    def follow(self, task: asyncio.Task[None]) -> None:
        """The stream lasts until ``task`` is done (done callbacks run even for a task
        cancelled before it started)."""
        self._running += 1
        task.add_done_callback(self._ended)

    def _ended(self, _task: asyncio.Task[None]) -> None:
        self._running -= 1
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def drain(self) -> AsyncIterator[list[SinkEvent]]:
        """The events in order, as they come, until every followed task is done."""
        while self._events or self._running:
            if not self._events:
                self._waiter = asyncio.get_running_loop().create_future()
                await self._waiter
                self._waiter = None
                continue
            events, self._events = self._events, []
            yield events


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def encoded(events: list[SinkEvent]) -> bytes:
    """A batch of events as the bytes of one write."""
    return b"".join(e if isinstance(e, bytes) else sse(*e) for e in events)


class DeltaEncoder:
    """The ``delta`` events of one answer, byte for byte what ``sse("delta", {**tag, "text":
    chunk})`` gives: the part before the text is encoded once, each chunk only escapes its
    text (the C string encoder ``json.dumps`` itself uses)."""

    __slots__ = ("_prefix",)

    def __init__(self, tag: dict[str, Any]) -> None:
        head = json.dumps({**tag, "text": ""}, separators=(",", ":"))
        self._prefix = ("event: delta\ndata: " + head[: -len('""}')]).encode()

    def __call__(self, text: str) -> bytes:
        return self._prefix + _json_string(text).encode() + b"}\n\n"


SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass events through at once
}
#: What a client that goes away while answers stream may see as its connection failing.
CLIENT_GONE = (ConnectionResetError, RuntimeError)


async def stream_generations(
    request: web.Request, planned: list[Planned], prompt_message: Message
) -> web.StreamResponse:
    """Start every planned model and stream their events to this client.

    The models run as tasks of the server, not of the request: a client that goes away only
    stops receiving (``GET /api/messages/{id}/stream`` resumes); only a cancel stops a model.
    """
    app = request.app
    sink = EventSink()
    running = app[RUNNING]
    metrics = app[METRICS]
    for item in planned:
        task = asyncio.create_task(
            run_generation(app, item, sink), name=f"generation-{item.generation_id}"
        )
        sink.follow(task)
        running.track(item.generation_id, task)
        metrics.streams_in_flight.inc()
        task.add_done_callback(lambda _task: metrics.streams_in_flight.dec())
    rows = planned[0].rows if planned else None
    if rows is not None:
        rows.add_done_callback(functools.partial(_stop_without_rows, running, planned))
        # The models are on their way; the first event names the prompt, which exists from
        # then on. Rows that could not be written are this request's error (a 500): the models
        # were stopped and the hold given back.
        await asyncio.shield(rows)
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        await response.write(
            sse(
                "prompt",
                {
                    "message_id": prompt_message.id,
                    "conversation_id": prompt_message.conversation_id,
                },
            )
        )
        async for events in sink.drain():
            # One write for what piled up since the last (a chunk, usually), not one per event.
            await response.write(encoded(events))
        await response.write(sse("end", {}))
        await response.write_eof()
    except (*CLIENT_GONE, asyncio.CancelledError) as exc:
        # The client went away (or this request was cancelled): the models go on, each
        # stores and settles its answer as usual; only their events are no longer wanted.
        sink.close()
        if isinstance(exc, asyncio.CancelledError):
            raise
    return response


def _stop_without_rows(
    running: RunningGenerations, planned: list[Planned], rows: asyncio.Future[None]
) -> None:
    """The rows of answers already streaming could not be written: stop the models (their holds
    were given back; ``_finish_after`` tells the client)."""
    if rows.cancelled() or rows.exception() is not None:
        for item in planned:
            running.cancel(item.generation_id)


async def _rows_stored(item: Planned) -> bool:
    """Whether the answer's rows exist (waiting for them when they are still being written)."""
    if item.rows is None:
        return True
    try:
        await asyncio.shield(item.rows)
    except (Exception, asyncio.CancelledError):
        return False
    return True


async def note_stopping(app: web.Application) -> None:
    """on_shutdown: the drain (``shutdown_timeout``) starts now."""
    app[RUNNING].stopping_at = time.monotonic()


async def stop_running(app: web.Application) -> None:
    """At cleanup, before the database closes: answers that still run in this process (those
    nobody watches: a watched one kept its request open through the web server's drain) get
    what is left of ``shutdown_timeout`` to end, then are stopped, stored and settled."""
    running = app[RUNNING]
    tasks = list(running.tasks.values())
    if not tasks:
        return
    started = running.stopping_at or time.monotonic()
    left = app[SETTINGS].shutdown_timeout - (time.monotonic() - started)
    if left > 0:
        await asyncio.wait(tasks, timeout=left)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks, timeout=10)


class _Closing:
    """Closes a provider's stream on the way out, whatever happened (so its connection is
    released at once); a failure while closing must not replace the outcome."""

    __slots__ = ("stream",)

    def __init__(self, stream: AsyncIterator[Any]) -> None:
        self.stream = stream

    async def __aenter__(self) -> AsyncIterator[Any]:
        return self.stream

    async def __aexit__(self, *exc_info: object) -> None:
        aclose = getattr(self.stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class _IdleTimer:
    """Expires ``deadline`` (entered as ``asyncio.timeout(None)``) once ``seconds`` passed
    since ``last``, which the reader sets at each chunk. Only the time is noted per chunk; the
    timer moves when it fires (rescheduling the deadline per chunk, a new ``TimerHandle`` and
    a heap push each, cost more than the rest of a chunk's own work)."""

    __slots__ = ("_deadline", "_handle", "_loop", "_seconds", "last")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, seconds: float, deadline: asyncio.Timeout
    ) -> None:
        self._loop = loop
        self._seconds = seconds
        self._deadline = deadline
        self.last = loop.time()
        self._handle = loop.call_at(self.last + seconds, self._check)

    def _check(self) -> None:
        due = self.last + self._seconds
        now = self._loop.time()
        if due > now:
            self._handle = self._loop.call_at(due, self._check)
        else:
            self._deadline.reschedule(now)  # expires at once: the task is cancelled

    def cancel(self) -> None:
        self._handle.cancel()


def _timeout(app: web.Application, entry: CatalogEntry) -> float:
    configured = getattr(entry.config, "timeout", None)
    return float(configured or app[SETTINGS].provider_timeout_seconds)


#: A pending answer without a heartbeat (``partials``) for this long was left by a process
#: that died.
ORPHANED_AFTER_SECONDS = 30.0


async def run_generation(app: web.Application, item: Planned, sink: EventSink) -> None:
    entry = item.entry
    tag = {"generation_id": item.generation_id, "model": item.model_id}
    delta = DeltaEncoder(tag)
    sink.emit(
        "start",
        {
            **tag,
            "message_id": item.message_id,
            "conversation_id": item.conversation_id,
            "dropped_turns": item.dropped_turns,
            "context_policy": item.context_policy,
            "summary": summary_out(item.summary),
        },
    )
    breaker = app[CATALOG].breaker
    provider_id = entry.provider.provider_id
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    first_at: float | None = None
    parts: list[str] = []
    media: list[MediaOutput] = []
    status, error = "complete", None
    app[RUNNING].texts[item.generation_id] = parts
    app[PARTIALS].add(item.generation_id, item.message_id, parts, started)
    try:
        for attempt in range(RETRY_ATTEMPTS):
            item.usage = Usage()
            # The plugin's settings plus the key and base URL the core reads from them.
            request = entry.request(
                item.history,
                item.options,
                usage=item.usage,
                timeout=_timeout(app, entry),
                clients=app[CATALOG].clients,
            )
            try:
                # ``request.timeout`` seconds for the first chunk and between chunks: one
                # deadline (not a timeout, and a task as ``wait_for`` would make, per chunk),
                # so the provider's code stays in this task; a chunk only notes its time
                # (``_IdleTimer``). The stream is closed after the deadline's exit, when no
                # cancellation is pending.
                async with _Closing(entry.model.stream(request)) as chunks:
                    try:
                        async with asyncio.timeout(None) as deadline:
                            idle = _IdleTimer(loop, request.timeout, deadline)
                            try:
                                async for chunk in chunks:
                                    idle.last = loop.time()
                                    if first_at is None:
                                        first_at = time.perf_counter()
                                    if isinstance(chunk, str):
                                        if chunk:
                                            parts.append(chunk)
                                            if not sink.closed:
                                                sink.emit_encoded(delta(chunk))
                                    elif isinstance(chunk, MediaOutput):
                                        media.append(chunk)
                                    else:
                                        raise ProviderBadResponse(
                                            f"{entry.provider.name} produced an unexpected chunk."
                                        )
                            finally:
                                idle.cancel()
                    except TimeoutError:
                        raise ProviderUnavailable(
                            f"{entry.provider.name} did not answer within {request.timeout:g} s.",
                            code="provider_timeout",
                        ) from None
                breaker.record_success(provider_id)
                break
            except ProviderError as exc:
                if isinstance(exc, ProviderUnavailable):
                    breaker.record_failure(provider_id)
                if not exc.retryable or first_at is not None or attempt == RETRY_ATTEMPTS - 1:
                    raise
                delay = min(MAX_RETRY_DELAY, exc.retry_after or 0.5 * 2**attempt)
                log.info(
                    "generation_retry",
                    model=item.model_id,
                    attempt=attempt + 1,
                    delay=delay,
                    code=exc.error_code,
                )
                await asyncio.sleep(delay)
    except asyncio.CancelledError:
        status = "stopped"
    except ProviderError as exc:
        status, error = "failed", exc
    except Exception as exc:  # a plugin bug: contained and attributed
        log.error(
            "generation_plugin_error",
            model=item.model_id,
            plugin=entry.plugin,
            error=f"{type(exc).__name__}: {exc}",
        )
        status = "failed"
        error = ProviderError(f"{entry.provider.name} failed unexpectedly.", code="provider_error")
    finished = time.perf_counter()
    outcome = Outcome(
        status=status,
        error=error,
        text="".join(parts),
        media=media,
        latency_ms=None if first_at is None else round((first_at - started) * 1000, 1),
        duration_ms=round((finished - started) * 1000, 1),
    )
    # Shielded: a second cancellation (shutdown) must not interrupt settlement.
    await asyncio.shield(_finish_after(app, item, outcome, sink))


async def _finish_after(
    app: web.Application, item: Planned, outcome: Outcome, sink: EventSink
) -> None:
    await app[PARTIALS].remove(item.generation_id)
    try:
        if await _rows_stored(item):
            await finish_generation(app, item, outcome, sink)
        else:  # nothing to store or settle: the hold was given back
            _not_saved(sink, item, outcome, Usage(), "")
    finally:
        app[RUNNING].texts.pop(item.generation_id, None)


@dataclass
class Outcome:
    status: str
    error: ProviderError | None
    text: str
    media: list[MediaOutput]
    latency_ms: float | None
    duration_ms: float


def complete_usage(usage: Usage, text: str, prompt_tokens: int) -> Usage:
    """The provider's usage, completed offline for what was delivered when it reported none:
    many providers send usage only in a stream's last chunk, which a stopped or broken stream
    never reaches. The delivered text is counted with the tokenizer the holds use, and the
    prompt's offline count stands in for the input."""
    if text and not usage.output_tokens:
        usage.output_tokens = count_tokens(text)
    if text and not usage.input_tokens:
        usage.input_tokens = prompt_tokens
    return usage


def _not_saved(sink: EventSink, item: Planned, outcome: Outcome, usage: Usage, html: str) -> None:
    """The answer's stream ends with an error and a failed ``done``: it could not be stored."""
    tag = {"generation_id": item.generation_id, "model": item.model_id}
    failure = {"code": "internal_error", "message": "The answer could not be saved."}
    sink.emit("error", {**tag, **failure})
    sink.emit(
        "done",
        done_event(tag, item.message_id, "failed", usage, 0, outcome, html, item.context_policy),
    )


async def finish_generation(
    app: web.Application, item: Planned, outcome: Outcome, sink: EventSink | None
) -> None:
    tag = {"generation_id": item.generation_id, "model": item.model_id}
    usage = complete_usage(item.usage, outcome.text, item.prompt_tokens)
    if outcome.media and "image_generation" in item.entry.model.capabilities:
        usage.images = max(usage.images, len(outcome.media))
    cost = cost_of(usage, item.entry.pricing)
    user_id = item.user_id
    # The files first, once (a retried transaction must not write them again).
    stored_media = [await _store_media(app, user_id, item.message_id, o) for o in outcome.media]
    try:
        charged = await retrying(
            functools.partial(_store_outcome, app, item, outcome, usage, cost, stored_media),
            "finish_generation",
        )
    except Exception:
        log.exception("generation_finish_failed", generation=item.generation_id)
        if sink is not None:
            # Never a stream without its final event; the sweep settles the hold later.
            _not_saved(sink, item, outcome, usage, render_markdown(outcome.text))
        return
    # The answer is stored and paid for: its final events first, then the work around it
    # (whose failure must not keep them from the client).
    for row in stored_media:
        if sink is not None:
            sink.emit("media", {**tag, **_media_event(row)})
    if sink is not None:
        if outcome.error is not None:
            sink.emit(
                "error", {**tag, "code": outcome.error.error_code, "message": outcome.error.message}
            )
        sink.emit(
            "done",
            done_event(
                tag,
                item.message_id,
                outcome.status,
                usage,
                charged,
                outcome,
                # The whole answer as sanitised HTML, to replace the streamed plain text.
                render_markdown(outcome.text),
                item.context_policy,
            ),
        )
    # Search indexing, the copy of generated media into Files and integrations react to it.
    if outcome.status == "failed":
        error = outcome.error
        event = GENERATION_FAILED.of(
            user_id,
            GenerationFailed(
                generation_id=item.generation_id,
                message_id=item.message_id,
                conversation_id=item.conversation_id,
                model="" if item.sealed else item.model_id,
                blind=item.sealed,
                error_code=error.error_code if error else "internal_error",
                # A provider's own words may name it: a blind answer's failure says less.
                error_message=(
                    error.message[:500] if error and not item.sealed else "The answer failed."
                ),
                cost=charged,
            ),
        )
    else:
        event = GENERATION_COMPLETED.of(
            user_id,
            GenerationCompleted(
                generation_id=item.generation_id,
                message_id=item.message_id,
                conversation_id=item.conversation_id,
                model="" if item.sealed else item.model_id,
                blind=item.sealed,
                status="stopped" if outcome.status == "stopped" else "complete",
                cost=charged,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                media_count=len(stored_media),
            ),
        )
    await app[EVENTS].publish(event)


def _media_event(row: MessageMedia) -> dict[str, Any]:
    return {
        "id": row.id,
        "media_type": row.media_type,
        "name": row.name,
        "url": f"/api/media/{row.id}",
    }


def done_event(
    tag: dict[str, Any],
    message_id: str,
    status: str,
    usage: Usage,
    cost: int,
    timing: Outcome | Generation,
    html: str,
    context_policy: str | None = None,
) -> dict[str, Any]:
    return {
        **tag,
        "message_id": message_id,
        "status": status,
        # How the conversation was fitted to the model's window (None: it all fitted).
        "context_policy": context_policy,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "images": usage.images,
            "audio_seconds": usage.audio_seconds,
        },
        "cost": cost,
        "latency_ms": timing.latency_ms,
        "duration_ms": timing.duration_ms,
        "html": html,
    }


async def _store_outcome(
    app: web.Application,
    item: Planned,
    outcome: Outcome,
    usage: Usage,
    cost: int,
    stored_media: list[MessageMedia],
) -> int:
    """One transaction: the charge and the stored answer go together or not at all."""
    async with app[DB].driver_transaction() as tx:
        charged = await wallet.settle_on(
            tx,
            f"gen:{item.generation_id}",
            cost,
            reason=SEALED_REASON if item.sealed else item.entry.model.name,
        )
        await tx.execute_many(
            _INSERT_MEDIA,
            [
                {
                    "id": row.id,
                    "user_id": row.user_id,
                    "message_id": row.message_id,
                    "media_type": row.media_type,
                    "name": row.name,
                    "size": row.size,
                    "path": row.path,
                    "created_at": utcnow(),
                }
                for row in stored_media
            ],
        )
        await tx.execute(
            _STORE_ANSWER,
            {"p_id": item.message_id, "p_content": outcome.text, "p_status": outcome.status},
        )
        await tx.execute(
            _STORE_GENERATION,
            {
                "p_id": item.generation_id,
                "p_status": outcome.status,
                "p_error_code": outcome.error.error_code if outcome.error else None,
                "p_error_message": outcome.error.message[:500] if outcome.error else None,
                "p_input_tokens": usage.input_tokens,
                "p_output_tokens": usage.output_tokens,
                "p_images": usage.images,
                "p_audio_seconds": usage.audio_seconds,
                "p_cost": charged,
                "p_provider_cost": cost_of(usage, item.entry.base_pricing),
                "p_latency_ms": outcome.latency_ms,
                "p_duration_ms": outcome.duration_ms,
                "p_finished_at": utcnow(),
            },
        )
    return charged


# -- following an answer from another request ---------------------------------------------------

#: How often a follower looks for more text: in memory when the answer streams in this
#: process, else in the database (where it is stored every ``partials.PARTIAL_SAVE_SECONDS``).
FOLLOW_LOCAL_SECONDS = 0.1
FOLLOW_STORED_SECONDS = 0.5


def _resume_offset(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("offset") or "0"
    try:
        return max(0, int(raw))
    except ValueError:
        raise Invalid(fields={"offset": "not a position from this stream"}) from None


async def follow_answer(request: web.Request, user_id: str, message_id: str) -> web.StreamResponse:
    """``GET /api/messages/{id}/stream``: an answer's text from the client's position
    (``Last-Event-ID`` or ``?offset=``, a character count) on, then live until it ends; the
    same events as the stream that started it. Works from any web process: an answer
    streaming elsewhere is read from its stored partial text."""
    app = request.app
    offset = _resume_offset(request)
    async with app[DB].read() as session:
        found = (
            await session.execute(
                select(Message, Generation)
                .join(Generation, Generation.message_id == Message.id)
                .join(Conversation, Conversation.id == Message.conversation_id)
                # Its events are tagged with the model: never for a blind comparison's answer.
                .where(Message.id == message_id, Message.user_id == user_id, open_to_chat())
            )
        ).first()
    if found is None:
        raise NotFound("No such answer.")
    message, generation = found
    tag = {"generation_id": generation.id, "model": generation.model_id}
    running = app[RUNNING]
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        await response.write(
            sse(
                "start",
                {
                    **tag,
                    "message_id": message.id,
                    "conversation_id": message.conversation_id,
                    "dropped_turns": generation.dropped_turns,
                    "context_policy": generation.context_policy,
                    "summary": summary_out(await load_summary(app, generation.summary_id)),
                },
            )
        )
        while True:
            live = running.texts.get(generation.id)
            if live is not None:
                text, finished = "".join(live), None
            else:
                text, finished = await _stored_answer(app, message.id, generation.id)
            if len(text) > offset:
                await response.write(
                    sse("delta", {**tag, "text": text[offset:]}, event_id=str(len(text)))
                )
                offset = len(text)
            if finished is not None:
                await _write_ending(app, response, tag, message.id, text, finished)
                break
            await asyncio.sleep(FOLLOW_LOCAL_SECONDS if live is not None else FOLLOW_STORED_SECONDS)
    except CLIENT_GONE:
        pass
    return response


async def _stored_answer(
    app: web.Application, message_id: str, generation_id: str
) -> tuple[str, Generation | None]:
    """The stored text, and the generation once it has ended (None while pending)."""
    async with app[DB].read() as session:
        text = await session.scalar(select(Message.content).where(Message.id == message_id))
        generation = await session.get(Generation, generation_id)
    assert generation is not None
    return text or "", None if generation.status == "pending" else generation


async def _write_ending(
    app: web.Application,
    response: web.StreamResponse,
    tag: dict[str, Any],
    message_id: str,
    text: str,
    generation: Generation,
) -> None:
    async with app[DB].read() as session:
        media = list(
            await session.scalars(
                select(MessageMedia)
                .where(MessageMedia.message_id == message_id)
                .order_by(MessageMedia.created_at)
            )
        )
    for row in media:
        await response.write(sse("media", {**tag, **_media_event(row)}))
    if generation.error_code:
        await response.write(
            sse(
                "error",
                {**tag, "code": generation.error_code, "message": generation.error_message or ""},
            )
        )
    usage = Usage(
        input_tokens=generation.input_tokens,
        output_tokens=generation.output_tokens,
        images=generation.images,
        audio_seconds=generation.audio_seconds,
    )
    payload = done_event(
        tag,
        message_id,
        generation.status,
        usage,
        generation.cost,
        generation,
        render_markdown(text),
        generation.context_policy,
    )
    await response.write(sse("done", payload, event_id=str(len(text))))
    await response.write(sse("end", {}))
    await response.write_eof()


# -- cancel and sweep ---------------------------------------------------------------------------


async def cancel_generation(app: web.Application, user_id: str, generation_id: str) -> str:
    async with app[DB].read() as session:
        generation = await session.scalar(
            select(Generation).where(Generation.id == generation_id, Generation.user_id == user_id)
        )
    if generation is None:
        raise NotFound("No such generation.")
    if generation.status != "pending":
        return generation.status
    if not app[RUNNING].cancel(generation_id):
        # It streams in another web process: tell every process.
        await app[BUS].publish(CANCEL_CHANNEL, {"cancel": generation_id})
    return "stopping"


async def on_cancel_message(app: web.Application, message: dict[str, Any]) -> None:
    generation_id = message.get("cancel")
    if isinstance(generation_id, str):
        app[RUNNING].cancel(generation_id)


#: The sweep runs every minute and keeps watching (up to this long) the answers that might
#: still turn out orphaned, so each is settled as soon as it has been silent long enough
#: rather than at the next run: within 30-45 s of its process dying.
SWEEP_WAIT_SECONDS = 45.0


async def settle_stale_generations(
    app: web.Application,
    *,
    orphaned_after: float = ORPHANED_AFTER_SECONDS,
    wait: float = SWEEP_WAIT_SECONDS,
) -> int:
    """Finish generations a killed process left pending, within a minute of its death.

    A streaming answer stores its text and a heartbeat (its duration so far) every few
    seconds; one silent for ``orphaned_after`` seconds belongs to a process that is gone. Its
    stored text is kept, its reservation is settled to what was delivered (that text counted
    offline, and the prompt), and it is marked failed ("interrupted"). Holds whose answer
    rows were never written (the process died right after the hold) are released. Idempotent."""
    settled = await release_orphaned_holds(app, orphaned_after=orphaned_after)
    deadline = time.monotonic() + wait
    while True:
        now = utcnow()
        async with app[DB].read() as session:
            pending = list(
                await session.scalars(select(Generation).where(Generation.status == "pending"))
            )
        soonest: float | None = None
        for generation in pending:
            if generation.id in app[RUNNING].tasks:
                continue  # streaming in this process: alive
            alive_at = generation.created_at + timedelta(milliseconds=generation.duration_ms or 0)
            silent = (now - alive_at).total_seconds()
            if silent >= orphaned_after:
                settled += await retrying(
                    functools.partial(_settle_orphan, app, generation), "settle_orphan"
                )
            else:  # alive elsewhere, or dead and not yet known to be: look again then
                left = orphaned_after - silent
                soonest = left if soonest is None else min(soonest, left)
        if soonest is None or time.monotonic() + soonest > deadline:
            return settled
        await asyncio.sleep(soonest + 0.05)


async def release_orphaned_holds(
    app: web.Application, *, orphaned_after: float = ORPHANED_AFTER_SECONDS
) -> int:
    """Release the answers' holds (``gen:<id>``) older than ``orphaned_after`` seconds that have
    no generation row: ``_hold`` committed them and the process died before ``_store_plan``
    wrote the rows. Nothing was delivered, so nothing is charged and no ledger entry is written
    (the balance does not move; the reservation keeps its reference, settled at 0). Each is
    released exactly once, whichever sweep reaches it first; returns how many this call did."""
    cutoff = utcnow() - timedelta(seconds=orphaned_after)
    async with app[DB].read() as session:
        references = list(
            await session.scalars(
                select(Reservation.reference).where(
                    Reservation.settled_at.is_(None),
                    Reservation.created_at < cutoff,
                    Reservation.reference.like("gen:%"),
                    ~exists().where(Generation.id == func.substr(Reservation.reference, 5)),
                )
            )
        )
    released = 0
    for reference in references:
        async with app[DB].transaction() as session:
            if await wallet.release_in(session, reference):
                released += 1
                log.warning("orphaned_hold_released", reference=reference)
    return released


INTERRUPTED = "interrupted"
#: The ledger's reason for an answer of a blind comparison (instead of the model's name).
SEALED_REASON = "Blind comparison answer"
INTERRUPTED_MESSAGE = "The server stopped while this answer was streaming."


async def _settle_orphan(app: web.Application, generation: Generation) -> int:
    async with app[DB].transaction() as session:
        connection = await session.connection()
        text = (
            await connection.scalar(
                select(Message.content).where(Message.id == generation.message_id)
            )
            or ""
        )
        usage = complete_usage(Usage(), text, generation.input_tokens)
        cost = cost_of(usage, Pricing(**(generation.pricing or {})))
        sealed = (
            await connection.scalar(
                select(Conversation.tool).where(Conversation.id == generation.conversation_id)
            )
            == SEALED_TOOL
        )
        try:
            charged = await wallet.settle_in(
                session,
                f"gen:{generation.id}",
                cost,
                reason=f"{SEALED_REASON if sealed else generation.model_id} (interrupted)",
            )
        except NotFound:  # no hold to settle (already gone): the answer is still finished
            charged = 0
        ended = await connection.execute(
            update(Generation)
            .where(Generation.id == generation.id, Generation.status == "pending")
            .values(
                status="failed",
                error_code=INTERRUPTED,
                error_message=INTERRUPTED_MESSAGE,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cost=charged,
                finished_at=utcnow(),
            )
        )
        await connection.execute(
            update(Message)
            .where(Message.id == generation.message_id, Message.status == "pending")
            .values(status="failed")
        )
        if ended.rowcount:  # published once this commits; not again by a concurrent sweep
            stage(
                session,
                GENERATION_FAILED.of(
                    generation.user_id,
                    GenerationFailed(
                        generation_id=generation.id,
                        message_id=generation.message_id,
                        conversation_id=generation.conversation_id,
                        model="" if sealed else generation.model_id,
                        blind=sealed,
                        error_code=INTERRUPTED,
                        error_message=INTERRUPTED_MESSAGE,
                        cost=charged,
                    ),
                ),
            )
    if ended.rowcount:
        log.warning(
            "generation_interrupted_settled",
            generation=generation.id,
            output_tokens=usage.output_tokens,
            cost=charged,
        )
    return int(ended.rowcount or 0)


def decode_attachments(raw: list[Any]) -> list[Attachment]:
    attachments = []
    for index, item in enumerate(raw):
        try:
            data = base64.b64decode(item.data, validate=True)
        except (ValueError, TypeError):
            raise Invalid(fields={f"attachments.{index}.data": "not valid base64"}) from None
        attachments.append(Attachment(item.media_type, data, item.name or ""))
    return attachments
