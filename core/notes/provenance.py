"""Answers saved as notes, and where they came from.

A document's ``provenance`` JSON is ``{"kind": "answer"|"comparison", "conversation_id",
"prompt_message_id", "prompt", "sources": [source, ...], "reruns": [rerun, ...]}``; a source is
one answer: message id, model, provider, options, tokens, cost, latency, duration, created_at. A
rerun lists the message ids of the answers a re-run produced, so they can be shown beside the
saved ones.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.chat.models import Generation, Message
from multinotes.chat.service import title_from_prompt
from multinotes.db import Database, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.notes.models import Document
from multinotes.notes.service import create_document


def source_of(message: Message, generation: Generation | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "message_id": message.id,
        "model": message.model_id,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
        "provider": None,
        "options": {},
        "input_tokens": 0,
        "output_tokens": 0,
        "cost": 0,
        "latency_ms": None,
        "duration_ms": None,
    }
    if generation is not None:
        out.update(
            generation_id=generation.id,
            model=generation.model_id,
            provider=generation.provider_id,
            options=generation.options,
            input_tokens=generation.input_tokens,
            output_tokens=generation.output_tokens,
            cost=generation.cost,
            latency_ms=generation.latency_ms,
            duration_ms=generation.duration_ms,
        )
    return out


async def _owned_message(session: AsyncSession, user_id: str, message_id: str) -> Message:
    message = await session.scalar(
        select(Message).where(Message.id == message_id, Message.user_id == user_id)
    )
    if message is None:
        raise NotFound("No such message.")
    return message


async def _generations(session: AsyncSession, messages: list[Message]) -> dict[str, Generation]:
    if not messages:
        return {}
    rows = await session.scalars(
        select(Generation).where(Generation.message_id.in_([m.id for m in messages]))
    )
    return {g.message_id: g for g in rows}


def _provenance(
    kind: str, prompt: Message | None, conversation_id: str, sources: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "kind": kind,
        "conversation_id": conversation_id,
        "prompt_message_id": prompt.id if prompt else None,
        "prompt": prompt.content if prompt else None,
        "saved_at": utcnow().isoformat(),
        "sources": sources,
        "reruns": [],
    }


async def save_answer(
    db: Database, user_id: str, message_id: str, folder_id: str | None, title: str | None = None
) -> Document:
    """Save one of the user's answers as a note (``title``: the prompt's first line unless
    given)."""
    async with db.read() as session:
        answer = await _owned_message(session, user_id, message_id)
        if answer.role != "assistant":
            raise NotFound("No such answer.")
        prompt = await session.get(Message, answer.parent_id) if answer.parent_id else None
        generation = (await _generations(session, [answer])).get(answer.id)
    if title is None:
        title = title_from_prompt(prompt.content) if prompt and prompt.content else "Saved answer"
    provenance = _provenance(
        "answer", prompt, answer.conversation_id, [source_of(answer, generation)]
    )
    return await create_document(
        db,
        user_id,
        title=title,
        content=answer.content,
        folder_id=folder_id,
        provenance=provenance,
        source="answer",
    )


async def save_comparison(
    db: Database, user_id: str, prompt_id: str, folder_id: str | None
) -> Document:
    """Save every model's answer to one prompt as one note, a section per model."""
    async with db.read() as session:
        prompt = await _owned_message(session, user_id, prompt_id)
        if prompt.role != "user":
            raise NotFound("No such prompt.")
        answers = list(
            await session.scalars(
                select(Message)
                .where(
                    Message.parent_id == prompt.id,
                    Message.user_id == user_id,
                    Message.role == "assistant",
                )
                .order_by(Message.created_at, Message.id)
            )
        )
        generations = await _generations(session, answers)
    if not answers:
        raise Invalid("This prompt has no answers to save yet.", code="no_answers")
    title = title_from_prompt(prompt.content) if prompt.content else "Saved comparison"
    sections = [f"> {line}" if line else ">" for line in prompt.content.splitlines()]
    parts = ["\n".join(sections)]
    for answer in answers:
        parts.append(f"## {answer.model_id or 'Answer'}\n\n{answer.content}")
    provenance = _provenance(
        "comparison",
        prompt,
        prompt.conversation_id,
        [source_of(a, generations.get(a.id)) for a in answers],
    )
    return await create_document(
        db,
        user_id,
        title=title,
        content="\n\n".join(parts) + "\n",
        folder_id=folder_id,
        provenance=provenance,
        source="comparison",
    )


async def rerun_source(
    db: Database, user_id: str, document_id: str
) -> tuple[Document, Message, list[str]]:
    """What a re-run of a note needs: its prompt message and original models."""
    async with db.read() as session:
        document = await session.scalar(
            select(Document).where(
                Document.id == document_id,
                Document.user_id == user_id,
                Document.deleted_at.is_(None),
            )
        )
        if document is None:
            raise NotFound("No such document.")
        provenance = document.provenance or {}
        prompt_id = provenance.get("prompt_message_id")
        prompt = (
            await session.scalar(
                select(Message).where(Message.id == prompt_id, Message.user_id == user_id)
            )
            if prompt_id
            else None
        )
    if not provenance:
        raise Invalid(
            "Only a note saved from an answer can be re-run.",
            code="no_provenance",
            fields={"id": "this note was not saved from an answer"},
        )
    if prompt is None:  # its messages go with a deleted conversation
        raise Invalid(
            "The conversation this note came from was deleted, so it cannot be re-run.",
            code="source_gone",
        )
    models = []
    for source in provenance.get("sources", []):
        if source.get("model") and source["model"] not in models:
            models.append(source["model"])
    return document, prompt, models


async def record_rerun(
    db: Database,
    user_id: str,
    document_id: str,
    prompt_message_id: str,
    runs: list[tuple[str, str, str]],
) -> None:
    """Link a re-run's new answers (model, message id, generation id) to the note."""
    async with db.transaction() as session:
        document = await session.scalar(
            select(Document)
            .where(Document.id == document_id, Document.user_id == user_id)
            .with_for_update()
        )
        if document is None:
            return
        provenance = dict(document.provenance or {})
        reruns = list(provenance.get("reruns", []))
        reruns.append(
            {
                "at": utcnow().isoformat(),
                "prompt_message_id": prompt_message_id,
                "answers": [
                    {"model": model, "message_id": message_id, "generation_id": generation_id}
                    for model, message_id, generation_id in runs
                ],
            }
        )
        provenance["reruns"] = reruns
        document.provenance = provenance  # a new dict, so the JSON change is seen
