"""Tags and a one-line summary suggested for a note by a cheap model.

A suggestion is queued when an answer (or a comparison) is saved as a note, unless an admin
switched suggestions off for the instance or the owner switched off automatic ones, and on demand
for any note (``request``). It runs as a background task (``SUGGEST_TASK``), so saving never
waits for a model; it is charged to the note's owner through the wallet (hold, call, settle,
ledger reference ``note-suggestion:<run id>``). Conversation titles cost nothing because no model
writes them (the first prompt's first line does); a suggestion does use a model, so it is billed
like an answer. A failure (no model, no credits, the provider failing, an answer that is not the
JSON asked for) marks the suggestion failed and leaves the note as it was.

The owner then accepts the suggestion as it is or edited (``save_details``), or dismisses it;
accepted tags and summary live in ``note_details`` and show in the note list.
"""

from __future__ import annotations

import json
import re
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.app_settings import get_setting, set_setting
from multinotes.assist import cheap
from multinotes.assist.models import AssistPreference, NoteDetails, NoteSuggestion, details_out
from multinotes.db import Database, new_id, rows_affected, utcnow
from multinotes.domain_events import NOTE_CREATED, DomainEvent, EventBus
from multinotes.errors import AppError, Conflict, Invalid, PaymentRequired
from multinotes.keys import DB, TASKS
from multinotes.notes.models import Document
from multinotes.notes.service import get_document
from multinotes.plugin_host import TaskDef
from multinotes.providers import ChatMessage
from multinotes.wallet import service as wallet

log = structlog.get_logger(__name__)

SUGGEST_TASK = "core.suggest_note_details"
INSTANCE_SETTING = "assist.note_suggestions"
#: Sources of a new note that get a suggestion without being asked.
AUTOMATIC_SOURCES = ("answer", "comparison")
MAX_TAGS = 10
SUGGESTED_TAGS = 5
TAG_LENGTH = 40
SUMMARY_LENGTH = 200
#: Characters of a note the model reads (a summary needs the gist, not every word).
NOTE_EXCERPT = 6000
REASON = "Tags and summary for a note"

INSTRUCTIONS = (
    "You label notes. Reply with one JSON object and nothing else: "
    '{"tags": [up to 5 short lowercase topic tags], "summary": "one sentence of at most '
    f'{SUMMARY_LENGTH} characters saying what the note is about"}}.'
)


# -- switches -----------------------------------------------------------------------------------


async def instance_enabled(db: Database) -> bool:
    """Whether suggestions run on this instance at all (an admin's switch; default on)."""
    return await get_setting(db, INSTANCE_SETTING) is not False


async def set_instance_enabled(db: Database, on: bool) -> None:
    await set_setting(db, INSTANCE_SETTING, bool(on))


async def automatic_for(db: Database, user_id: str) -> bool:
    """Whether saving an answer as a note suggests tags for this user (their switch; default
    off: a suggestion is paid for, and saving a note must not spend credits nobody asked to
    spend)."""
    async with db.read() as session:
        row = await session.get(AssistPreference, user_id)
    return row is not None and row.note_suggestions


async def set_automatic(db: Database, user_id: str, on: bool) -> None:
    async with db.transaction() as session:
        row = await session.get(AssistPreference, user_id)
        if row is None:
            session.add(AssistPreference(user_id=user_id, note_suggestions=on, updated_at=utcnow()))
        else:
            row.note_suggestions, row.updated_at = on, utcnow()


# -- tags and summaries -------------------------------------------------------------------------


def clean_tag(tag: str) -> str:
    """A tag as stored: lowercase words joined by single spaces, no leading '#'."""
    return " ".join(str(tag).replace("#", " ").lower().split())[:TAG_LENGTH].strip()


def clean_summary(summary: str) -> str:
    return " ".join(str(summary).split())[:SUMMARY_LENGTH].strip()


def checked_tags(tags: list[str]) -> list[str]:
    """The owner's tags, cleaned and deduplicated in order; ``Invalid`` naming a bad one."""
    seen: list[str] = []
    for index, raw in enumerate(tags):
        tag = clean_tag(raw)
        if not tag:
            raise Invalid("A tag cannot be blank.", fields={f"tags.{index}": "must not be blank"})
        if len(" ".join(str(raw).split())) > TAG_LENGTH:
            raise Invalid(
                "A tag is too long.", fields={f"tags.{index}": f"at most {TAG_LENGTH} characters"}
            )
        if tag not in seen:
            seen.append(tag)
    if len(seen) > MAX_TAGS:
        raise Invalid("Too many tags.", fields={"tags": f"at most {MAX_TAGS}"})
    return seen


def parse_suggestion(text: str) -> tuple[list[str], str]:
    """Tags and summary from the model's reply: the JSON object in it (models like to wrap it
    in a code fence). ``ValueError`` when there is none or it holds neither."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match is None:
        raise ValueError("no JSON object")
    data = json.loads(match.group(0))
    if not isinstance(data, dict):
        raise ValueError("not an object")
    raw_tags = data.get("tags") or []
    if isinstance(raw_tags, str):
        raw_tags = raw_tags.split(",")
    tags: list[str] = []
    for raw in raw_tags if isinstance(raw_tags, list) else []:
        tag = clean_tag(str(raw))
        if tag and tag not in tags:
            tags.append(tag)
    summary = clean_summary(str(data.get("summary") or ""))
    if not tags and not summary:
        raise ValueError("no tags and no summary")
    return tags[:SUGGESTED_TAGS], summary


async def details_for(db: Database, user_id: str, document_ids: list[str]) -> dict[str, Any]:
    """Accepted tags and summary per note id (notes without any are absent)."""
    if not document_ids:
        return {}
    async with db.read() as session:
        rows = await session.scalars(
            select(NoteDetails).where(
                NoteDetails.user_id == user_id, NoteDetails.document_id.in_(document_ids)
            )
        )
        return {row.document_id: details_out(row) for row in rows}


async def get_details(db: Database, user_id: str, document_id: str) -> dict[str, Any]:
    await get_document(db, user_id, document_id)  # 404 for anyone else's
    async with db.read() as session:
        return details_out(await session.get(NoteDetails, document_id))


async def save_details(
    db: Database, user_id: str, document_id: str, tags: list[str], summary: str
) -> dict[str, Any]:
    """Store the owner's tags and summary (a suggestion accepted, edited, or written by hand);
    a suggestion waiting for the owner is marked accepted."""
    tags, summary = checked_tags(tags), clean_summary(summary)
    await get_document(db, user_id, document_id)
    async with db.transaction() as session:
        row = await session.get(NoteDetails, document_id)
        if row is None:
            session.add(
                NoteDetails(
                    document_id=document_id,
                    user_id=user_id,
                    tags=tags,
                    summary=summary,
                    updated_at=utcnow(),
                )
            )
        else:
            row.tags, row.summary, row.updated_at = tags, summary, utcnow()
        await session.execute(
            update(NoteSuggestion)
            .where(NoteSuggestion.document_id == document_id, NoteSuggestion.status == "ready")
            .values(status="accepted", updated_at=utcnow())
        )
    return {"tags": tags, "summary": summary}


# -- suggestions --------------------------------------------------------------------------------


def suggestion_out(row: NoteSuggestion | None) -> dict[str, Any]:
    if row is None:
        return {
            "status": "none",
            "tags": [],
            "summary": "",
            "model": None,
            "cost": 0,
            "error": None,
            "updated_at": None,
        }
    return {
        "status": row.status,
        "tags": list(row.tags or []),
        "summary": row.summary,
        "model": row.model_id,
        "cost": row.cost,
        "error": row.error,
        "updated_at": row.updated_at,
    }


async def get_suggestion(db: Database, user_id: str, document_id: str) -> dict[str, Any]:
    await get_document(db, user_id, document_id)
    async with db.read() as session:
        return suggestion_out(await session.get(NoteSuggestion, document_id))


def _messages(document: Document) -> list[ChatMessage]:
    excerpt = document.content[:NOTE_EXCERPT]
    return [
        ChatMessage(role="system", content=INSTRUCTIONS),
        ChatMessage(role="user", content=f"Title: {document.title}\n\n{excerpt}"),
    ]


async def request(app: web.Application, user_id: str, document_id: str) -> dict[str, Any]:
    """Queue a suggestion for one of the user's notes (replacing any earlier one). Refused up
    front when suggestions are off (409 ``suggestions_off``), no text model is usable (409
    ``no_model``) or the wallet cannot cover the most it can cost (402): nothing is queued."""
    db = app[DB]
    document = await get_document(db, user_id, document_id)
    if not await instance_enabled(db):
        raise Conflict("An administrator switched note suggestions off.", code="suggestions_off")
    entry = await cheap.pick_model(app)
    if (await wallet.balance(db, user_id)).available < cheap.most_it_costs(
        entry, _messages(document)
    ):
        raise PaymentRequired(code="insufficient_credits")
    return await _queue(app, user_id, document_id)


async def _queue(app: web.Application, user_id: str, document_id: str) -> dict[str, Any]:
    run_id = new_id()
    async with app[DB].transaction() as session:
        row = await session.get(NoteSuggestion, document_id)
        fresh: dict[str, Any] = {
            "run_id": run_id,
            "status": "pending",
            "tags": [],
            "summary": "",
            "model_id": None,
            "cost": 0,
            "error": None,
            "updated_at": utcnow(),
        }
        if row is None:
            row = NoteSuggestion(document_id=document_id, user_id=user_id, **fresh)
            session.add(row)
        else:
            for name, value in fresh.items():
                setattr(row, name, value)
    await app[TASKS].enqueue(SUGGEST_TASK, document_id=document_id, run_id=run_id)
    return suggestion_out(row)


async def dismiss(db: Database, user_id: str, document_id: str) -> dict[str, Any]:
    """Forget the suggestion (a running one's result is dropped when it arrives)."""
    await get_document(db, user_id, document_id)
    async with db.transaction() as session:
        await session.execute(
            update(NoteSuggestion)
            .where(NoteSuggestion.document_id == document_id, NoteSuggestion.user_id == user_id)
            .values(status="dismissed", updated_at=utcnow())
        )
        return suggestion_out(await session.get(NoteSuggestion, document_id))


async def _finish(session: AsyncSession, document_id: str, run_id: str, **values: Any) -> bool:
    """Store a run's outcome if it is still the note's current, undismissed run."""
    result = await session.execute(
        update(NoteSuggestion)
        .where(
            NoteSuggestion.document_id == document_id,
            NoteSuggestion.run_id == run_id,
            NoteSuggestion.status == "pending",
        )
        .values(**values, updated_at=utcnow())
    )
    return bool(rows_affected(result))


async def run_suggestion(app: web.Application, document_id: str, run_id: str) -> str:
    """The task: ask the cheap model, store its tags and summary as the note's suggestion.
    Returns the status it ended in."""
    db = app[DB]
    async with db.read() as session:
        row = await session.get(NoteSuggestion, document_id)
        document = await session.get(Document, document_id)
    if row is None or row.run_id != run_id or row.status != "pending":
        return "superseded"
    if document is None or document.deleted_at is not None:
        async with db.transaction() as session:
            await _finish(session, document_id, run_id, status="failed", error="The note is gone.")
        return "failed"
    model_id: str | None = None
    try:
        entry = await cheap.pick_model(app)
        model_id = entry.id
        text, cost = await cheap.ask(
            app,
            row.user_id,
            entry,
            _messages(document),
            reference=f"note-suggestion:{run_id}",
            reason=REASON,
        )
    except AppError as exc:
        log.info("note_suggestion_failed", document_id=document_id, code=exc.error_code)
        async with db.transaction() as session:
            await _finish(
                session,
                document_id,
                run_id,
                status="failed",
                model_id=model_id,
                error=exc.message[:300],
            )
        return "failed"
    try:
        tags, summary = parse_suggestion(text)
    except ValueError:
        async with db.transaction() as session:
            await _finish(
                session,
                document_id,
                run_id,
                status="failed",
                model_id=model_id,
                cost=cost,
                error="The model's answer could not be read as tags and a summary.",
            )
        return "failed"
    async with db.transaction() as session:
        stored = await _finish(
            session,
            document_id,
            run_id,
            status="ready",
            model_id=model_id,
            cost=cost,
            tags=tags,
            summary=summary,
        )
    return "ready" if stored else "superseded"


async def suggest_note_details(app: web.Application, document_id: str, run_id: str) -> None:
    try:
        await run_suggestion(app, document_id, run_id)
    except Exception:  # the note stays as it was; the suggestion says it failed
        log.exception("note_suggestion_crashed", document_id=document_id)
        async with app[DB].transaction() as session:
            await _finish(session, document_id, run_id, status="failed", error="Suggesting failed.")


def assist_tasks() -> list[TaskDef]:
    return [TaskDef("core", SUGGEST_TASK, suggest_note_details, None)]


# -- reacting to notes --------------------------------------------------------------------------


async def on_note_created(app: web.Application, event: DomainEvent) -> None:
    """A saved answer or comparison gets a suggestion when the instance and its owner want
    one and it can be paid for now; otherwise nothing happens (saving never fails for it)."""
    source = event.payload.get("source")
    note_id = event.payload.get("note_id")
    if event.user_id is None or source not in AUTOMATIC_SOURCES or not note_id:
        return
    db = app[DB]
    if not await instance_enabled(db) or not await automatic_for(db, event.user_id):
        return
    try:
        await request(app, event.user_id, note_id)
    except AppError as exc:  # no model, no credits, a note deleted meanwhile
        log.info("note_suggestion_skipped", note_id=note_id, code=exc.error_code)


def subscribe(bus: EventBus) -> None:
    bus.subscribe(NOTE_CREATED, on_note_created)
