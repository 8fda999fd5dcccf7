"""The Slack app's work: workspaces installed through OAuth v2, Slack users linked to accounts,
slash commands recorded once and answered in the background through the workspace's pipeline,
answers kept as notes. Slack's Web API is called with slack-sdk's ``AsyncWebClient`` (and
``AsyncWebhookClient`` for ``response_url``) on an aiohttp session behind the outgoing guard."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import aiohttp
import structlog
from pydantic import BaseModel, Field, SecretStr
from sqlalchemy import delete, select, update
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

from .tables import Command, Install, Link, LinkUse, Saved

if TYPE_CHECKING:  # slack-sdk is imported where used, on first use (a few MB idle)
    from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger(__name__)

PLUGIN = "slack"
ANSWER_TASK = "slack.answer"
#: What the bot may do: receive slash commands, post in channels it is asked from.
SCOPES = "commands,chat:write"
#: How long a link sent to an unlinked Slack user, and an install's OAuth state, stay valid.
LINK_SECONDS = 15 * 60
STATE_SECONDS = 10 * 60
EXPIRED = "This link has expired: run the command in Slack again for a new one."
#: Slack's limit for the text of one section block (3000), with room for the heading.
SECTION_TEXT = 2800
SAVE_ACTION = "save_note"
#: The message shortcut's Callback ID (api.slack.com/apps → Interactivity → Shortcuts).
SHORTCUT = "save_to_multinotes"


class SlackSettings(BaseModel):
    """The Slack app's credentials (from api.slack.com/apps → Basic Information) and choices."""

    client_id: str = Field(default="", max_length=100, description="The app's Client ID.")
    client_secret: SecretStr | None = Field(default=None, description="The app's Client Secret.")
    signing_secret: SecretStr | None = Field(
        default=None, description="The app's Signing Secret: every request from Slack is checked."
    )
    api_base: str = Field(
        default="https://slack.com/api/",
        max_length=500,
        description="Slack's Web API (change only for a test server).",
    )
    default_model: str = Field(
        default="",
        max_length=200,
        description="The model a command asks when neither it nor the user names one "
        "(empty: the first available).",
    )
    folder: str = Field(
        default="Slack", min_length=1, max_length=100, description="Where saved answers go."
    )
    save_answers: bool = Field(
        default=False,
        description="Save every answer as a note at once (otherwise its Save as note button does).",
    )


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def authorize_url(settings: SlackSettings) -> str:
    """Slack's OAuth page, next to its Web API (``https://slack.com/oauth/v2/authorize``)."""
    base = settings.api_base.rstrip("/")
    site = base[: -len("/api")] if base.endswith("/api") else base
    return f"{site}/oauth/v2/authorize"


# -- Slack's Web API -----------------------------------------------------------------------------


@asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session behind the outgoing guard (every connection's address checked, no
    redirect followed: slack-sdk's clients would follow one)."""
    async with outgoing.client_session(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


def web_client(
    settings: SlackSettings, session: aiohttp.ClientSession, token: str | None = None
) -> AsyncWebClient:
    from slack_sdk.web.async_client import AsyncWebClient

    return AsyncWebClient(token=token, base_url=settings.api_base, session=session, timeout=15)


async def post_response(response_url: str, message: dict[str, Any]) -> bool:
    """Post to a command's or a button's ``response_url``; whether Slack took it."""
    from slack_sdk.webhook.async_client import AsyncWebhookClient

    try:
        async with http_session() as session:
            client = AsyncWebhookClient(response_url, session=session, timeout=15)
            response = await client.send_dict(message)
    except Exception as exc:  # a refused address, a timeout: the caller falls back or logs
        log.warning("slack_response_url_failed", error=type(exc).__name__)
        return False
    if response.status_code != 200:
        log.warning("slack_response_url_refused", status=response.status_code)
        return False
    return True


# -- installs (OAuth v2) -------------------------------------------------------------------------


def install_redirect(ctx: PluginContext, settings: SlackSettings, user_id: str) -> str:
    """Where "Add to Slack" goes: Slack's consent page, with a state bound to this user."""
    if not settings.client_id or not settings.client_secret:
        raise Invalid(
            "The Slack app is not set up yet: an administrator enters its Client ID and "
            "Client Secret in the Plugins console.",
            code="slack_not_configured",
        )
    query = urlencode(
        {
            "client_id": settings.client_id,
            "scope": SCOPES,
            "redirect_uri": ctx.url("/integrations/slack/oauth"),
            "state": ctx.seal("install", STATE_SECONDS, user_id=user_id),
        }
    )
    return f"{authorize_url(settings)}?{query}"


async def finish_install(
    ctx: PluginContext, settings: SlackSettings, user_id: str, code: str, state: str
) -> Install:
    """Trade the OAuth ``code`` for the workspace's bot token (``oauth.v2.access``) and keep it,
    encrypted; the installing Slack user is linked to the account that added the app."""
    sealed = ctx.unseal("install", state, expired=EXPIRED)
    if sealed.get("user_id") != user_id:
        raise Forbidden("This install was started by someone else.", code="bad_state")
    if not code:
        raise Invalid("Slack sent no authorization code.", fields={"code": "required"})
    from slack_sdk.errors import SlackApiError

    try:
        async with http_session() as session:
            response = await web_client(settings, session).oauth_v2_access(
                client_id=settings.client_id,
                client_secret=secret(settings.client_secret),
                code=code,
                redirect_uri=ctx.url("/integrations/slack/oauth"),
            )
    except SlackApiError as exc:
        raise Invalid(
            f"Slack refused the install ({exc.response.get('error', 'error')}).",
            code="slack_refused",
        ) from None
    except Exception as exc:
        refusal = outgoing.refusal_in(exc)
        if refusal is not None:
            raise refusal from None
        raise Invalid("Slack could not be reached; try again.", code="slack_unreachable") from None
    team = response.get("team") or {}
    token = response.get("access_token") or ""
    if not team.get("id") or not str(token).startswith("xoxb-"):
        raise Invalid("Slack's answer had no bot token.", code="slack_refused")
    authed = (response.get("authed_user") or {}).get("id")
    async with ctx.transaction() as session:
        install = await session.get(Install, team["id"])
        if install is None:
            install = Install(team_id=team["id"])
            session.add(install)
        install.team_name = str(team.get("name") or "")[:200]
        install.bot_user_id = str(response.get("bot_user_id") or "")[:32]
        install.bot_token = ctx.encrypt(str(token))
        install.scope = str(response.get("scope") or "")[:500]
        install.installed_by = user_id
    if authed:
        await LINKS.link(
            ctx,
            user_id,
            team_id=team["id"],
            team_name=install.team_name,
            slack_user_id=str(authed),
            slack_name="",
        )
    return install


async def remove_install(ctx: PluginContext, team_id: str) -> None:
    """Slack told us the app was uninstalled or its tokens revoked: forget the bot token."""
    async with ctx.transaction() as session:
        await session.execute(delete(Install).where(Install.team_id == team_id))


async def installs_by(ctx: PluginContext, user_id: str | None) -> list[Install]:
    """Workspaces ``user_id`` added (``None``: every one, for an admin)."""
    async with ctx.read() as session:
        query = select(Install).order_by(Install.team_name, Install.team_id)
        if user_id is not None:
            query = query.where(Install.installed_by == user_id)
        return list(await session.scalars(query))


async def uninstall(ctx: PluginContext, team_id: str, user_id: str, is_admin: bool) -> None:
    """Forget a workspace's bot token (its installer or an admin); links stay."""
    async with ctx.transaction() as session:
        install = await session.get(Install, team_id)
        if install is None or (install.installed_by != user_id and not is_admin):
            raise NotFound("No such Slack workspace.")
        await session.delete(install)


# -- links between Slack users and accounts ------------------------------------------------------

#: A Slack user (in one workspace) links their account once, through a link a command sends them
#: (the one who added the app is linked at once).
LINKS = AccountLinks(
    table=Link,
    uses=LinkUse,
    identity=("team_id", "slack_user_id"),
    path="/integrations/slack/link",
    service="Slack",
    again="run the command in Slack again",
    seconds=LINK_SECONDS,
)


# -- commands --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    command_id: str
    first: bool  # False: this trigger was seen before (a replayed request)


async def record_command(
    ctx: PluginContext,
    link: Link,
    *,
    trigger_id: str,
    channel_id: str,
    prompt: str,
    models: list[str],
    response_url: str,
) -> Recorded:
    """Keep the command before acknowledging it; a trigger seen before is not run again."""
    command = Command(
        trigger_id=trigger_id,
        team_id=link.team_id,
        channel_id=channel_id[:32],
        slack_user_id=link.slack_user_id,
        user_id=link.user_id,
        prompt=prompt,
        models=models,
        response_url=ctx.encrypt(response_url),
    )
    try:
        async with ctx.transaction() as session:
            session.add(command)
    except IntegrityError:
        async with ctx.read() as session:
            earlier = await session.scalar(
                select(Command.id).where(Command.trigger_id == trigger_id)
            )
        return Recorded(earlier or "", first=False)
    return Recorded(command.id, first=True)


async def models_for(
    ctx: PluginContext, settings: SlackSettings, link: Link, named: list[str]
) -> list[str]:
    """The models a command asks: those it names, else the user's default, else the app's,
    else the first available one."""
    if named:
        return named
    for choice in (link.default_model, settings.default_model):
        if choice:
            return [choice]
    available = await ctx.models()
    if not available:
        raise Invalid("No model is available right now.", code="no_models")
    return available[:1]


def escape(text: str) -> str:
    """Slack's mrkdwn: &, < and > are control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def answer_message(prompt: str, answers: list[Answer], saved: dict[str, str]) -> dict[str, Any]:
    """The in-channel message: each model's answer, its cost, and a Save as note button (or a
    note that it was saved)."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(prompt[:500])}*"}}
    ]
    for index, answer in enumerate(answers):
        if answer.status == "failed":
            reason = escape(answer.error_message or "")
            body = f"*{escape(answer.model)}* could not answer: {reason}"
        else:
            text = answer.text if len(answer.text) <= SECTION_TEXT else answer.text[:SECTION_TEXT]
            body = f"*{escape(answer.model)}*\n{escape(text)}"
            if len(answer.text) > SECTION_TEXT:
                body += "\n_(cut short: the whole answer is in MultinotesAI)_"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": body}})
        note = f"{answer.cost:,} credits"
        if answer.message_id in saved:
            note += " · saved as a note"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
        if answer.status != "failed" and answer.message_id not in saved:
            blocks.append(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": f"{SAVE_ACTION}.{index}",
                            "text": {"type": "plain_text", "text": "Save as note"},
                            "value": answer.message_id,
                        }
                    ],
                }
            )
    fallback = "\n\n".join(f"{a.model}: {a.text}" for a in answers)[:3000]
    return {
        "response_type": "in_channel",
        "replace_original": False,
        "text": fallback,
        "blocks": blocks,
    }


def ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


async def _set_status(
    ctx: PluginContext, command_id: str, status: str, answer_ids: list[str] | None = None
) -> None:
    values: dict[str, Any] = {"status": status}
    if answer_ids is not None:
        values["answer_ids"] = answer_ids
    async with ctx.transaction() as session:
        await session.execute(update(Command).where(Command.id == command_id).values(**values))


async def answer_command(ctx: PluginContext, command_id: str) -> str:
    """The background half of a slash command: ask the models as the linked user (charged to
    their wallet), then post the answers through the command's ``response_url`` (or with the
    bot token, when that fails). Runs once per command, however often it is handed over."""
    async with ctx.transaction() as session:
        claimed = await session.execute(
            update(Command)
            .where(Command.id == command_id, Command.status == "pending")
            .values(status="running")
        )
        if not claimed.rowcount:  # type: ignore[attr-defined]
            return "skipped"
        command = await session.get(Command, command_id)
    assert command is not None
    settings = await ctx.settings(SlackSettings)
    response_url = ctx.decrypt(command.response_url)
    try:
        answers = await ctx.ask(command.user_id, command.prompt, models=command.models)
    except PaymentRequired:
        await _set_status(ctx, command_id, "refused")
        await post_response(
            response_url,
            ephemeral(
                "You don't have enough credits for this prompt. Top up at "
                f"{ctx.url('/pricing')} or ask a cheaper model (`model:&lt;id&gt;`)."
            ),
        )
        return "refused"
    except (Invalid, Forbidden, NotFound) as exc:
        await _set_status(ctx, command_id, "refused")
        detail = "; ".join(exc.fields.values())
        await post_response(
            response_url, ephemeral(exc.message + (f" ({detail})" if detail else ""))
        )
        return "refused"
    except Exception:
        # Not the user's doing: they are told, the command is not left "running" for ever,
        # and the task's failure is logged (a hold left behind is settled by the core's sweep).
        await _set_status(ctx, command_id, "failed")
        await post_response(
            response_url, ephemeral("Something went wrong on our side; try again in a moment.")
        )
        raise
    saved: dict[str, str] = {}
    if settings.save_answers:
        for answer in answers:
            if answer.status != "failed":
                saved[answer.message_id] = await save_once(
                    ctx, command.user_id, answer.message_id, settings.folder
                )
    await _set_status(ctx, command_id, "answered", [a.message_id for a in answers])
    message = answer_message(command.prompt, answers, saved)
    if not await post_response(response_url, message):
        await post_with_bot(ctx, settings, command.team_id, command.channel_id, message)
    return "answered"


async def post_with_bot(
    ctx: PluginContext,
    settings: SlackSettings,
    team_id: str,
    channel_id: str,
    message: dict[str, Any],
) -> bool:
    """``chat.postMessage`` with the workspace's bot token: the way an answer still gets there
    when its ``response_url`` has expired (after 30 minutes) or failed."""
    async with ctx.read() as session:
        install = await session.get(Install, team_id)
    if install is None or not channel_id:
        log.warning("slack_answer_undelivered", team=team_id)
        return False
    try:
        async with http_session() as session:
            await web_client(settings, session, ctx.decrypt(install.bot_token)).chat_postMessage(
                channel=channel_id, text=message["text"], blocks=message["blocks"]
            )
    except Exception as exc:
        log.warning("slack_post_message_failed", team=team_id, error=type(exc).__name__)
        return False
    return True


async def save_once(ctx: PluginContext, user_id: str, message_id: str, folder: str) -> str:
    """Keep one of the user's answers as a note once: a second press of its button (or a
    replayed one) finds the first note."""
    return await _once(
        ctx, user_id, message_id, lambda: ctx.save_answer(user_id, message_id, folder=folder)
    )


def message_key(team_id: str, channel_id: str, ts: str, slack_user: str) -> str:
    """One Slack message kept by one Slack user (the Saved row's key, 32 characters)."""
    return hashlib.sha256(f"{team_id}:{channel_id}:{ts}:{slack_user}".encode()).hexdigest()[:32]


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


async def keep_message(ctx: PluginContext, link: Link, payload: dict[str, Any], folder: str) -> str:
    """The "Save to MultinotesAI" message shortcut: the message's text as a note of the linked
    account's, once per message and Slack user."""
    message = payload.get("message") or {}
    channel = payload.get("channel") or {}
    text = unescape(str(message.get("text", ""))).strip()
    if not text:
        raise Invalid("This message has no text to keep.", code="empty_message")
    title = text.splitlines()[0][:80]
    where = f"#{channel['name']}" if channel.get("name") else "Slack"
    content = f"{text}\n\n_Kept from {where} in {link.team_name or 'Slack'}._"
    key = message_key(
        link.team_id, str(channel.get("id", "")), str(message.get("ts", "")), link.slack_user_id
    )
    return await _once(
        ctx,
        link.user_id,
        key,
        lambda: ctx.save_note(link.user_id, title=title, content=content, folder=folder),
    )


async def _once(
    ctx: PluginContext, user_id: str, key: str, make: Callable[[], Awaitable[str]]
) -> str:
    """Make a note once per ``key``: the row is claimed before the note is made, so two presses
    at once (or a replayed request) make one note and find it afterwards."""
    try:
        async with ctx.transaction() as session:
            session.add(Saved(message_id=key, user_id=user_id, note_id=""))
    except IntegrityError:
        async with ctx.read() as session:
            earlier = await session.get(Saved, key)
        if earlier is None or earlier.user_id != user_id:
            raise NotFound("No such answer.") from None
        if not earlier.note_id:
            raise Invalid("This is being saved.", code="saving") from None
        return earlier.note_id
    try:
        note_id = await make()
    except BaseException:
        async with ctx.transaction() as session:
            await session.execute(delete(Saved).where(Saved.message_id == key))
        raise
    async with ctx.transaction() as session:
        await session.execute(update(Saved).where(Saved.message_id == key).values(note_id=note_id))
    return note_id
