"""What an exporter is handed: ``ExportDocument``s built from notes, conversations and
messages as one person sees them.

Every loader takes the id of the person exporting and goes through ``multinotes.sharing.access``
like reading does: the owner and the people a note (or a folder above it, or a conversation) is
shared with may export it; anyone else gets the same ``NotFound`` as for an id that does not
exist. Images are the user's files the note shows (``/api/files/<id>/content``) that this person
may read, PNG, JPEG, GIF or WebP only, within ``MAX_IMAGE_BYTES`` per export.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.chat import service as chat
from multinotes.chat.models import Message
from multinotes.db import Database
from multinotes.errors import NotFound
from multinotes.exporters import (
    ExportAnswer,
    ExportDocument,
    ExportImage,
    ExportMessage,
    ExportSource,
    Provenance,
)
from multinotes.notes.models import Document
from multinotes.sharing import access
from multinotes.storage import objects
from multinotes.storage.backend import Storage

#: Images embedded in one exported note, at most (more are shown as links).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
#: The addresses by which a note shows one of the user's files.
FILE_SRC = re.compile(r"\(\s*<?(/api/files/([0-9A-Za-z_-]{1,64})/(?:content|preview))>?")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def source_of(item: dict[str, Any]) -> ExportSource:
    return ExportSource(
        model=str(item.get("model") or "unknown model"),
        provider=item.get("provider") or None,
        input_tokens=_int(item.get("input_tokens")),
        output_tokens=_int(item.get("output_tokens")),
        cost=_int(item.get("cost")),
        created_at=_parse_time(item.get("created_at")),
    )


def provenance_of(document: Document, base_url: str) -> Provenance | None:
    saved = document.provenance or {}
    if not saved:
        return None
    conversation = saved.get("conversation_id")
    return Provenance(
        prompt=saved.get("prompt") or None,
        sources=tuple(source_of(s) for s in saved.get("sources", []) if isinstance(s, dict)),
        saved_at=_parse_time(saved.get("saved_at")),
        link=f"{base_url}/notes/{document.id}",
        conversation_link=f"{base_url}/chat/{conversation}" if conversation else None,
    )


def metadata_of(provenance: Provenance | None, link: str) -> dict[str, str]:
    """The first contract's string metadata, for exporters written against it."""
    metadata = {"link": link}
    if provenance is not None:
        if provenance.prompt:
            metadata["prompt"] = provenance.prompt
        if provenance.models:
            metadata["model"] = ", ".join(provenance.models)
        if provenance.saved_at is not None:
            metadata["saved_at"] = provenance.saved_at.isoformat()
    return metadata


async def images_in(
    db: Database, storage: Storage, user_id: str, markdown: str
) -> dict[str, ExportImage]:
    """The images of the user's files that ``markdown`` shows and ``user_id`` may read."""
    found: dict[str, ExportImage] = {}
    budget = MAX_IMAGE_BYTES
    for src, file_id in dict(FILE_SRC.findall(markdown)).items():
        try:
            row, _ = await access.file(db, user_id, file_id)
        except NotFound:
            continue  # not theirs to see: the exporter shows a link, which stays closed to them
        if row.content_type not in IMAGE_TYPES or row.size > budget:
            continue
        try:
            data = await objects.read_bytes(storage, row.storage_key)
        except NotFound:
            continue
        budget -= len(data)
        found[src] = ExportImage(src, data, row.content_type, row.name, file_id=row.id)
    return found


async def _answers(
    session: AsyncSession, document: Document, provenance: Provenance | None
) -> tuple[ExportAnswer, ...]:
    """A saved comparison's answers, from the messages it was saved from (while they exist)."""
    saved = document.provenance or {}
    found = [s.get("message_id") for s in saved.get("sources", []) if isinstance(s, dict)]
    ids = [i for i in found if isinstance(i, str)]
    if not ids or provenance is None:
        return ()
    rows = await session.scalars(
        select(Message).where(Message.id.in_(ids), Message.user_id == document.user_id)
    )
    by_id = {m.id: m for m in rows}
    answers = []
    for message_id, source in zip(ids, provenance.sources, strict=False):
        message = by_id.get(message_id)
        if message is not None:
            answers.append(ExportAnswer(source.model, message.content, source))
    return tuple(answers)


async def document_export(
    db: Database,
    storage: Storage,
    user_id: str,
    document_id: str,
    base_url: str,
    folder_path: tuple[str, ...] = (),
) -> ExportDocument:
    """A note as ``user_id`` may read it (NotFound otherwise)."""
    async with db.read() as session:
        document, _ = await access.document_in(session, user_id, document_id)
        provenance = provenance_of(document, base_url)
        saved_kind = (document.provenance or {}).get("kind")
        kind: Literal["comparison", "note"] = "comparison" if saved_kind == "comparison" else "note"
        answers = await _answers(session, document, provenance) if kind == "comparison" else ()
    link = f"{base_url}/notes/{document.id}"
    return ExportDocument(
        title=document.title,
        markdown=document.content,
        metadata=metadata_of(provenance, link),
        kind=kind,
        provenance=provenance,
        images=await images_in(db, storage, user_id, document.content),
        answers=answers,
        link=link,
        folder_path=folder_path,
        created_at=document.created_at,
        updated_at=document.updated_at,
    )


def newest_per_model(answers: list[Message]) -> list[Message]:
    """One of a prompt's ``answers`` (oldest first) per model, in the order the models first
    answered: the newest of its regenerations, which the workspace shows in that model's column
    until one picks another."""
    chosen: dict[str, Message] = {}
    for answer in answers:
        chosen[answer.model_id or answer.id] = answer
    order = dict.fromkeys(a.model_id or a.id for a in answers)
    return [chosen[key] for key in order]


def _role(role: str) -> Any:
    return role if role in ("user", "assistant", "system") else "assistant"


def _branch_markdown(messages: list[Message]) -> str:
    parts = []
    for message in messages:
        who = "You" if message.role == "user" else (message.model_id or message.role)
        parts.append(f"## {who}\n\n{message.content.strip()}")
    return "\n\n".join(parts) + "\n"


async def conversation_export(
    db: Database,
    storage: Storage,
    user_id: str,
    conversation_id: str,
    base_url: str,
    leaf_id: str | None = None,
) -> ExportDocument:
    """A conversation's branch: from its first message down to ``leaf_id`` (default: its
    newest message). A prompt as the leaf brings its models' answers to it, one per model (a
    comparison, laid out side by side)."""
    _, rights = await access.conversation(db, user_id, conversation_id)
    tree = await chat.load_tree(db, rights.owner_id, conversation_id)
    messages = tree.messages
    if not messages:
        raise NotFound("This conversation has no messages yet.")
    leaf = leaf_id or max(messages, key=lambda m: (m.created_at, m.id)).id
    branch = chat.path_to(messages, leaf)
    if not branch:
        raise NotFound("No such message.")
    answers: list[Message] = []
    if branch[-1].role == "user":
        answers = newest_per_model(
            [m for m in messages if m.parent_id == branch[-1].id and m.role == "assistant"]
        )
    sources = {
        m.id: ExportSource(
            model=g.model_id,
            provider=g.provider_id,
            input_tokens=g.input_tokens or 0,
            output_tokens=g.output_tokens or 0,
            cost=g.cost or 0,
            created_at=m.created_at,
        )
        for m in [*branch, *answers]
        if (g := tree.generations.get(m.id)) is not None
    }
    link = f"{base_url}/chat/{conversation_id}"
    everything = [*branch, *answers]
    markdown = _branch_markdown(everything)
    prompt = branch[-1] if branch[-1].role == "user" else None
    if prompt is None and len(branch) > 1 and branch[-2].role == "user":
        prompt = branch[-2]
    provenance = Provenance(
        prompt=prompt.content if prompt else None,
        sources=tuple(sources[m.id] for m in everything if m.id in sources),
        link=link,
        conversation_link=link,
    )
    return ExportDocument(
        title=tree.conversation.title or "Conversation",
        markdown=markdown,
        metadata=metadata_of(provenance, link),
        kind="comparison" if answers else "conversation",
        provenance=provenance,
        images=await images_in(db, storage, user_id, markdown),
        answers=tuple(
            ExportAnswer(m.model_id or "answer", m.content, sources.get(m.id)) for m in answers
        ),
        messages=tuple(
            ExportMessage(_role(m.role), m.content, m.model_id, m.created_at) for m in everything
        ),
        link=link,
        created_at=tree.conversation.created_at,
    )


async def message_export(
    db: Database, storage: Storage, user_id: str, message_id: str, base_url: str
) -> ExportDocument:
    """The branch of a conversation that ends at one message (see ``conversation_export``)."""
    async with db.read() as session:
        conversation_id = await session.scalar(
            select(Message.conversation_id).where(Message.id == message_id)
        )
    if conversation_id is None:
        raise NotFound("No such message.")
    try:
        return await conversation_export(
            db, storage, user_id, conversation_id, base_url, leaf_id=message_id
        )
    except NotFound:
        raise NotFound("No such message.") from None
