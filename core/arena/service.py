"""Blind comparisons: their owner starts, reads and votes; people they are shared with (core
sharing: a person or a public link) read them. Nobody sees a model before the vote. And the
leaderboard's votes."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.arena.models import CATEGORIES, LABELS, ArenaComparison, ArenaEntry
from multinotes.arena.rating import Vote, leaderboard
from multinotes.arena.schemas import LeaderboardQuery
from multinotes.chat.models import SEALED_TOOL, Message
from multinotes.chat.pipeline import Planned, plan_generations
from multinotes.db import Database, rows_affected, utcnow
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.keys import CATALOG, DB
from multinotes.markdown import render_markdown
from multinotes.sharing import access

MIN_MODELS, MAX_MODELS = 2, len(LABELS)
#: Conversations of blind comparisons are started from the tool the chat layer keeps sealed:
#: no chat path lists, shows, follows or exports them (their answers would name the models).
TOOL = SEALED_TOOL


async def pick_models(app: web.Application, model_ids: list[str] | None, count: int) -> list[str]:
    """The user's models, or ``count`` drawn at random from the usable text models."""
    if model_ids:
        if not MIN_MODELS <= len(model_ids) <= MAX_MODELS:
            raise Invalid(
                f"Compare {MIN_MODELS} to {MAX_MODELS} models.", fields={"models": "2 to 4 models"}
            )
        return model_ids
    usable = [
        e.id for e in await app[CATALOG].entries() if e.available and "text" in e.model.capabilities
    ]
    if len(usable) < count:
        raise Invalid(
            f"Only {len(usable)} text models can be used now; compare fewer or pick them.",
            fields={"count": f"at most {len(usable)}"},
        )
    return random.SystemRandom().sample(usable, count)


async def start(
    app: web.Application, user_id: str, prompt: str, model_ids: list[str]
) -> tuple[ArenaComparison, Message, list[Planned], dict[str, str]]:
    """Plan (validate, hold credits, store) the answers and label them in a random order.
    Returns the comparison, the prompt message, the plan and generation id → label."""
    shuffled = list(model_ids)
    secrets.SystemRandom().shuffle(shuffled)
    prompt_message, planned = await plan_generations(
        app,
        user_id=user_id,
        conversation_id=None,
        content=prompt,
        model_ids=shuffled,
        options={},
        parent_id=None,
        attachments=[],
        tool=TOOL,
    )
    comparison = ArenaComparison(
        user_id=user_id, conversation_id=prompt_message.conversation_id, prompt=prompt
    )
    labels = {item.generation_id: LABELS[i] for i, item in enumerate(planned)}
    async with app[DB].transaction() as session:
        session.add(comparison)
        await session.flush()
        for index, item in enumerate(planned):
            session.add(
                ArenaEntry(
                    comparison_id=comparison.id,
                    label=LABELS[index],
                    message_id=item.message_id,
                    model_id=item.model_id,
                )
            )
    return comparison, prompt_message, planned, labels


@dataclass
class Loaded:
    comparison: ArenaComparison
    entries: list[ArenaEntry]
    answers: dict[str, Message]


async def load(db: Database, user_id: str, comparison_id: str) -> Loaded:
    """One of ``user_id``'s own comparisons (``NotFound`` for anyone else's)."""
    async with db.read() as session:
        comparison = await session.scalar(
            select(ArenaComparison).where(
                ArenaComparison.id == comparison_id, ArenaComparison.user_id == user_id
            )
        )
        if comparison is None:
            raise NotFound("No such comparison.")
        return await _loaded(session, comparison)


async def load_seen(db: Database, user_id: str, comparison_id: str) -> tuple[Loaded, access.Access]:
    """A comparison ``user_id`` owns or that is shared with them, and their rights on it."""
    async with db.read() as session:
        comparison, rights = await access.comparison_in(session, user_id, comparison_id)
        return await _loaded(session, comparison), rights


async def _loaded(session: AsyncSession, comparison: ArenaComparison) -> Loaded:
    entries = list(
        await session.scalars(
            select(ArenaEntry)
            .where(ArenaEntry.comparison_id == comparison.id)
            .order_by(ArenaEntry.label)
        )
    )
    answers = {
        m.id: m
        for m in await session.scalars(
            select(Message).where(Message.id.in_([e.message_id for e in entries]))
        )
    }
    return Loaded(comparison, entries, answers)


def comparison_out(loaded: Loaded, *, is_owner: bool = True) -> dict[str, Any]:
    """The comparison for its owner or someone it is shared with: before the vote, nothing
    that names a model."""
    comparison, revealed = loaded.comparison, loaded.comparison.voted_at is not None
    answers = []
    for entry in loaded.entries:
        message = loaded.answers.get(entry.message_id)
        answer: dict[str, Any] = {
            "label": entry.label,
            "status": message.status if message else "failed",
            "html": render_markdown(message.content) if message else "",
            "rank": entry.rank,
            "model": entry.model_id if revealed else None,
        }
        answers.append(answer)
    return {
        "id": comparison.id,
        "prompt": comparison.prompt,
        "created_at": comparison.created_at,
        "voted_at": comparison.voted_at,
        "category": comparison.category,
        "revealed": revealed,
        "is_owner": is_owner,
        "answers": answers,
    }


async def vote(
    db: Database, user_id: str, comparison_id: str, ranks: dict[str, int], category: str
) -> Loaded:
    """Record the owner's one vote: a rank per label (1 best, equal ranks tie)."""
    if category not in CATEGORIES:
        raise Invalid("Unknown category.", fields={"category": f"one of {', '.join(CATEGORIES)}"})
    loaded = await load(db, user_id, comparison_id)
    labels = {e.label for e in loaded.entries}
    if set(ranks) != labels:
        wanted = ", ".join(sorted(labels))
        raise Invalid("Rank every answer.", fields={"ranks": f"one rank for each of {wanted}"})
    if any(not 1 <= r <= len(labels) for r in ranks.values()):
        raise Invalid("Ranks run from 1 (best).", fields={"ranks": f"1 to {len(labels)}"})
    if any(
        e.message_id not in loaded.answers or loaded.answers[e.message_id].status == "pending"
        for e in loaded.entries
    ):
        raise Conflict("Wait until every answer is finished.", code="answers_pending")
    async with db.transaction() as session:
        # The vote is taken once: only the update that finds it unvoted records it.
        result = await session.execute(
            update(ArenaComparison)
            .where(
                ArenaComparison.id == comparison_id,
                ArenaComparison.user_id == user_id,
                ArenaComparison.voted_at.is_(None),
            )
            .values(voted_at=utcnow(), category=category)
        )
        if not rows_affected(result):
            raise Conflict("This comparison has its vote already.", code="already_voted")
        for entry in loaded.entries:
            await session.execute(
                update(ArenaEntry).where(ArenaEntry.id == entry.id).values(rank=ranks[entry.label])
            )
    return await load(db, user_id, comparison_id)


async def votes(
    db: Database,
    *,
    user_id: str | None,
    category: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[Vote]:
    """The votes to rate: one user's (or everyone's), in a category and a date range."""
    query = (
        select(ArenaEntry.comparison_id, ArenaEntry.model_id, ArenaEntry.rank)
        .join(ArenaComparison, ArenaComparison.id == ArenaEntry.comparison_id)
        .where(ArenaComparison.voted_at.is_not(None), ArenaEntry.rank.is_not(None))
        .order_by(ArenaComparison.voted_at, ArenaEntry.comparison_id)
    )
    if user_id is not None:
        query = query.where(ArenaComparison.user_id == user_id)
    if category is not None:
        query = query.where(ArenaComparison.category == category)
    if since is not None:
        query = query.where(ArenaComparison.voted_at >= since)
    if until is not None:
        query = query.where(ArenaComparison.voted_at < until)
    grouped: dict[str, Vote] = {}
    async with db.read() as session:
        for comparison_id, model_id, rank in await session.execute(query):
            grouped.setdefault(comparison_id, []).append((model_id, rank or 0))
    return list(grouped.values())


async def leaderboard_table(db: Database, query: LeaderboardQuery, user_id: str) -> dict[str, Any]:
    """The leaderboard for ``query``, as the API answers it and the page shows it."""
    chosen = await votes(
        db,
        user_id=user_id if query.scope == "mine" else None,
        category=query.category,
        since=query.since,
        until=query.until,
    )
    return {
        "scope": query.scope,
        "category": query.category,
        "votes": len(chosen),
        "models": [
            {
                "rank": index + 1,
                "model": r.model_id,
                "rating": round(r.rating, 1),
                "low": round(r.low, 1),
                "high": round(r.high, 1),
                "wins": r.wins,
                "games": r.games,
            }
            for index, r in enumerate(leaderboard(chosen))
        ],
    }
