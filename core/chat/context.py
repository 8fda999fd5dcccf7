"""Fitting a conversation into a model's context window, by the conversation's policy.

``drop`` (the default) leaves the oldest turns out (``pipeline.fit_history``). ``summarise``
sends a summary of them instead: written by a cheap text model (an admin names it, setting
``context.summariser_model``; by default the cheapest usable text model), charged through the
wallet like any answer (its own hold and ledger reference ``summary:<id>``), stored, and reused
by later prompts until more turns overflow; a newer summary then folds the older one in. When
summarising fails (no usable model, the provider fails, no credits for it) the turns are dropped
as before, and the answer says so (policy ``summarise_failed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import structlog
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import select

from multinotes.catalog import CatalogEntry
from multinotes.chat.models import ContextSummary
from multinotes.db import new_id
from multinotes.errors import AppError, Invalid, ProviderBadResponse
from multinotes.keys import DB
from multinotes.providers import ChatMessage
from multinotes.tokens import PER_MESSAGE_OVERHEAD, REPLY_PRIMING, count_tokens_remembered

log = structlog.get_logger(__name__)


#: Models with one of these read the conversation; the others (image, speech and transcription
#: models) read only the prompt (its text, or its audio).
CONVERSATION_CAPABILITIES = frozenset({"text", "code", "vision", "file_input"})


def reads_conversation(entry: CatalogEntry) -> bool:
    return bool(entry.model.capabilities & CONVERSATION_CAPABILITIES)


def fit_history(
    history: list[ChatMessage], entry: CatalogEntry, options: BaseModel
) -> tuple[list[ChatMessage], int, int]:
    """Drop the oldest turns until the prompt fits the model's context window next to the
    longest answer it may write. Returns (messages, dropped turns, prompt tokens).

    A model that reads no conversation gets the prompt alone (nothing is "dropped": it never
    reads earlier turns), and one without a text window (a transcription model, whose window
    is 0) is not measured against it."""
    if not reads_conversation(entry):
        history = history[-1:]
    reply = max_output(entry, options)
    budget = entry.model.context_window - reply
    sizes = [count_tokens_remembered(m.content) + PER_MESSAGE_OVERHEAD for m in history]
    system = getattr(options, "system", None) or ""
    total = sum(sizes) + count_tokens_remembered(system) + REPLY_PRIMING
    if entry.model.context_window <= 0:
        return history, 0, total
    start = 0
    while total > budget and start < len(history) - 1:
        total -= sizes[start]
        start += 1
    if total > budget:
        raise Invalid(
            f"The prompt is too long for {entry.model.name} ({total} tokens; it reads "
            f"{budget} next to a {reply}-token answer).",
            fields={"content": "too long for the selected model"},
        )
    return history[start:], start, total


def max_output(entry: CatalogEntry, options: BaseModel) -> int:
    return int(getattr(options, "max_tokens", None) or entry.model.max_output or 0)


class ContextPolicy(StrEnum):
    """A conversation's choice for when it outgrows a model's window."""

    DROP = "drop"
    SUMMARISE = "summarise"


#: The policy an answer reports when summarising failed and the turns were dropped instead.
SUMMARY_FAILED = "summarise_failed"
SUMMARISER_SETTING = "context.summariser_model"
#: The longest summary asked for, and the room kept for it (with its heading) in the window.
SUMMARY_TOKENS = 400
SUMMARY_ROOM = SUMMARY_TOKENS + 60
LEDGER_REASON = "Summary of earlier turns"
INSTRUCTIONS = (
    "You condense the earlier part of a conversation between a user and an AI assistant so "
    "that the conversation can go on without it. Keep every fact, name, number, decision, "
    "open question and instruction the user gave; drop pleasantries. Write plain prose or "
    "short bullet points, in the conversation's language, at most 300 words. Reply with the "
    "summary only."
)


def summary_heading(summary: ContextSummary) -> str:
    return (
        f"[Summary of the {summary.turns} earlier message{'s' if summary.turns != 1 else ''} "
        f"of this conversation]\n{summary.content}"
    )


@dataclass
class Fitted:
    """What one model is sent, and how it was made to fit."""

    history: list[ChatMessage]
    #: Turns not sent as themselves (left out, or summarised).
    dropped: int
    prompt_tokens: int
    #: None when everything fitted; else "drop", "summarise" or ``SUMMARY_FAILED``.
    policy: str | None = None
    summary: ContextSummary | None = None


@dataclass
class Summaries:
    """One request's view of a conversation's summaries: read once, when first needed, and
    the ones made while planning it, so several models share (and pay for) one summary."""

    user_id: str
    conversation_id: str
    policy: str
    loaded: bool = False
    rows: list[ContextSummary] = field(default_factory=list)

    async def load(self, app: web.Application) -> list[ContextSummary]:
        if not self.loaded:
            async with app[DB].read() as session:
                self.rows += list(
                    await session.scalars(
                        select(ContextSummary)
                        .where(
                            ContextSummary.conversation_id == self.conversation_id,
                            ContextSummary.user_id == self.user_id,
                        )
                        .order_by(ContextSummary.created_at)
                    )
                )
            self.loaded = True
        return self.rows


def _latest_on(
    rows: list[ContextSummary], turn_ids: list[str], at_most: int
) -> tuple[int, ContextSummary] | None:
    """The summary on this path of the tree that covers the most turns, at most ``at_most``:
    (how many turns it covers, the summary)."""
    position = {message_id: index for index, message_id in enumerate(turn_ids)}
    best: tuple[int, ContextSummary] | None = None
    for row in rows:
        index = position.get(row.through_message_id)
        if index is None or index + 1 > at_most:
            continue
        if best is None or index + 1 > best[0]:
            best = (index + 1, row)
    return best


def _with_summary(
    summary: ContextSummary,
    covered: int,
    history: list[ChatMessage],
    entry: CatalogEntry,
    options: BaseModel,
) -> Fitted:
    """The summary in place of the first ``covered`` turns. It opens the first user turn that
    follows (a message of its own when an answer follows), so the turns still alternate."""
    rest = list(history[covered:])
    heading = summary_heading(summary)
    if rest and rest[0].role == "user":
        first = rest[0]
        rest[0] = ChatMessage("user", f"{heading}\n\n---\n\n{first.content}", first.attachments)
    else:
        rest.insert(0, ChatMessage("user", heading))
    fitted, dropped, tokens = fit_history(rest, entry, options)
    if dropped:  # the recent turns alone overflow: the summary went with the oldest of them
        return Fitted(fitted, covered + dropped, tokens, ContextPolicy.DROP)
    return Fitted(fitted, covered, tokens, ContextPolicy.SUMMARISE, summary)


def _turns_to_summarise(history: list[ChatMessage], entry: CatalogEntry, options: BaseModel) -> int:
    """How many of the oldest turns must go so the rest fits next to a summary."""
    system = getattr(options, "system", None) or ""
    budget = (
        entry.model.context_window
        - max_output(entry, options)
        - count_tokens_remembered(system)
        - REPLY_PRIMING
        - SUMMARY_ROOM
    )
    sizes = [count_tokens_remembered(m.content) + PER_MESSAGE_OVERHEAD for m in history]
    total, cut = sum(sizes), 0
    while total > budget and cut < len(history) - 1:
        total -= sizes[cut]
        cut += 1
    return cut


def _transcript(
    earlier: ContextSummary | None, turns: list[ChatMessage], summariser: CatalogEntry
) -> str:
    parts = [f"Summary so far:\n{earlier.content}"] if earlier is not None else []
    for turn in turns:
        who = "User" if turn.role == "user" else "Assistant"
        parts.append(f"{who}: {turn.content}")
    text = "\n\n".join(parts)
    # The summariser's own window: keep the newest part of what does not fit (about four
    # characters a token, with room for the instructions and the summary).
    room = max(1000, (summariser.model.context_window - SUMMARY_TOKENS - 300) * 4)
    return text if len(text) <= room else "…" + text[-room:]


async def _summarise(
    app: web.Application,
    summaries: Summaries,
    turn_ids: list[str],
    history: list[ChatMessage],
    cut: int,
) -> ContextSummary:
    """A new summary of the first ``cut`` turns (folding in the latest shorter one), paid for
    and stored. Raises an ``AppError`` when it cannot be made."""
    from multinotes.assist import cheap  # it builds on the pipeline, which builds on this

    summariser = await cheap.pick_model(app, SUMMARISER_SETTING)
    earlier = _latest_on(summaries.rows, turn_ids, cut - 1)
    start = earlier[0] if earlier else 0
    source = _transcript(earlier[1] if earlier else None, history[start:cut], summariser)
    summary_id = new_id()
    text, cost = await cheap.ask(
        app,
        summaries.user_id,
        summariser,
        [ChatMessage("system", INSTRUCTIONS), ChatMessage("user", source)],
        reference=f"summary:{summary_id}",
        reason=LEDGER_REASON,
        max_tokens=SUMMARY_TOKENS,
    )
    if not text.strip():
        raise ProviderBadResponse(f"{summariser.model.name} wrote an empty summary.")
    row = ContextSummary(
        id=summary_id,
        user_id=summaries.user_id,
        conversation_id=summaries.conversation_id,
        through_message_id=turn_ids[cut - 1],
        turns=cut,
        content=text.strip(),
        model_id=summariser.id,
        cost=cost,
    )
    async with app[DB].transaction() as session:
        session.add(row)
    summaries.rows.append(row)
    return row


async def fit_context(
    app: web.Application,
    summaries: Summaries,
    turn_ids: list[str],
    history: list[ChatMessage],
    entry: CatalogEntry,
    options: BaseModel,
) -> Fitted:
    """What ``entry`` is sent of ``history`` (the conversation's turns, whose stored ids are
    ``turn_ids``, then the new prompt). Raises ``Invalid`` when even the prompt alone is too
    long; a summary that cannot be made falls back to dropping."""
    fitted, dropped, tokens = fit_history(history, entry, options)
    if not dropped:
        return Fitted(fitted, 0, tokens)
    if summaries.policy != ContextPolicy.SUMMARISE or not reads_conversation(entry):
        return Fitted(fitted, dropped, tokens, ContextPolicy.DROP)
    rows = await summaries.load(app)
    latest = _latest_on(rows, turn_ids, len(turn_ids))
    if latest is not None:  # reused while the turns after it still fit beside it
        reused = _with_summary(latest[1], latest[0], history, entry, options)
        if reused.policy == ContextPolicy.SUMMARISE:
            return reused
    cut = _turns_to_summarise(history, entry, options)
    try:
        summary = await _summarise(app, summaries, turn_ids, history, cut)
    except AppError as exc:
        log.warning(
            "context_summary_failed",
            conversation=summaries.conversation_id,
            code=exc.error_code,
            error=exc.message,
        )
        return Fitted(fitted, dropped, tokens, SUMMARY_FAILED)
    return _with_summary(summary, cut, history, entry, options)


def summary_out(row: ContextSummary | None) -> dict[str, object] | None:
    """A summary as the answer's events and the conversation's JSON show it."""
    if row is None:
        return None
    return {
        "id": row.id,
        "turns": row.turns,
        "content": row.content,
        "model": row.model_id,
        "cost": row.cost,
    }


async def load_summary(app: web.Application, summary_id: str | None) -> ContextSummary | None:
    if summary_id is None:
        return None
    async with app[DB].read() as session:
        return await session.get(ContextSummary, summary_id)
