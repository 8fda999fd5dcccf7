"""The Discord app's work: Discord users linked to accounts, ``/ask`` recorded once and answered
in the background through the workspace's pipeline (the deferred reply edited through
Discord's webhook API), answers kept as notes, and the ``/ask`` command registered with the
bot token. Every call goes through an aiohttp session behind the outgoing guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import structlog
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from multinotes.plugin import (
    AccountLinks,
    Answer,
    Forbidden,
    Invalid,
    NotFound,
    PaymentRequired,
    PluginContext,
    outgoing,
)

from .tables import Interaction, Link, LinkUse, Saved

log = structlog.get_logger(__name__)

PLUGIN = "discord"
ANSWER_TASK = "discord.answer"
LINK_SECONDS = 15 * 60
#: Discord's limit for a message's content.
CONTENT_LIMIT = 2000
SAVE_PREFIX = "save:"
#: At most this many models for one ``/ask`` (one button each; an action row holds five).
MAX_MODELS = 4
EPHEMERAL = 64

#: The application command this app answers (registered with ``register_commands``).
ASK_COMMAND: dict[str, Any] = {
    "name": "ask",
    "type": 1,
    "description": "Ask your MultinotesAI models",
    "options": [
        {"type": 3, "name": "prompt", "description": "What to ask", "required": True},
        {
            "type": 3,
            "name": "model",
            "description": "Model id(s), comma-separated (default: yours)",
            "required": False,
        },
    ],
}


class DiscordSettings(BaseModel):
    """The Discord application's identity (Developer Portal → General Information) and bot."""

    application_id: str = Field(default="", max_length=32, description="The Application ID.")
    public_key: str = Field(
        default="",
        max_length=64,
        description="The application's Public Key (hex): every interaction is checked with it.",
    )
    bot_token: SecretStr | None = Field(
        default=None, description="The bot's token: registers the /ask command."
    )
    api_base: str = Field(
        default="https://discord.com/api/v10",
        max_length=500,
        description="Discord's API (change only for a test server).",
    )
    default_model: str = Field(
        default="",
        max_length=200,
        description="The model /ask uses when neither it nor the user names one "
        "(empty: the first available).",
    )
    folder: str = Field(
        default="Discord", min_length=1, max_length=100, description="Where saved answers go."
    )
    save_answers: bool = Field(
        default=False,
        description="Save every answer as a note at once (otherwise its Save as note button does).",
    )


def install_url(settings: DiscordSettings) -> str:
    """Discord's page that adds the application (its command and bot) to a server."""
    base = settings.api_base.rstrip("/")
    site = base.split("/api", 1)[0]
    query = urlencode({"client_id": settings.application_id, "scope": "applications.commands bot"})
    return f"{site}/oauth2/authorize?{query}"


@asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with outgoing.client_session(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


# -- links ----------------------------------------------------------------------------------------

#: A Discord user links their account once, through a link ``/ask`` sends them.
LINKS = AccountLinks(
    table=Link,
    uses=LinkUse,
    identity=("discord_user_id",),
    path="/integrations/discord/link",
    service="Discord",
    again="run /ask in Discord again",
    seconds=LINK_SECONDS,
)


# -- /ask ------------------------------------------------------------------------------------------


def parse_models(option: str) -> list[str]:
    models: list[str] = []
    for part in option.split(","):
        model = part.strip().removeprefix("@")
        if model and model not in models:
            models.append(model)
    return models


async def models_for(
    ctx: PluginContext, settings: DiscordSettings, link: Link, named: list[str]
) -> list[str]:
    if named:
        return named
    for choice in (link.default_model, settings.default_model):
        if choice:
            return [choice]
    available = await ctx.models()
    if not available:
        raise Invalid("No model is available right now.", code="no_models")
    return available[:1]


@dataclass(frozen=True)
class Recorded:
    first: bool


async def record_interaction(
    ctx: PluginContext,
    link: Link,
    *,
    interaction_id: str,
    token: str,
    prompt: str,
    models: list[str],
) -> Recorded:
    """Keep the interaction before deferring it; an id seen before is not run again."""
    try:
        async with ctx.transaction() as session:
            session.add(
                Interaction(
                    id=interaction_id,
                    discord_user_id=link.discord_user_id,
                    user_id=link.user_id,
                    prompt=prompt,
                    models=models,
                    token=ctx.encrypt(token),
                )
            )
    except IntegrityError:
        return Recorded(first=False)
    return Recorded(first=True)


def answer_message(prompt: str, answers: list[Answer], saved: dict[str, str]) -> dict[str, Any]:
    """The edited reply: each answer under its model (shortened to fit one Discord message),
    its cost, and a Save as note button per answer not saved yet."""
    room = (CONTENT_LIMIT - 200) // max(1, len(answers))
    parts = [f"**{prompt[:150]}**"]
    buttons = []
    for answer in answers:
        if answer.status == "failed":
            parts.append(f"**{answer.model}** could not answer: {answer.error_message or ''}")
            continue
        text = answer.text if len(answer.text) <= room else answer.text[: room - 1] + "…"
        cost = f"{answer.cost:,} credits" + (
            " · saved as a note" if answer.message_id in saved else ""
        )
        parts.append(f"**{answer.model}**\n{text}\n-# {cost}")
        if answer.message_id not in saved:
            label = "Save as note" if len(answers) == 1 else f"Save {answer.model}"[:80]
            buttons.append(
                {
                    "type": 2,
                    "style": 1,
                    "label": label,
                    "custom_id": SAVE_PREFIX + answer.message_id,
                }
            )
    message: dict[str, Any] = {
        "content": "\n\n".join(parts)[:CONTENT_LIMIT],
        "allowed_mentions": {"parse": []},
        "components": [{"type": 1, "components": buttons}] if buttons else [],
    }
    return message


async def edit_reply(settings: DiscordSettings, token: str, message: dict[str, Any]) -> bool:
    """Edit the deferred reply (``PATCH /webhooks/{application}/{token}/messages/@original``)."""
    url = (
        f"{settings.api_base.rstrip('/')}/webhooks/{quote(settings.application_id, safe='')}"
        f"/{quote(token, safe='')}/messages/@original"
    )
    try:
        async with (
            http_session() as session,
            session.patch(url, json=message, **outgoing.AIOHTTP_REQUEST_ARGS) as response,
        ):
            if response.status >= 300:
                log.warning("discord_edit_refused", status=response.status)
                return False
    except Exception as exc:
        log.warning("discord_edit_failed", error=type(exc).__name__)
        return False
    return True


async def _set_status(
    ctx: PluginContext, interaction_id: str, status: str, answer_ids: list[str] | None = None
) -> None:
    values: dict[str, Any] = {"status": status}
    if answer_ids is not None:
        values["answer_ids"] = answer_ids
    async with ctx.transaction() as session:
        await session.execute(
            update(Interaction).where(Interaction.id == interaction_id).values(**values)
        )


async def answer_interaction(ctx: PluginContext, interaction_id: str) -> str:
    """The background half of ``/ask``: ask the models as the linked user (charged to their
    wallet) and edit the deferred reply with the answers. Once per interaction."""
    async with ctx.transaction() as session:
        claimed = await session.execute(
            update(Interaction)
            .where(Interaction.id == interaction_id, Interaction.status == "pending")
            .values(status="running")
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return "skipped"
        interaction = await session.get(Interaction, interaction_id)
    assert interaction is not None
    settings = await ctx.settings(DiscordSettings)
    token = ctx.decrypt(interaction.token)
    try:
        answers = await ctx.ask(interaction.user_id, interaction.prompt, models=interaction.models)
    except PaymentRequired:
        await _set_status(ctx, interaction_id, "refused")
        await edit_reply(
            settings,
            token,
            {
                "content": "You don't have enough credits for this prompt. Top up at "
                f"{ctx.url('/pricing')} or choose a cheaper model.",
                "allowed_mentions": {"parse": []},
            },
        )
        return "refused"
    except (Invalid, Forbidden, NotFound) as exc:
        await _set_status(ctx, interaction_id, "refused")
        detail = "; ".join(exc.fields.values())
        content = exc.message + (f" ({detail})" if detail else "")
        await edit_reply(settings, token, {"content": content, "allowed_mentions": {"parse": []}})
        return "refused"
    except Exception:
        # Not the user's doing: they are told, and the interaction is not left "running".
        await _set_status(ctx, interaction_id, "failed")
        await edit_reply(
            settings,
            token,
            {"content": "Something went wrong on our side; try again in a moment."},
        )
        raise
    saved: dict[str, str] = {}
    if settings.save_answers:
        for answer in answers:
            if answer.status != "failed":
                saved[answer.message_id] = await save_once(
                    ctx, interaction.user_id, answer.message_id, settings.folder
                )
    await _set_status(ctx, interaction_id, "answered", [a.message_id for a in answers])
    await edit_reply(settings, token, answer_message(interaction.prompt, answers, saved))
    return "answered"


async def save_once(ctx: PluginContext, user_id: str, message_id: str, folder: str) -> str:
    """Keep one of the user's answers as a note once (the row is claimed first, so two presses
    at once make one note)."""
    try:
        async with ctx.transaction() as session:
            session.add(Saved(message_id=message_id, user_id=user_id, note_id=""))
    except IntegrityError:
        async with ctx.read() as session:
            earlier = await session.get(Saved, message_id)
        if earlier is None or earlier.user_id != user_id:
            raise NotFound("No such answer.") from None
        if not earlier.note_id:
            raise Invalid("This answer is being saved.", code="saving") from None
        return earlier.note_id
    try:
        note_id = await ctx.save_answer(user_id, message_id, folder=folder)
    except BaseException:
        async with ctx.transaction() as session:
            await session.execute(delete(Saved).where(Saved.message_id == message_id))
        raise
    async with ctx.transaction() as session:
        await session.execute(
            update(Saved).where(Saved.message_id == message_id).values(note_id=note_id)
        )
    return note_id


async def register_commands(settings: DiscordSettings) -> None:
    """Register ``/ask`` for the application (a bulk overwrite of its global commands)."""
    token = settings.bot_token.get_secret_value() if settings.bot_token else ""
    if not settings.application_id or not token:
        raise Invalid(
            "Enter the Application ID and the bot token in the Plugins console first.",
            code="discord_not_configured",
        )
    url = (
        f"{settings.api_base.rstrip('/')}/applications/"
        f"{quote(settings.application_id, safe='')}/commands"
    )
    try:
        async with (
            http_session() as session,
            session.put(
                url,
                json=[ASK_COMMAND],
                headers={"Authorization": f"Bot {token}"},
                **outgoing.AIOHTTP_REQUEST_ARGS,
            ) as response,
        ):
            if response.status >= 300:
                raise Invalid(
                    f"Discord refused the command (HTTP {response.status}): check the "
                    "Application ID and the bot token.",
                    code="discord_refused",
                )
    except aiohttp.ClientError as exc:
        refusal = outgoing.refusal_in(exc)
        if refusal is not None:
            raise refusal from None
        raise Invalid(
            "Discord could not be reached; try again.", code="discord_unreachable"
        ) from None
