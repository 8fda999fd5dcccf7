"""Conversations and their message trees, always as seen by their owner."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, delete, func, select, update

from multinotes.chat.context import summary_out
from multinotes.chat.models import (
    ContextSummary,
    Conversation,
    Generation,
    Message,
    MessageMedia,
    ModelFavourite,
    Rating,
    open_to_chat,
)
from multinotes.db import Database, iso_utc, utc_text, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.markdown import render_markdown

TITLE_LENGTH = 60


def title_from_prompt(prompt: str) -> str:
    """A readable title from the first prompt: its first line, cut at a word boundary."""
    line = " ".join(prompt.strip().split())
    if len(line) <= TITLE_LENGTH:
        return line or "New chat"
    cut = line[:TITLE_LENGTH].rsplit(" ", 1)[0]
    return (cut or line[:TITLE_LENGTH]).rstrip(" ,.;:") + "…"


async def create_conversation(
    db: Database, user_id: str, title: str | None, tool: str | None = None
) -> Conversation:
    conversation = Conversation(
        user_id=user_id, title=(title or "").strip() or "New chat", tool=tool
    )
    async with db.transaction() as session:
        session.add(conversation)
    return conversation


async def get_conversation(
    db: Database, user_id: str, conversation_id: str, *, sealed_too: bool = False
) -> Conversation:
    """The user's conversation; a sealed one (``SEALED_TOOL``) only with ``sealed_too``, for
    the owner's own data export: to every chat path it does not exist."""
    query = select(Conversation).where(
        Conversation.id == conversation_id, Conversation.user_id == user_id
    )
    if not sealed_too:
        query = query.where(open_to_chat())
    async with db.read() as session:
        conversation = await session.scalar(query)
    if conversation is None:
        raise NotFound("No such conversation.")
    return conversation


async def list_conversations(
    db: Database,
    user_id: str,
    *,
    limit: int = 30,
    before: str | None = None,
    q: str | None = None,
    tool: str | None = None,
    pinned: bool | None = None,
    archived: bool = False,
) -> tuple[list[Conversation], str | None]:
    """Newest activity first; ``before`` is the cursor returned by the previous page.
    Archived conversations are listed only with ``archived=True`` (and then only they are);
    ``pinned`` keeps only the pinned (True) or unpinned (False) ones."""
    rows, more = await _conversation_page(
        db, select(Conversation), user_id, limit, before, q, tool, pinned, archived
    )
    conversations: list[Conversation] = [row[0] for row in rows]
    return conversations, _page_cursor(conversations[-1]) if more and rows else None


#: What the API's list of conversations shows of each (``conversation_summary``): the
#: timestamps as text and the pinned and archived marks as flags.
SUMMARY_COLUMNS = (
    Conversation.id,
    Conversation.title,
    Conversation.tool,
    utc_text(Conversation.created_at),
    utc_text(Conversation.updated_at),
    Conversation.pinned_at.is_not(None).label("pinned"),
    Conversation.archived_at.is_not(None).label("archived"),
    Conversation.context_policy,
    Conversation.organisation_id,
)


async def list_conversation_summaries(
    db: Database,
    user_id: str,
    *,
    limit: int = 30,
    before: str | None = None,
    q: str | None = None,
    tool: str | None = None,
    pinned: bool | None = None,
    archived: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    """``list_conversations`` as ``conversation_out`` dicts, read as text rows of the columns
    they show through a Core connection (no entity, no session): for the API's list."""
    rows, more = await _conversation_page(
        db, select(*SUMMARY_COLUMNS), user_id, limit, before, q, tool, pinned, archived, rows=True
    )
    summaries = [conversation_summary(row) for row in rows]
    last = summaries[-1] if more and summaries else None
    # The cursor holds the last row's naive ISO timestamp (``_page_cursor``): minus "+00:00".
    return summaries, f"{last['updated_at'][:-6]}_{last['id']}" if last else None


def conversation_summary(row: Row[Any]) -> dict[str, Any]:
    """``conversation_out`` of a row of ``SUMMARY_COLUMNS``: the same dict, to the byte."""
    return {
        "id": row.id,
        "title": row.title,
        "tool": row.tool,
        "created_at": iso_utc(row.created_at),
        "updated_at": iso_utc(row.updated_at),
        "pinned": bool(row.pinned),
        "archived": bool(row.archived),
        "context_policy": row.context_policy or "drop",
        "organisation_id": row.organisation_id,
    }


async def _conversation_page(
    db: Database,
    query: Select[Any],
    user_id: str,
    limit: int,
    before: str | None,
    q: str | None,
    tool: str | None,
    pinned: bool | None,
    archived: bool,
    *,
    rows: bool = False,
) -> tuple[list[Row[Any]], bool]:
    """A page of ``query`` (on conversations) and whether more follow; with ``rows``, read
    through a Core connection (``query`` selects columns, no entities)."""
    query = query.where(Conversation.user_id == user_id, open_to_chat())
    query = query.where(
        Conversation.archived_at.is_not(None) if archived else Conversation.archived_at.is_(None)
    )
    if pinned is not None:
        query = query.where(
            Conversation.pinned_at.is_not(None) if pinned else Conversation.pinned_at.is_(None)
        )
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Conversation.title.ilike(f"%{escaped}%", escape="\\"))
    if tool:
        query = query.where(Conversation.tool == tool)
    if before:
        stamp, _, cid = before.partition("_")
        try:
            moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
        except ValueError:
            raise Invalid("Bad cursor.", fields={"before": "not a cursor from this API"}) from None
        query = query.where(
            (Conversation.updated_at < moment)
            | ((Conversation.updated_at == moment) & (Conversation.id < cid))
        )
    query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc()).limit(limit + 1)
    if rows:
        found = await db.read_rows(query)
    else:
        async with db.read() as session:
            found = list((await session.execute(query)).all())
    return found[:limit], len(found) > limit


def _page_cursor(last: Any) -> str:
    """The ``before`` cursor after ``last`` (a conversation)."""
    return f"{last.updated_at.replace(tzinfo=None).isoformat()}_{last.id}"


async def rename_conversation(
    db: Database, user_id: str, conversation_id: str, title: str
) -> Conversation:
    return await update_conversation(db, user_id, conversation_id, title=title)


async def update_conversation(
    db: Database,
    user_id: str,
    conversation_id: str,
    *,
    title: str | None = None,
    pinned: bool | None = None,
    archived: bool | None = None,
    context_policy: str | None = None,
) -> Conversation:
    """Rename, pin or unpin, archive or unarchive, choose what happens when it outgrows a
    model's window (``None``: leave as is). None of it counts as activity: the conversation
    keeps its place by date."""
    await get_conversation(db, user_id, conversation_id)
    values: dict[str, Any] = {}
    if context_policy is not None:
        values["context_policy"] = context_policy
    if title is not None:
        values["title"] = title.strip()
    if pinned is not None:
        values["pinned_at"] = utcnow() if pinned else None
    if archived is not None:
        values["archived_at"] = utcnow() if archived else None
    if values:
        async with db.transaction() as session:
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.user_id == user_id)
                .values(**values)
            )
    return await get_conversation(db, user_id, conversation_id)


async def delete_conversation(db: Database, user_id: str, conversation_id: str) -> list[str]:
    """Delete it with everything in it; returns the paths of media files to remove."""
    await get_conversation(db, user_id, conversation_id)
    async with db.transaction() as session:
        paths = list(
            await session.scalars(
                select(MessageMedia.path)
                .join(Message, Message.id == MessageMedia.message_id)
                .where(Message.conversation_id == conversation_id)
            )
        )
        # Children first: SQLite and MySQL both honour ON DELETE CASCADE, but a self-referencing
        # tree is simplest to remove bottom-up without relying on cascade order.
        await session.execute(
            delete(Generation).where(Generation.conversation_id == conversation_id)
        )
        await session.execute(
            delete(ContextSummary).where(ContextSummary.conversation_id == conversation_id)
        )
        await session.execute(
            update(Message).where(Message.conversation_id == conversation_id).values(parent_id=None)
        )
        await session.execute(delete(Message).where(Message.conversation_id == conversation_id))
        await session.execute(delete(Conversation).where(Conversation.id == conversation_id))
    return paths


@dataclass
class Tree:
    conversation: Conversation
    messages: list[Message]
    generations: dict[str, Generation]
    media: dict[str, list[MessageMedia]]
    ratings: dict[str, Rating]
    #: Its older turns as summarised for models whose window they outgrew, by id.
    summaries: dict[str, ContextSummary] = field(default_factory=dict)


async def load_tree(
    db: Database, user_id: str, conversation_id: str, *, sealed_too: bool = False
) -> Tree:
    conversation = await get_conversation(db, user_id, conversation_id, sealed_too=sealed_too)
    async with db.read() as session:
        messages = list(
            await session.scalars(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.created_at, Message.id)
            )
        )
        generations = {
            g.message_id: g
            for g in await session.scalars(
                select(Generation).where(Generation.conversation_id == conversation_id)
            )
        }
        media: dict[str, list[MessageMedia]] = {}
        for item in await session.scalars(
            select(MessageMedia)
            .join(Message, Message.id == MessageMedia.message_id)
            .where(Message.conversation_id == conversation_id)
            .order_by(MessageMedia.created_at)
        ):
            media.setdefault(item.message_id, []).append(item)
        ratings = {
            r.message_id: r
            for r in await session.scalars(
                select(Rating)
                .join(Message, Message.id == Rating.message_id)
                .where(Message.conversation_id == conversation_id, Rating.user_id == user_id)
            )
        }
        summaries = {
            row.id: row
            for row in await session.scalars(
                select(ContextSummary)
                .where(ContextSummary.conversation_id == conversation_id)
                .order_by(ContextSummary.created_at)
            )
        }
    return Tree(conversation, messages, generations, media, ratings, summaries)


def path_to(messages: list[Message], leaf_id: str | None) -> list[Message]:
    """The chain from the root down to ``leaf_id`` (inclusive)."""
    by_id = {m.id: m for m in messages}
    chain: list[Message] = []
    current = by_id.get(leaf_id) if leaf_id else None
    while current is not None:
        chain.append(current)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return list(reversed(chain))


def message_out(message: Message, tree: Tree | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": message.id,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "model": message.model_id,
        "status": message.status,
        "created_at": message.created_at.isoformat(),
    }
    if message.role == "assistant":
        out["html"] = render_markdown(message.content)
    if tree is not None:
        generation = tree.generations.get(message.id)
        if generation is not None:
            out["generation"] = generation_out(generation)
            summary = tree.summaries.get(generation.summary_id or "")
            out["generation"]["summary"] = summary_out(summary)
        out["media"] = [media_out(m) for m in tree.media.get(message.id, [])]
        rating = tree.ratings.get(message.id)
        out["rating"] = {"stars": rating.stars, "comment": rating.comment} if rating else None
    return out


def generation_out(generation: Generation) -> dict[str, Any]:
    return {
        "id": generation.id,
        "model": generation.model_id,
        "provider": generation.provider_id,
        "options": generation.options,
        "status": generation.status,
        "error": (
            {"code": generation.error_code, "message": generation.error_message}
            if generation.error_code
            else None
        ),
        "usage": {
            "input_tokens": generation.input_tokens,
            "output_tokens": generation.output_tokens,
            "images": generation.images,
            "audio_seconds": generation.audio_seconds,
        },
        "cost": generation.cost,
        "latency_ms": generation.latency_ms,
        "duration_ms": generation.duration_ms,
        "dropped_turns": generation.dropped_turns,
        "context_policy": generation.context_policy,
    }


def media_out(media: MessageMedia) -> dict[str, Any]:
    return {
        "id": media.id,
        "media_type": media.media_type,
        "name": media.name,
        "size": media.size,
        "url": f"/api/media/{media.id}",
    }


def conversation_out(conversation: Conversation | Row[Any]) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "title": conversation.title,
        "tool": conversation.tool,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "pinned": conversation.pinned_at is not None,
        "archived": conversation.archived_at is not None,
        "context_policy": conversation.context_policy or "drop",
        "organisation_id": conversation.organisation_id,
    }


async def rate(
    db: Database, user_id: str, message_id: str, stars: int, comment: str | None
) -> Rating:
    async with db.transaction() as session:
        message = await session.scalar(
            select(Message)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.id == message_id, Message.user_id == user_id, open_to_chat())
        )
        if message is None or message.role != "assistant" or not message.model_id:
            raise NotFound("No such answer.")
        rating = await session.scalar(
            select(Rating).where(Rating.message_id == message_id, Rating.user_id == user_id)
        )
        if rating is None:
            rating = Rating(
                message_id=message_id,
                user_id=user_id,
                model_id=message.model_id,
                stars=stars,
                comment=comment,
            )
            session.add(rating)
        else:
            rating.stars, rating.comment = stars, comment
    return rating


async def model_ratings(db: Database) -> dict[str, tuple[float, int]]:
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Rating.model_id, func.avg(Rating.stars), func.count()).group_by(
                    Rating.model_id
                )
            )
        ).all()
    return {model: (round(float(avg), 2), int(count)) for model, avg, count in rows}


async def favourite_models(db: Database, user_id: str) -> list[str]:
    """The models someone starred, in the order they starred them."""
    async with db.read() as session:
        rows = await session.scalars(
            select(ModelFavourite.model_id)
            .where(ModelFavourite.user_id == user_id)
            .order_by(ModelFavourite.created_at, ModelFavourite.model_id)
        )
        return list(rows)


async def set_favourite(db: Database, user_id: str, model_id: str, favourite: bool) -> None:
    """Star or unstar a model (idempotent both ways); the caller checks the model exists."""
    async with db.transaction() as session:
        row = await session.get(ModelFavourite, (user_id, model_id))
        if favourite and row is None:
            session.add(ModelFavourite(user_id=user_id, model_id=model_id, created_at=utcnow()))
        elif not favourite and row is not None:
            await session.delete(row)
