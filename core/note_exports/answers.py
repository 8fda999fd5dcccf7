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

from multinotes.chat.models import Generation, Message, MessageMedia
from multinotes.chat.service import title_from_prompt
from multinotes.db import Database
from multinotes.errors import Invalid, NotFound
from multinotes.exporters import (
    ExportAnswer,
    ExportDocument,
    ExportImage,
    ExportMessage,
    ExportSource,
    Provenance,
)
from multinotes.keys import DB
from multinotes.note_exports import documents as build
from multinotes.note_exports import service
from multinotes.sharing import access
from multinotes.storage import objects


@dataclass(frozen=True)
class Turn:
    """A prompt and its answers as the person exporting may read them."""

    conversation_id: str
    prompt: Message | None
    answers: list[Message]
    generations: dict[str, Generation]
    #: The images each answer generated (an image model's answer has little else).
    media: dict[str, list[MessageMedia]]


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
        ids = [a.id for a in answers]
        generations = {
            g.message_id: g
            for g in await session.scalars(select(Generation).where(Generation.message_id.in_(ids)))
        }
        media: dict[str, list[MessageMedia]] = {}
        for item in await session.scalars(
            select(MessageMedia)
            .where(
                MessageMedia.message_id.in_(ids),
                MessageMedia.media_type.in_(sorted(build.IMAGE_TYPES)),
            )
            .order_by(MessageMedia.created_at, MessageMedia.id)
        ):
            media.setdefault(item.message_id, []).append(item)
    if prompt is not None and prompt.role != "user":
        prompt = None
    return message, Turn(message.conversation_id, prompt, answers, generations, media)


async def _with_media(
    storage: build.Storage, turn: Turn, answers: list[Message]
) -> tuple[dict[str, str], dict[str, ExportImage]]:
    """Each answer's Markdown with the images it generated shown below its text
    (``/api/media/<id>``, as the workspace serves them), and those images' bytes, within the
    export's image budget (past it, an image stays a link)."""
    markdown: dict[str, str] = {}
    images: dict[str, ExportImage] = {}
    budget = build.MAX_IMAGE_BYTES
    for answer in answers:
        parts = [answer.content.strip()]
        for item in turn.media.get(answer.id, []):
            src = f"/api/media/{item.id}"
            parts.append(f"![{item.name}]({src})")
            if item.size > budget:
                continue
            try:
                data = await objects.read_bytes(storage, objects.key_of(item.path))
            except NotFound:  # its file is gone: the image stays a link
                continue
            budget -= len(data)
            images[src] = ExportImage(src, data, item.media_type, item.name)
        markdown[answer.id] = "\n\n".join(p for p in parts if p)
    return markdown, images


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
    markdown, generated = await _with_media(storage, turn, [answer])
    return ExportDocument(
        title=title,
        markdown=markdown[answer.id],
        metadata=build.metadata_of(provenance, link),
        kind="note",
        provenance=provenance,
        images={**await build.images_in(db, storage, user_id, answer.content), **generated},
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
    texts, generated = await _with_media(storage, turn, answers)
    sections = [f"## You\n\n{prompt.content.strip()}"]
    sections += [f"## {s.model}\n\n{texts[a.id]}" for a, s in zip(answers, sources, strict=True)]
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
        images={**await build.images_in(db, storage, user_id, markdown), **generated},
        answers=tuple(
            ExportAnswer(s.model, texts[a.id], s) for a, s in zip(answers, sources, strict=True)
        ),
        messages=(
            ExportMessage("user", prompt.content, created_at=prompt.created_at),
            *(
                ExportMessage("assistant", texts[a.id], s.model, a.created_at)
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
