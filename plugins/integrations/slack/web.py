"""The Slack app's routes: the one Request URL Slack calls (slash commands, interactivity and the
Events API, told apart by their payload; each request's signature checked before anything
else), the "Add to Slack" OAuth round trip, and the forms of the ``/integrations`` panel (link,
unlink, default model, remove a workspace)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlencode

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from multinotes.plugin import Invalid, NotFound, PluginContext, plugin_context

from . import commands, service, signing
from .service import (
    ANSWER_TASK,
    PLUGIN,
    SAVE_ACTION,
    SHORTCUT,
    SlackSettings,
    ephemeral,
    escape,
)

log = structlog.get_logger(__name__)

#: Slack's payloads are small; anything bigger is not from Slack.
MAX_BODY = 64 * 1024
#: Fixed messages a redirect back to /integrations may ask the panel to show.
NOTICES = {
    "installed": "Slack is connected: type /multinotes in any channel of that workspace.",
    "linked": "Your Slack account is linked: /multinotes answers as you now.",
    "unlinked": "The Slack account is unlinked.",
    "model": "Saved.",
    "removed": "The workspace is disconnected.",
    "cancelled": "Slack was not connected.",
}
HELP = (
    # Slack's mrkdwn reads <...> as a link or mention: the placeholders are escaped.
    "*/multinotes &lt;prompt&gt;* asks your default model and posts the answer here.\n"
    "*/multinotes model:&lt;id&gt;[,&lt;id&gt;] &lt;prompt&gt;* (or *@&lt;id&gt;*) asks "
    "other models.\n"
    "*/multinotes default &lt;id&gt;* sets your default model.\n"
    "Answers are charged to your MultinotesAI credits; *Save as note* keeps one."
)


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
        {"error": {"code": "bad_signature", "message": "The request is not signed by Slack."}},
        status=401,
    )


async def events(request: web.Request) -> web.StreamResponse:
    """Everything Slack sends: verified first (a bad or old signature is a 401 and nothing
    runs), then a slash command, a button press or an Events API callback."""
    ctx = plugin_context(request.app, PLUGIN)
    settings = await ctx.settings(SlackSettings)
    body = await raw_body(request)
    if body is None or not signing.verify(
        service.secret(settings.signing_secret), request.headers, body
    ):
        return unauthorized()
    try:
        text = body.decode("utf-8")
        if request.content_type == "application/json":
            return await _event_callback(ctx, json.loads(text))
        form = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        if "payload" in form:
            return await _interaction(ctx, settings, json.loads(form["payload"]))
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
        raise Invalid("Not a payload Slack sends.", fields={"body": "unreadable"}) from None
    if "command" in form:
        return await _command(ctx, settings, form)
    raise Invalid("Not a payload Slack sends.", fields={"body": "unknown kind"})


async def _event_callback(ctx: PluginContext, payload: dict[str, Any]) -> web.Response:
    if payload.get("type") == "url_verification":
        return web.json_response({"challenge": str(payload.get("challenge", ""))})
    event = payload.get("event") or {}
    if payload.get("type") == "event_callback" and event.get("type") in (
        "app_uninstalled",
        "tokens_revoked",
    ):
        await service.remove_install(ctx, str(payload.get("team_id", "")))
    return web.Response(status=200)


async def _command(
    ctx: PluginContext, settings: SlackSettings, form: dict[str, str]
) -> web.Response:
    """Acknowledge at once (Slack waits three seconds); the answer follows from a task."""
    team_id, slack_user = form.get("team_id", ""), form.get("user_id", "")
    if not team_id or not slack_user:
        raise Invalid("A slash command names its team and user.", fields={"user_id": "required"})
    parsed = commands.parse(form.get("text", ""))
    if parsed.kind == commands.HELP:
        return web.json_response(ephemeral(HELP))
    link = await service.LINKS.find(ctx, team_id=team_id, slack_user_id=slack_user)
    if link is None:
        url = service.LINKS.url(
            ctx,
            team_id=team_id,
            team_name=form.get("team_domain", ""),
            slack_user_id=slack_user,
            slack_name=form.get("user_name", ""),
        )
        return web.json_response(
            ephemeral(
                f"Link your Slack account to MultinotesAI first: <{url}|link your account> "
                "(open it while signed in; it works for 15 minutes). Then run the command again."
            )
        )
    try:
        if parsed.kind == commands.DEFAULT:
            model = parsed.models[0] if parsed.models else None
            await service.LINKS.set_default_model(ctx, link.user_id, link.id, model)
            return web.json_response(
                ephemeral(
                    f"Your default model is now {escape(model)}."
                    if model
                    else "Your default model is the app's again."
                )
            )
        if not parsed.prompt:
            return web.json_response(ephemeral("Write a prompt after the command. " + HELP))
        models = await service.models_for(ctx, settings, link, parsed.models)
        if len(models) > commands.MAX_MODELS:
            return web.json_response(
                ephemeral(f"Ask at most {commands.MAX_MODELS} models at once.")
            )
    except (Invalid, NotFound) as exc:
        return web.json_response(ephemeral(exc.message))
    recorded = await service.record_command(
        ctx,
        link,
        trigger_id=form.get("trigger_id") or "",
        channel_id=form.get("channel_id", ""),
        prompt=parsed.prompt,
        models=models,
        response_url=form.get("response_url", ""),
    )
    if not recorded.first:
        return web.json_response(ephemeral("This command was already received."))
    await ctx.enqueue(ANSWER_TASK, command_id=recorded.command_id)
    return web.json_response(ephemeral(f"Asking {escape(', '.join(models))}…"))


async def _interaction(
    ctx: PluginContext, settings: SlackSettings, payload: dict[str, Any]
) -> web.Response:
    """A press of an answer's Save as note button: the note is made for the linked account
    (only the one who asked owns the answer), and the presser is told in a private reply."""
    if payload.get("type") == "message_action" and payload.get("callback_id") == SHORTCUT:
        return await _shortcut(ctx, settings, payload)
    if payload.get("type") != "block_actions":
        return web.Response(status=200)
    team_id = str((payload.get("team") or {}).get("id", ""))
    slack_user = str((payload.get("user") or {}).get("id", ""))
    response_url = str(payload.get("response_url", ""))
    wanted = [
        str(a.get("value", ""))
        for a in payload.get("actions") or []
        if str(a.get("action_id", "")).startswith(SAVE_ACTION)
    ]
    if not wanted:
        return web.Response(status=200)
    link = await service.LINKS.find(ctx, team_id=team_id, slack_user_id=slack_user)
    if link is None:
        reply = "Link your Slack account to MultinotesAI first: run /multinotes to get the link."
    else:
        try:
            note_id = await service.save_once(ctx, link.user_id, wanted[0], settings.folder)
            reply = f"Saved as a note: <{ctx.url('/notes/' + note_id)}|open it in MultinotesAI>."
        except NotFound:
            reply = "Only the person who asked can save this answer."
        except Invalid as exc:
            reply = exc.message
    if response_url:
        await service.post_response(response_url, ephemeral(reply))
    return web.Response(status=200)


async def _shortcut(
    ctx: PluginContext, settings: SlackSettings, payload: dict[str, Any]
) -> web.Response:
    """The "Save to MultinotesAI" message shortcut: any message kept as a note of the linked
    account; the person who used it is told privately."""
    team = payload.get("team") or {}
    user = payload.get("user") or {}
    team_id, slack_user = str(team.get("id", "")), str(user.get("id", ""))
    link = await service.LINKS.find(ctx, team_id=team_id, slack_user_id=slack_user)
    if link is None:
        url = service.LINKS.url(
            ctx,
            team_id=team_id,
            team_name=str(team.get("domain", "")),
            slack_user_id=slack_user,
            slack_name=str(user.get("name", "")),
        )
        reply = f"Link your Slack account to MultinotesAI first: <{url}|link your account>."
    else:
        try:
            note_id = await service.keep_message(ctx, link, payload, settings.folder)
            reply = f"Saved as a note: <{ctx.url('/notes/' + note_id)}|open it in MultinotesAI>."
        except (Invalid, NotFound) as exc:
            reply = exc.message
    response_url = str(payload.get("response_url", ""))
    if response_url:
        await service.post_response(response_url, ephemeral(reply))
    return web.Response(status=200)


# -- pages ---------------------------------------------------------------------------------------


async def _form(request: web.Request) -> dict[str, str]:
    try:
        form = await request.post()
    except (ValueError, HttpProcessingError):
        raise Invalid("The form could not be read.", fields={"body": "Not a form."}) from None
    return {k: v for k, v in form.items() if isinstance(v, str)}


def back(done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther("/integrations?" + urlencode({"slack": done}) + "#panel-slack")


async def install(request: web.Request) -> web.StreamResponse:
    """ "Add to Slack": off to Slack's consent page."""
    ctx = plugin_context(request.app, PLUGIN)
    settings = await ctx.settings(SlackSettings)
    raise web.HTTPFound(service.install_redirect(ctx, settings, ctx.caller(request).user_id))


async def oauth_callback(request: web.Request) -> web.StreamResponse:
    """Slack sends the browser back here with a code (or an error, when the user declined). The
    state proves the same signed-in user started it, so nobody can plant an install."""
    ctx = plugin_context(request.app, PLUGIN)
    if request.query.get("error"):
        raise back("cancelled")
    settings = await ctx.settings(SlackSettings)
    await service.finish_install(
        ctx,
        settings,
        ctx.caller(request).user_id,
        request.query.get("code", ""),
        request.query.get("state", ""),
    )
    raise back("installed")


async def link_page(request: web.Request) -> web.StreamResponse:
    """The link a Slack user was sent: says who would be linked; the button links (a GET never
    changes anything)."""
    return service.LINKS.page(plugin_context(request.app, PLUGIN), request, "slack/link.html")


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


async def remove_install(request: web.Request) -> web.StreamResponse:
    ctx = plugin_context(request.app, PLUGIN)
    caller = ctx.caller(request)
    await service.uninstall(ctx, request.match_info["team"], caller.user_id, caller.is_admin)
    raise back("removed")


async def panel_context(request: web.Request) -> dict[str, Any]:
    """What the Slack section of ``/integrations`` shows: Add to Slack, the workspaces this
    person added (an admin: all), their linked Slack accounts with a default model each."""
    ctx = plugin_context(request.app, PLUGIN)
    caller = ctx.caller(request)
    settings = await ctx.settings(SlackSettings)
    return {
        "slack_configured": bool(settings.client_id and settings.client_secret),
        "slack_installs": await service.installs_by(
            ctx, None if caller.is_admin else caller.user_id
        ),
        "slack_links": await service.LINKS.of(ctx, caller.user_id),
        "slack_models": await ctx.models(),
        "slack_notice": NOTICES.get(request.query.get("slack", "")),
        "slack_is_admin": caller.is_admin,
    }


#: (method, path, handler, access, name)
ROUTES = [
    ("POST", "/api/integrations/slack/events", events, "public", "slack_events"),
    ("GET", "/integrations/slack/install", install, "user", "slack_install"),
    ("GET", "/integrations/slack/oauth", oauth_callback, "user", "slack_oauth"),
    ("GET", "/integrations/slack/link", link_page, "user", "slack_link_page"),
    ("POST", "/integrations/slack/link", link, "user", "slack_link"),
    ("POST", "/integrations/slack/links/{id}/unlink", unlink, "user", "slack_unlink"),
    ("POST", "/integrations/slack/links/{id}/model", default_model, "user", "slack_model"),
    (
        "POST",
        "/integrations/slack/installs/{team}/remove",
        remove_install,
        "user",
        "slack_remove_install",
    ),
]
