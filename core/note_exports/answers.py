"""What an exporter is handed for the workspace's answers: one model's answer with where it came
from (``answer_export``), or a prompt with every model's answer to it, laid out side by side
(``comparison_export``).

Both go through ``multinotes.sharing.access`` like reading a conversation: its owner and the
people it is shared with may export its answers; anyone else gets the same ``NotFound`` as for a
message that does not exist. Unlike ``documents.message_export`` (the branch of a conversation
down to a message), these hold the one turn only: the prompt and its answer(s).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.chat.models import Generation, Message
from multinotes.chat.service import title_from_prompt
from multinotes.db import Database
from multinotes.errors import Invalid, NotFound
from multinotes.exporters import (
    ExportAnswer,
    ExportDocument,
    ExportMessage,
    ExportSource,
    Provenance,
)
from multinotes.keys import DB
from multinotes.note_exports import documents as build
from multinotes.note_exports import service
from multinotes.sharing import access


@dataclass(frozen=True)
class Turn:
    """A prompt and its answers as the person exporting may read them."""

    conversation_id: str
    prompt: Message | None
    answers: list[Message]
    generations: dict[str, Generation]


async def _turn(db: Database, user_id: str, message_id: str, role: str) -> tuple[Message, Turn]:
    """The message ``message_id`` if it has ``role``, with its turn: for an answer its prompt
    (and itself as the one answer), for a prompt all its answers."""
    missing = NotFound("No such answer." if role == "assistant" else "No such prompt.")
    async with db.read() as session:
        message = await session.scalar(select(Message).where(Message.id == message_id))
        if message is None or message.role != role:
            raise missing
        try:
            await access.conversation_in(session, user_id, message.conversation_id)
        except NotFound:
            raise missing from None
        if role == "assistant":
            prompt = (
                await session.scalar(select(Message).where(Message.id == message.parent_id))
                if message.parent_id
                else None
            )
            answers = [message]
        else:
            prompt = message
            answers = list(
                await session.scalars(
                    select(Message)
                    .where(
                        Message.parent_id == message.id,
                        Message.conversation_id == message.conversation_id,
                        Message.role == "assistant",
                    )
                    .order_by(Message.created_at, Message.id)
                )
            )
        generations = {
            g.message_id: g
            for g in await session.scalars(
                select(Generation).where(Generation.message_id.in_([a.id for a in answers]))
            )
        }
    if prompt is not None and prompt.role != "user":
        prompt = None
    return message, Turn(message.conversation_id, prompt, answers, generations)


def _source(message: Message, generation: Generation | None) -> ExportSource:
    if generation is None:
        return ExportSource(
            model=message.model_id or "unknown model", created_at=message.created_at
        )
    return ExportSource(
        model=generation.model_id,
        provider=generation.provider_id,
        input_tokens=generation.input_tokens or 0,
        output_tokens=generation.output_tokens or 0,
        cost=generation.cost or 0,
        created_at=message.created_at,
    )


async def answer_export(
    db: Database, storage: build.Storage, user_id: str, message_id: str, base_url: str
) -> ExportDocument:
    """One answer with its provenance (prompt, model, provider, tokens, cost, date, a link back
    to it in its conversation), as ``user_id`` may read it."""
    answer, turn = await _turn(db, user_id, message_id, "assistant")
    source = _source(answer, turn.generations.get(answer.id))
    chat_link = f"{base_url}/chat/{turn.conversation_id}"
    link = f"{chat_link}?leaf={answer.id}"
    prompt = turn.prompt.content if turn.prompt is not None else None
    provenance = Provenance(
        prompt=prompt or None, sources=(source,), link=link, conversation_link=chat_link
    )
    title = f"{title_from_prompt(prompt)} ({source.model})" if prompt else source.model
    return ExportDocument(
        title=title,
        markdown=answer.content,
        metadata=build.metadata_of(provenance, link),
        kind="note",
        provenance=provenance,
        images=await build.images_in(db, storage, user_id, answer.content),
        link=link,
        created_at=answer.created_at,
    )


async def comparison_export(
    db: Database, storage: build.Storage, user_id: str, prompt_id: str, base_url: str
) -> ExportDocument:
    """A prompt with every model's answer to it side by side (one per model: the newest of its
    regenerations), each with its own provenance, as ``user_id`` may read it."""
    prompt, turn = await _turn(db, user_id, prompt_id, "user")
    answers = build.newest_per_model(turn.answers)
    if not answers:
        raise Invalid(
            "This prompt has no answers to export yet.",
            code="no_answers",
            fields={"id": "this prompt has no answers"},
        )
    sources = [_source(a, turn.generations.get(a.id)) for a in answers]
    chat_link = f"{base_url}/chat/{turn.conversation_id}"
    link = f"{chat_link}?leaf={prompt.id}"
    sections = [f"## You\n\n{prompt.content.strip()}"]
    sections += [
        f"## {s.model}\n\n{a.content.strip()}" for a, s in zip(answers, sources, strict=True)
    ]
    markdown = "\n\n".join(sections) + "\n"
    provenance = Provenance(
        prompt=prompt.content or None,
        sources=tuple(sources),
        link=link,
        conversation_link=chat_link,
    )
    return ExportDocument(
        title=title_from_prompt(prompt.content) if prompt.content.strip() else "Comparison",
        markdown=markdown,
        metadata=build.metadata_of(provenance, link),
        kind="comparison",
        provenance=provenance,
        images=await build.images_in(db, storage, user_id, markdown),
        answers=tuple(
            ExportAnswer(s.model, a.content, s) for a, s in zip(answers, sources, strict=True)
        ),
        messages=(
            ExportMessage("user", prompt.content, created_at=prompt.created_at),
            *(
                ExportMessage("assistant", a.content, s.model, a.created_at)
                for a, s in zip(answers, sources, strict=True)
            ),
        ),
        link=link,
        created_at=prompt.created_at,
    )


async def export_now(
    app: web.Application,
    storage: build.Storage,
    user_id: str,
    message_id: str,
    format_id: str | None,
    raw: dict[str, Any],
    base_url: str,
    *,
    comparison: bool = False,
) -> service.Rendered:
    """An answer (``comparison``: a prompt with its answers) as a file, right away, as a note
    is (``GET /api/messages/{id}/export`` and ``.../export-comparison``). Whether the person may
    read it is checked first: to anyone else, a bad format is a 404 like any other."""
    load = comparison_export if comparison else answer_export
    document = await load(app[DB], storage, user_id, message_id, base_url)
    if not format_id:
        raise Invalid("Say which format to export to.", fields={"format": "Field required"})
    exporter = service.exporter_of(app, format_id)
    options = service.options_of(exporter, raw)
    return await service.render_file(exporter, document, options, service.cap_of(app))
