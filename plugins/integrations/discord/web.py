"""The Discord app's routes: the Interactions Endpoint URL (every request's Ed25519 signature
checked before anything else; PING answered with PONG; ``/ask`` deferred and answered by a task;
Save as note buttons), and the forms of the ``/integrations`` panel."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from multinotes.plugin import Invalid, NotFound, PluginContext, plugin_context

from . import service, signing
from .service import ANSWER_TASK, EPHEMERAL, PLUGIN, SAVE_PREFIX, DiscordSettings

MAX_BODY = 64 * 1024
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT = 1, 2, 3
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE = 1, 4, 5
NOTICES = {
    "linked": "Your Discord account is linked: /ask answers as you now.",
    "unlinked": "The Discord account is unlinked.",
    "model": "Saved.",
    "commands": "The /ask command is registered with Discord.",
}


async def raw_body(request: web.Request) -> bytes | None:
    """The request's bytes as sent (the signature covers them exactly), or None past
    ``MAX_BODY``: read in pieces until the end, since one read may return only part."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    body = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(body)):
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return bytes(body)


def unauthorized() -> web.Response:
    return web.json_response(
        {"error": {"code": "bad_signature", "message": "The request is not signed by Discord."}},
        status=401,
    )


def private(text: str) -> web.Response:
    """A reply only the user who asked sees."""
    return web.json_response(
        {
            "type": CHANNEL_MESSAGE,
            "data": {"content": text, "flags": EPHEMERAL, "allowed_mentions": {"parse": []}},
        }
    )


async def interactions(request: web.Request) -> web.StreamResponse:
    ctx = plugin_context(request.app, PLUGIN)
    settings = await ctx.settings(DiscordSettings)
    body = await raw_body(request)
    if body is None or not signing.verify(settings.public_key, request.headers, body):
        return unauthorized()
    try:
        payload = json.loads(body)
        kind = payload["type"]
        if kind == PING:
            return web.json_response({"type": PONG})
        user = (payload.get("member") or {}).get("user") or payload.get("user") or {}
        discord_user, name = str(user.get("id", "")), str(user.get("username", ""))
        data = payload.get("data") or {}
        if not discord_user:
            raise KeyError("user")
        if kind == APPLICATION_COMMAND and data.get("name") == "ask":
            options = {o["name"]: str(o.get("value", "")) for o in data.get("options") or []}
            return await _ask(ctx, settings, payload, discord_user, name, options)
        if kind == MESSAGE_COMPONENT:
            return await _component(ctx, settings, discord_user, str(data.get("custom_id", "")))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise Invalid("Not an interaction Discord sends.", fields={"body": "unreadable"}) from None
    raise Invalid("This interaction is not one this app handles.", fields={"type": "unknown"})


async def _ask(
    ctx: PluginContext,
    settings: DiscordSettings,
    payload: dict[str, Any],
    discord_user: str,
    name: str,
    options: dict[str, str],
) -> web.Response:
    link = await service.LINKS.find(ctx, discord_user_id=discord_user)
    if link is None:
        url = service.LINKS.url(ctx, discord_user_id=discord_user, discord_name=name)
        return private(
            f"Link your Discord account to MultinotesAI first: {url} (open it while signed in; "
            "it works for 15 minutes). Then run /ask again."
        )
    prompt = options.get("prompt", "").strip()
    if not prompt:
        return private("Write a prompt: /ask prompt:<what to ask>")
    try:
        models = await service.models_for(
            ctx, settings, link, service.parse_models(options.get("model", ""))
        )
    except Invalid as exc:
        return private(exc.message)
    if len(models) > service.MAX_MODELS:
        return private(f"Ask at most {service.MAX_MODELS} models at once.")
    recorded = await service.record_interaction(
        ctx,
        link,
        interaction_id=str(payload["id"]),
        token=str(payload["token"]),
        prompt=prompt,
        models=models,
    )
    if not recorded.first:
        return private("This command was already received.")
    await ctx.enqueue(ANSWER_TASK, interaction_id=str(payload["id"]))
    # "Thinking…" for everyone in the channel until the task edits the reply.
    return web.json_response({"type": DEFERRED_CHANNEL_MESSAGE})


async def _component(
    ctx: PluginContext, settings: DiscordSettings, discord_user: str, custom_id: str
) -> web.Response:
    if not custom_id.startswith(SAVE_PREFIX):
        return private("This button is not one this app made.")
    link = await service.LINKS.find(ctx, discord_user_id=discord_user)
    if link is None:
        return private("Link your Discord account to MultinotesAI first: run /ask to get the link.")
    try:
        note_id = await service.save_once(
            ctx, link.user_id, custom_id[len(SAVE_PREFIX) :], settings.folder
        )
    except NotFound:
        return private("Only the person who asked can save this answer.")
    except Invalid as exc:
        return private(exc.message)
    return private(f"Saved as a note: {ctx.url('/notes/' + note_id)}")


# -- pages ---------------------------------------------------------------------------------------


async def _form(request: web.Request) -> dict[str, str]:
    try:
        form = await request.post()
    except (ValueError, HttpProcessingError):
        raise Invalid("The form could not be read.", fields={"body": "Not a form."}) from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


def back(done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/integrations?" + urlencode({"discord": done}) + "#panel-discord")


async def link_page(request: web.Request) -> web.StreamResponse:
    """The link a Discord user was sent: who would be linked; the button links."""
    return service.LINKS.page(plugin_context(request.app, PLUGIN), request, "discord/link.html")


async def link(request: web.Request) -> web.StreamResponse:
    ctx = plugin_context(request.app, PLUGIN)
    form = await _form(request)
    await service.LINKS.redeem(ctx, ctx.caller(request).user_id, form.get("token", ""))
    raise back("linked")


async def unlink(request: web.Request) -> web.StreamResponse:
    ctx = plugin_context(request.app, PLUGIN)
    await service.LINKS.unlink(ctx, ctx.caller(request).user_id, request.match_info["id"])
    raise back("unlinked")


async def default_model(request: web.Request) -> web.StreamResponse:
    ctx = plugin_context(request.app, PLUGIN)
    form = await _form(request)
    await service.LINKS.set_default_model(
        ctx, ctx.caller(request).user_id, request.match_info["id"], form.get("model") or None
    )
    raise back("model")


async def register_commands(request: web.Request) -> web.StreamResponse:
    """Admins: register ``/ask`` with Discord (needs the Application ID and the bot token)."""
    ctx = plugin_context(request.app, PLUGIN)
    await service.register_commands(await ctx.settings(DiscordSettings))
    raise back("commands")


async def panel_context(request: web.Request) -> dict[str, Any]:
    ctx = plugin_context(request.app, PLUGIN)
    caller = ctx.caller(request)
    settings = await ctx.settings(DiscordSettings)
    return {
        "discord_configured": bool(settings.application_id and settings.public_key),
        "discord_install_url": service.install_url(settings),
        "discord_links": await service.LINKS.of(ctx, caller.user_id),
        "discord_models": await ctx.models(),
        "discord_notice": NOTICES.get(request.query.get("discord", "")),
        "discord_is_admin": caller.is_admin,
        "discord_has_bot": settings.bot_token is not None,
    }


#: (method, path, handler, access, name)
ROUTES = [
    (
        "POST",
        "/api/integrations/discord/interactions",
        interactions,
        "public",
        "discord_interactions",
    ),
    ("GET", "/integrations/discord/link", link_page, "user", "discord_link_page"),
    ("POST", "/integrations/discord/link", link, "user", "discord_link"),
    ("POST", "/integrations/discord/links/{id}/unlink", unlink, "user", "discord_unlink"),
    ("POST", "/integrations/discord/links/{id}/model", default_model, "user", "discord_model"),
    ("POST", "/integrations/discord/commands", register_commands, "admin", "discord_commands"),
]
