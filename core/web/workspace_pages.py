"""The chat workspace: ``/chat`` (a new chat) and ``/chat/{id}`` (a conversation).

The page is rendered on the server: the conversation list, the current branch of the message
tree (each prompt with its answers side by side, one column per model) and the composer with the
model picker. ``static/js/workspace.js`` drives the JSON/SSE API from there (send, stream, stop,
regenerate, rate) and swaps in the two HTML partials these handlers also serve: the conversation
list (``/chat/sidebar``, searched by title) and the thread (``/chat/{id}/thread?leaf=``).

Which branch is shown is decided by one message id, the *leaf* (``?leaf=``, default: the newest
message): the path from the root to it, continued downwards along the newest follow-up.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel

from multinotes.catalog import CatalogEntry
from multinotes.chat import service as chat
from multinotes.chat.models import Message, MessageStatus
from multinotes.chat.schemas import ConversationQuery
from multinotes.errors import NotFound
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import render
from multinotes.identity.actor import require_user
from multinotes.keys import CATALOG, DB
from multinotes.organisations import service as organisations
from multinotes.organisations import spaces as org_spaces
from multinotes.organisations.workspace import current_workspace
from multinotes.sharing import access
from multinotes.tools import visible_tools
from multinotes.wallet import service as wallet_service

#: Set once the newcomer's introduction on /chat was dismissed.
INTRO_COOKIE = "mn_intro_seen"

routes = web.RouteTableDef()

SIDEBAR_PAGE = 30
TOOL_PATTERN = re.compile(r"^[a-z0-9_-]{1,40}$")
ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

#: Display names of model capabilities (badges in the picker).
CAPABILITY_LABELS = {
    "text": "Text",
    "code": "Code",
    "vision": "Vision",
    "file_input": "Files",
    "image_generation": "Image",
    "text_to_speech": "Speech",
    "speech_to_text": "Transcription",
}

OPTION_LABELS = {
    "temperature": "Temperature",
    "top_p": "Top p",
    "max_tokens": "Max tokens",
    "system": "System prompt",
    "size": "Image size",
    "n": "Images",
    "voice": "Voice",
    "format": "Audio format",
    "speed": "Speed",
    "language": "Language",
    "prompt": "Hint",
}


# -- the message tree as columns ----------------------------------------------------------------


@dataclass
class Answer:
    message: Message
    model: dict[str, Any]
    html: str
    generation: dict[str, Any] | None
    media: list[dict[str, Any]]
    rating: dict[str, Any] | None

    @property
    def stats(self) -> dict[str, str]:
        return answer_stats(self.generation) if self.generation else {}


def duration_text(ms: float | None) -> str:
    if ms is None:
        return "\N{EN DASH}"
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def answer_stats(generation: dict[str, Any]) -> dict[str, str]:
    """What an answer cost and how long it took, as shown under it (workspace.js matches)."""
    usage = generation["usage"]
    tokens = f"{usage['input_tokens']:,} in / {usage['output_tokens']:,} out"
    if usage.get("images"):
        tokens += f" · {usage['images']} image{'s' if usage['images'] != 1 else ''}"
    if usage.get("audio_seconds"):
        tokens += f" · {usage['audio_seconds']:.0f} s audio"
    cost = generation["cost"]
    return {
        "tokens": tokens,
        "cost": f"{cost:,} credit{'s' if cost != 1 else ''}",
        "latency": duration_text(generation.get("latency_ms")),
        "duration": duration_text(generation.get("duration_ms")),
    }


@dataclass
class Column:
    """One model's answer to a prompt; ``variants`` are its regenerated alternatives."""

    model_id: str
    answer: Answer
    variants: list[str]
    continues: bool = False

    @property
    def position(self) -> int:
        return self.variants.index(self.answer.message.id) + 1

    @property
    def previous_id(self) -> str | None:
        index = self.position - 1
        return self.variants[index - 1] if index > 0 else None

    @property
    def next_id(self) -> str | None:
        index = self.position - 1
        return self.variants[index + 1] if index + 1 < len(self.variants) else None


@dataclass
class Turn:
    """A prompt, its alternatives (edited prompts) and its answers side by side."""

    prompt: Message
    media: list[dict[str, Any]]
    siblings: list[str]
    columns: list[Column] = field(default_factory=list)
    reply_to: str | None = None

    @property
    def position(self) -> int:
        return self.siblings.index(self.prompt.id) + 1

    @property
    def previous_id(self) -> str | None:
        index = self.position - 1
        return self.siblings[index - 1] if index > 0 else None

    @property
    def next_id(self) -> str | None:
        index = self.position - 1
        return self.siblings[index + 1] if index + 1 < len(self.siblings) else None


def build_thread(
    tree: chat.Tree, leaf_id: str | None, models: dict[str, dict[str, Any]]
) -> list[Turn]:
    """The branch through ``leaf_id`` as turns; ``models`` names the models by id."""
    messages = tree.messages
    if not messages:
        return []
    by_id = {m.id: m for m in messages}
    children: dict[str | None, list[Message]] = defaultdict(list)
    for message in messages:  # creation order, so siblings are oldest first
        children[message.parent_id].append(message)
    leaf = by_id.get(leaf_id or "")
    if leaf is None:
        # The newest message; for an answer, its prompt, so every model's column is equal.
        leaf = messages[-1]
        if leaf.role == "assistant" and leaf.parent_id in by_id:
            leaf = by_id[leaf.parent_id]
    chain = chat.path_to(messages, leaf.id)
    on_chain = {m.id for m in chain}
    prompt = next((m for m in chain if m.role == "user"), None)
    turns: list[Turn] = []
    seen: set[str] = set()
    while prompt is not None and prompt.id not in seen:
        seen.add(prompt.id)
        turn = Turn(
            prompt=prompt,
            media=[chat.media_out(m) for m in tree.media.get(prompt.id, [])],
            siblings=[m.id for m in children[prompt.parent_id] if m.role == "user"],
        )
        groups: dict[str, list[Message]] = {}
        for message in children[prompt.id]:
            if message.role == "assistant":
                groups.setdefault(message.model_id or "", []).append(message)
        for model_id, variants in groups.items():
            chosen = next((v for v in variants if v.id in on_chain), variants[-1])
            turn.columns.append(
                Column(model_id, _answer(tree, chosen, models), [v.id for v in variants])
            )
        turns.append(turn)
        # The next prompt: the one on the chain, else the newest follow-up of a shown answer.
        shown = {c.answer.message.id for c in turn.columns} | {prompt.id}
        follow_ups = [m for p in shown for m in children[p] if m.role == "user"]
        follow_ups.sort(key=lambda m: (m.created_at, m.id))
        prompt = next((m for m in follow_ups if m.id in on_chain), None) or (
            follow_ups[-1] if follow_ups else None
        )
        if prompt is not None:
            for column in turn.columns:
                column.continues = column.answer.message.id == prompt.parent_id
    if turns and turns[-1].columns:
        last = turns[-1]
        finished = (MessageStatus.COMPLETE, MessageStatus.STOPPED)
        answered = [c for c in last.columns if c.answer.message.status in finished] or last.columns
        last.reply_to = next(
            (c.answer.message.id for c in last.columns if c.answer.message.id == leaf.id),
            answered[0].answer.message.id,
        )
    return turns


def _answer(tree: chat.Tree, message: Message, models: dict[str, dict[str, Any]]) -> Answer:
    out = chat.message_out(message, tree)
    model_id = message.model_id or ""
    return Answer(
        message=message,
        model=models.get(model_id) or {"id": model_id, "name": model_id, "label": None},
        html=out.get("html") or "",
        generation=out.get("generation"),
        media=out.get("media", []),
        rating=out.get("rating"),
    )


# -- the model picker ---------------------------------------------------------------------------


def option_fields(options: type[BaseModel], max_output: int = 0) -> list[dict[str, Any]]:
    """Form fields for a model's ``Options`` (from its JSON schema, so they match validation)."""
    schema = options.model_json_schema()
    fields = []
    for name, prop in schema.get("properties", {}).items():
        branch = prop
        if "anyOf" in prop:
            branch = next((b for b in prop["anyOf"] if b.get("type") != "null"), {})
        kind = branch.get("type")
        item: dict[str, Any] = {
            "name": name,
            "label": OPTION_LABELS.get(name) or prop.get("title") or name,
            "default": prop.get("default"),
            "help": prop.get("description"),
        }
        if "enum" in branch:
            item.update(kind="select", choices=list(branch["enum"]))
        elif kind in ("number", "integer"):
            low = branch.get("minimum", branch.get("exclusiveMinimum"))
            high = branch.get("maximum", branch.get("exclusiveMaximum"))
            if name == "max_tokens" and max_output:
                high = max_output if high is None else min(high, max_output)
            fine = high is not None and high <= 4
            step = "1" if kind == "integer" else ("0.1" if fine else "any")
            item.update(kind="number", integer=kind == "integer", min=low, max=high, step=step)
        elif kind == "string":
            long = name in ("system", "prompt") or int(branch.get("maxLength") or 0) > 500
            item.update(kind="textarea" if long else "text", maxlength=branch.get("maxLength"))
        else:
            continue  # lists and objects: the API only
        fields.append(item)
    return fields


def model_choice(
    entry: CatalogEntry, rating: tuple[float, int] | None, *, is_admin: bool = False
) -> dict[str, Any]:
    out = entry.public(rating)
    reason = None
    if entry.status == "needs_key":
        # An admin can fix it: the page links the Plugins console instead.
        reason = "Needs an API key" if is_admin else "Needs an API key (ask an administrator)"
    elif entry.status == "unavailable":
        reason = "Unavailable right now (the provider is failing)"
    elif not entry.available:
        reason = "Unavailable"
    pricing = out["pricing"]
    out.update(
        reason=reason,
        plugin=entry.plugin,
        # What the price filter compares: credits per 1M output tokens, or per image / minute.
        price_rank=pricing["output_per_million"]
        or pricing["per_image"]
        or pricing["per_audio_minute"],
        capability_labels=[CAPABILITY_LABELS.get(c, c) for c in out["capabilities"]],
        prices=_prices(out["pricing"]),
        options=option_fields(entry.model.Options, entry.model.max_output),
    )
    return out


def _credits(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _prices(pricing: dict[str, float]) -> list[str]:
    prices = []
    if pricing["input_per_million"] or pricing["output_per_million"]:
        prices.append(
            f"{_credits(pricing['input_per_million'])} in / "
            f"{_credits(pricing['output_per_million'])} out credits per 1M tokens"
        )
    if pricing["per_image"]:
        prices.append(f"{_credits(pricing['per_image'])} credits per image")
    if pricing["per_audio_minute"]:
        prices.append(f"{_credits(pricing['per_audio_minute'])} credits per audio minute")
    return prices or ["Free"]


# -- pages --------------------------------------------------------------------------------------


async def find_tool(app: web.Application, tool_id: str | None) -> dict[str, Any] | None:
    """A visible tool of the home screen (``GET /api/tools``): its models, inputs and system
    prompt. Unknown or hidden tools are ignored: the page is then a plain chat."""
    if not tool_id or not TOOL_PATTERN.match(tool_id):
        return None
    tool = next((t for t in await visible_tools(app) if t["id"] == tool_id), None)
    if tool is None:
        return None
    inputs = tool.get("inputs") or []
    return {
        **tool,
        "options": [i for i in inputs if i.get("type") != "file"],
        "file": next((i for i in inputs if i.get("type") == "file"), None),
    }


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ValueError, KeyError):
        return UTC


def date_group(moment: datetime, now: datetime) -> str:
    """The sidebar heading of a conversation last active at ``moment`` (both in one zone)."""
    days = (now.date() - moment.date()).days
    if days <= 0:
        return "Today"
    if days == 1:
        return "Yesterday"
    if days < 7:
        return "Previous 7 days"
    if days < 30:
        return "Previous 30 days"
    return "Older"


async def _sidebar(
    request: web.Request,
    user_id: str,
    q: str | None,
    before: str | None = None,
    *,
    archived: bool = False,
    after_group: str | None = None,
) -> dict[str, Any]:
    """The conversation list: pinned ones first (on the first page), then the latest of those
    other members keep in the person's organisation spaces (first page; one group per
    organisation), the rest grouped by date (Today, Yesterday, ...) in the person's time zone;
    or only the archived ones.

    The spaces' conversations are a group of their own rather than mixed into the dates, as
    Slack keeps channels apart from direct messages and ChatGPT Team its workspace's items:
    they are someone else's and read-only (no rename, pin, archive or delete menu; they open in
    the read-only view), and the person tells at a glance what is theirs from the team's."""
    db = request.app[DB]
    pinned: list[dict[str, Any]] = []
    spaces: list[dict[str, Any]] = []
    if not archived and not before:
        rows, _ = await chat.list_conversations(db, user_id, limit=100, q=q or None, pinned=True)
        pinned = [chat.conversation_out(c) for c in rows]
        for shared in await org_spaces.member_conversations(db, user_id, q=q or None):
            if not spaces or spaces[-1]["id"] != shared.organisation_id:
                space: dict[str, Any] = {
                    "id": shared.organisation_id,
                    "name": shared.organisation_name,
                    "items": [],
                }
                spaces.append(space)
            spaces[-1]["items"].append(shared)
        for space in spaces:
            space["more"] = len(space["items"]) >= org_spaces.SIDEBAR_PER_SPACE
    rows, cursor = await chat.list_conversations(
        db,
        user_id,
        limit=SIDEBAR_PAGE,
        before=before,
        q=q or None,
        pinned=None if archived else False,
        archived=archived,
    )
    actor = require_user(request)
    zone = _zone(getattr(actor, "timezone", None))
    now = datetime.now(UTC).astimezone(zone)
    conversations = []
    last = after_group
    for row in rows:
        item = chat.conversation_out(row)
        group = date_group(row.updated_at.replace(tzinfo=UTC).astimezone(zone), now)
        item["group"] = group if group != last else None  # a heading where the group changes
        last = group
        conversations.append(item)
    return {
        "pinned": pinned,
        "spaces": spaces,
        "conversations": conversations,
        "next_cursor": cursor,
        "last_group": last,
        "q": q or "",
        "before": before,
        "archived": archived,
    }


async def _thread_context(
    request: web.Request, user_id: str, conversation_id: str, leaf: str | None
) -> dict[str, Any]:
    tree = await chat.load_tree(request.app[DB], user_id, conversation_id)
    entries = await request.app[CATALOG].entries(include_disabled=True)
    names = {e.id: {"id": e.id, "name": e.model.name, "label": e.model.label} for e in entries}
    turns = build_thread(tree, leaf if leaf and ID_PATTERN.match(leaf) else None, names)
    return {"conversation": chat.conversation_out(tree.conversation), "turns": turns}


async def _paying_workspace(
    request: web.Request, conversation: dict[str, Any] | None
) -> dict[str, str] | None:
    space = conversation.get("organisation_id") if conversation else None
    if not space:
        return await current_workspace(request)
    actor = require_user(request)
    try:
        who = await access.organisation(request.app[DB], actor.user_id, space)
    except NotFound:
        return None  # no longer a member: a prompt there is refused, as by the API
    organisation = await organisations.get(request.app[DB], who)
    return {"id": organisation.id, "name": organisation.name}


async def workspace(request: web.Request, conversation_id: str | None) -> web.Response:
    actor = require_user(request)
    app = request.app
    q = request.query.get("q", "").strip()[:200]
    context: dict[str, Any] = {"conversation": None, "turns": []}
    if conversation_id is not None:
        context = await _thread_context(request, actor.user_id, conversation_id, _leaf(request))
    ratings = await chat.model_ratings(app[DB])
    favourites = await chat.favourite_models(app[DB], actor.user_id)
    models = [
        model_choice(e, ratings.get(e.id), is_admin=actor.is_admin)
        for e in await app[CATALOG].entries()
    ]
    # Usable ones first, starred ones first among them; catalog order kept otherwise.
    models.sort(key=lambda m: (not m["available"], m["id"] not in favourites))
    # A new chat takes ?tool=; a conversation keeps the tool it was started with.
    conversation = context["conversation"]
    tool = await find_tool(app, conversation["tool"] if conversation else request.query.get("tool"))
    selected = _preselect(models, context["turns"], tool)
    return render(
        request,
        "chat/workspace.html",
        {
            "nav": "chat",
            **context,
            "models": models,
            "selected": selected,
            "favourites": favourites,
            "capability_filters": _capability_filters(models),
            "tool": tool,
            "wallet": await wallet_service.summary(app[DB], actor.user_id),
            # The organisation whose wallet pays for prompts sent from this page: the one whose
            # space the conversation is in, else the one chosen with the switcher, if any.
            "workspace": await _paying_workspace(request, conversation),
            "sidebar": await _sidebar(request, actor.user_id, q),
            "current": conversation_id,
            # "Got it" on the introduction sets this cookie (js/app.js): decided on the server,
            # so the card never appears and then vanishes.
            "show_intro": conversation_id is None and INTRO_COOKIE not in request.cookies,
        },
    )


def _capability_filters(models: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The capabilities the picker can filter by: those some usable model has."""
    present = {c for m in models if m["available"] for c in m["capabilities"]}
    return [(c, label) for c, label in CAPABILITY_LABELS.items() if c in present]


def _leaf(request: web.Request) -> str | None:
    leaf = request.query.get("leaf")
    return leaf if leaf and ID_PATTERN.match(leaf) else None


def _preselect(
    models: list[dict[str, Any]], turns: list[Turn], tool: dict[str, Any] | None
) -> list[str]:
    """The tool's models, else the models of the last turn, else the first text model."""
    available = [m for m in models if m["available"]]
    if tool is not None:
        return [m for m in tool["models"] if m in {a["id"] for a in available}]
    if turns and turns[-1].columns:
        ids = {m["id"] for m in available}
        chosen = [c.model_id for c in turns[-1].columns if c.model_id in ids]
        if chosen:
            return chosen
    text = [m["id"] for m in available if "text" in m["capabilities"]]
    return text[:1] or [m["id"] for m in available[:1]]


@routes.get("/chat", name="chat_new")
@page(access="user")
async def chat_new(request: web.Request) -> web.Response:
    return await workspace(request, None)


@routes.get("/chat/sidebar", name="chat_sidebar")
@page(access="user")
async def chat_sidebar(request: web.Request) -> web.Response:
    """The conversation list (``q`` searches titles; ``before`` is the next page's cursor)."""
    actor = require_user(request)
    # The API's query model for what both lists take (a search, a cursor, the archive); the
    # open conversation and the last date group shown are the sidebar's own.
    query = validate(
        ConversationQuery,
        {
            "q": request.query.get("q", "").strip() or None,
            "before": request.query.get("before") or None,
            "archived": request.query.get("archived") == "1",
        },
    )
    current = request.query.get("current") or None
    group = request.query.get("group") or None
    context = await _sidebar(
        request,
        actor.user_id,
        query.q or "",
        query.before,
        archived=query.archived,
        after_group=group[:40] if group else None,
    )
    return render(request, "chat/_conversations.html", {**context, "current": current})


@routes.get("/chat/{id}", name="chat")
@page(access="user")
async def chat_page(request: web.Request) -> web.Response:
    return await workspace(request, request.match_info["id"])


@routes.get("/chat/{id}/thread", name="chat_thread")
@page(access="user")
async def chat_thread(request: web.Request) -> web.Response:
    """The current branch of a conversation, for the page to swap in (``?leaf=``)."""
    actor = require_user(request)
    context = await _thread_context(
        request, actor.user_id, request.match_info["id"], _leaf(request)
    )
    return render(request, "chat/_thread.html", context)
