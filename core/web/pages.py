"""Server-rendered pages. They call the same services as the JSON API and work without
JavaScript (plain forms, POST-redirect-GET); htmx only makes some of them snappier."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from multinotes import audit, plugin_control, ui
from multinotes.billing import referrals
from multinotes.connections import service as connections
from multinotes.db import utcnow
from multinotes.errors import AppError, Invalid, RateLimited
from multinotes.http.endpoint import page, validate
from multinotes.http.middleware import csp_with_form_actions
from multinotes.http.responses import redirect, render, safe_next
from multinotes.http.session import clear_session_cookie, start_session
from multinotes.identity import key_actions, oauth
from multinotes.identity import scopes as key_scopes
from multinotes.identity import service as identity
from multinotes.identity.account_mail import VERIFY_EMAIL, queue_account_mail
from multinotes.identity.actor import current_actor, require_admin, require_user
from multinotes.identity.guard import check_login, register_account
from multinotes.identity.schemas import KeyOut, RegisterIn, SessionOut
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS, SETTINGS
from multinotes.plugin_admin import plugin_detail, plugin_out
from multinotes.tools import visible_tools
from multinotes.webui import STATIC_DIR

routes = web.RouteTableDef()

# -- public -------------------------------------------------------------------------------------


@routes.get("/", name="home")
@page(access="public")
async def home(request: web.Request) -> web.Response:
    providers: list[dict[str, Any]] = []
    tools: list[dict[str, Any]] = []
    if current_actor(request) is not None:
        tools = await visible_tools(request.app)
        host = request.app[PLUGINS]
        for plugin, provider in host.registries.providers.values():
            config = await request.app[PLUGIN_SETTINGS].config(plugin)
            providers.append({"name": provider.name, "models": await provider.list_models(config)})
    return render(request, "home.html", {"providers": providers, "tools": tools, "nav": "home"})


# -- the installable app (web manifest, service worker, offline page) -------------------------

MANIFEST = {
    "name": "MultinotesAI",
    "short_name": "Multinotes",
    "description": "One prompt, many models, notes you keep.",
    "start_url": "/chat",
    "scope": "/",
    "display": "standalone",
    "background_color": "#ffffff",
    "theme_color": "#0172ad",
    "icons": [{"src": "/static/img/favicon.svg", "sizes": "any", "type": "image/svg+xml"}],
}


@routes.get("/manifest.webmanifest", name="web_manifest")
@page(access="public")
async def web_manifest(request: web.Request) -> web.Response:
    return web.Response(
        text=json.dumps(MANIFEST),
        content_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=3600"},
    )


@routes.get("/sw.js", name="service_worker")
@page(access="public")
async def service_worker(request: web.Request) -> web.Response:
    """The service worker, at the root so that it may serve every page of the site."""
    source = STATIC_DIR / "js" / "sw.js"
    return web.Response(
        text=source.read_text(encoding="utf-8"),
        content_type="text/javascript",
        # Browsers re-check the worker on navigation; never keep a stale one around.
        headers={"Cache-Control": "no-cache"},
    )


@routes.get("/offline", name="offline")
@page(access="public")
async def offline(request: web.Request) -> web.Response:
    """What the service worker shows for a page opened without a network."""
    return render(request, "offline.html", {})


@routes.get("/login", name="login")
@page(access="public")
async def login_form(request: web.Request) -> web.Response:
    return render(request, "login.html", {"nav": "login", "next": request.query.get("next")})


@routes.post("/login", name="login_submit")
@page(access="public", rate="auth")
async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    email = str(form.get("email", ""))
    next_url = safe_next(request.query.get("next"))
    try:
        user = await check_login(request, email=email, password=str(form.get("password", "")))
    except AppError as exc:
        return render(
            request,
            "login.html",
            {
                "nav": "login",
                "error": exc.message,
                "email": email,
                "next": request.query.get("next"),
            },
            status=exc.status,
        )
    response = redirect(next_url)
    await start_session(request, response, user)
    return response


@routes.get("/register", name="register")
@page(access="public")
async def register_form(request: web.Request) -> web.Response:
    return render(request, "register.html", {"nav": "register", "values": {}, "fields": {}})


@routes.post("/register", name="register_submit")
@page(access="public", rate="auth")
async def register_submit(request: web.Request) -> web.Response:
    form = await request.post()
    values = {k: str(form.get(k, "")) for k in ("email", "name", "password")}
    try:
        body = validate(RegisterIn, values)
        registration = await register_account(
            request, email=str(body.email), password=body.password, name=body.name
        )
    except Invalid as exc:
        return render(
            request,
            "register.html",
            {
                "nav": "register",
                "error": exc.message,
                "fields": exc.fields,
                "values": {"email": values["email"], "name": values["name"]},
            },
            status=exc.status,
        )
    except RateLimited as exc:
        # A sign-up burst from the network (or too many attempts): say why and when to retry.
        minutes = max(1, math.ceil(exc.retry_after / 60))
        message = (
            exc.message
            if exc.error_code != "rate_limited"
            else f"Too many sign-up attempts. Try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}."
        )
        response = render(
            request,
            "register.html",
            {
                "nav": "register",
                "error": message,
                "fields": {},
                "values": {"email": values["email"], "name": values["name"]},
            },
            status=429,
        )
        response.headers.update(exc.headers)
        return response
    # The same answer whether or not the address already had an account (no session either
    # way: logging in here would tell): a new account logs in as usual.
    user = registration.user
    if registration.created:
        await queue_account_mail(request, VERIFY_EMAIL, user.email)
        await referrals.record_signup(request, request.app[DB], user.id)
    return redirect(
        "/login",
        f"Thanks, {user.name}! We sent a message to {user.email}. Log in to continue.",
    )


@routes.post("/logout", name="logout")
@page(access="user")
async def logout(request: web.Request) -> web.Response:
    actor = require_user(request)
    if actor.session_id:
        await identity.revoke_session(request.app[DB], actor.session_id)
    await audit.record(request.app, request, "auth.logout")
    response = redirect("/login", "You are logged out.")
    clear_session_cookie(request, response)
    return response


# -- account ------------------------------------------------------------------------------------


async def account_page(
    request: web.Request, new_key: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    """The account page; ``extra`` goes to the template (a form's errors, say)."""
    from multinotes.web.profile_pages import account_sections

    actor = require_user(request)
    user = await identity.get_user(request.app[DB], actor.user_id)
    keys = [
        KeyOut.of(k, user.role)
        for k in await identity.list_api_keys(request.app[DB], actor.user_id)
    ]
    sessions = [
        SessionOut.of(s, actor.session_id)
        for s in await identity.active_sessions(
            request.app[DB], actor.user_id, idle_minutes=request.app[SETTINGS].session_idle_minutes
        )
    ]
    response = render(
        request,
        "account/index.html",
        {
            "nav": "account",
            "user": user,
            "keys": keys,
            "new_key": new_key,
            "scopes": key_scopes.SCOPES,
            "scope_descriptions": key_scopes.DESCRIPTIONS,
            "key_scopes_allowed": key_scopes.allowed_for_role(user.role),
            "sessions": sessions,
            **await account_sections(request, user),
            "identities": await oauth.list_identities(request.app[DB], actor.user_id),
            "connected_accounts": await connections.overview(request.app, actor.user_id),
            "plugin_panels": await ui.settings_panels(request, "account"),
            **extra,
        },
    )
    origins = request.app[oauth.OAUTH].form_action_origins()
    if origins:  # "Link Google" is a form that redirects to Google
        response.headers["Content-Security-Policy"] = csp_with_form_actions(origins)
    return response


@routes.get("/account", name="account")
@page(access="user")
async def account(request: web.Request) -> web.Response:
    return await account_page(request)


#: The expiry choices of the create-key form, in days ("" never expires).
KEY_LIFETIMES = {"": "Never", "7": "7 days", "30": "30 days", "90": "90 days", "365": "1 year"}


@routes.post("/account/keys", name="account_key_create")
@page(access="user")
async def account_key_create(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()[:100]
    if not name:
        return redirect("/account#api-keys", "Give the key a name.", "error")
    lifetime = str(form.get("expires_in_days", ""))
    if lifetime not in KEY_LIFETIMES:
        return redirect("/account#api-keys", "Choose when the key expires.", "error")
    expires_at = utcnow() + timedelta(days=int(lifetime)) if lifetime else None
    try:
        record, key = await key_actions.create_key(
            request,
            actor.user_id,
            name,
            scopes=[str(s) for s in form.getall("scopes", [])],
            expires_at=expires_at,
        )
    except Invalid as exc:
        return redirect("/account#api-keys", next(iter(exc.fields.values()), exc.message), "error")
    # Rendered directly (not redirected): the key must never travel through a cookie or URL.
    response = await account_page(request, {"name": record.name, "key": key})
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.post("/account/keys/{id}/scopes", name="account_key_narrow")
@page(access="user")
async def account_key_narrow(request: web.Request) -> web.Response:
    """Keep only the ticked scopes of a key (never more than it had)."""
    actor = require_user(request)
    form = await request.post()
    try:
        record = await key_actions.narrow_key(
            request,
            actor.user_id,
            request.match_info["id"],
            [str(s) for s in form.getall("scopes", [])],
        )
    except Invalid as exc:
        return redirect("/account#api-keys", next(iter(exc.fields.values()), exc.message), "error")
    return redirect("/account#api-keys", f"The key “{record.name}” was narrowed.")


@routes.post("/account/keys/{id}/revoke", name="account_key_revoke")
@page(access="user")
async def account_key_revoke(request: web.Request) -> web.Response:
    actor = require_user(request)
    await key_actions.revoke_key(request, actor.user_id, request.match_info["id"])
    return redirect("/account#api-keys", "The key was revoked.")


# -- admin: plugins -----------------------------------------------------------------------------


@routes.get("/admin/plugins", name="admin_plugins")
@page(access="admin")
async def admin_plugins(request: web.Request) -> web.Response:
    host = request.app[PLUGINS]
    plugins = [plugin_out(r) for r in sorted(host.records.values(), key=lambda r: r.name)]
    return render(request, "admin/plugins.html", {"nav": "plugins", "plugins": plugins})


@routes.post("/admin/plugins/{name}/toggle", name="admin_plugin_toggle")
@page(access="admin")
async def admin_plugin_toggle(request: web.Request) -> web.Response:
    actor = require_admin(request)
    name = request.match_info["name"]
    form = await request.post()
    enabled = str(form.get("enabled", "")).lower() == "true"
    await plugin_control.set_enabled(request.app, name, enabled, actor.user_id, request=request)
    record = request.app[PLUGINS].get(name)
    if request.headers.get("HX-Request") == "true":
        return aiohttp_jinja2.render_template(
            "admin/_plugin_row.html", request, {"plugin": plugin_out(record)}
        )
    state = "enabled" if record.enabled else "disabled"
    return redirect("/admin/plugins", f"Plugin {name} is now {state}.")


#: What a failed save typed and was told, for the settings panel of the page shown again.
SETTINGS_FORM: web.RequestKey[dict[str, Any]] = web.RequestKey("plugin_settings_form")


async def _plugin_settings_context(request: web.Request) -> dict[str, Any]:
    detail = await plugin_detail(request.app, request.match_info["name"])
    failed: dict[str, Any] = request.get(SETTINGS_FORM, {})
    return {
        "plugin": detail.model_dump(),
        "error": failed.get("error"),
        "fields": failed.get("fields", {}),
        "values": failed.get("values", {}),  # show what was typed next to its error
    }


#: The console's settings form of a plugin (its typed settings model): a settings panel of the
#: core, shown first on the plugin's page through the same path as the plugins' own panels.
PLUGIN_SETTINGS_PANEL = ui.SettingsPanel(
    id="plugin-settings",
    title="Settings",
    template="admin/_plugin_settings.html",
    area="admin",
    context=_plugin_settings_context,
)


async def _plugin_page(request: web.Request, name: str, *, status: int = 200) -> web.Response:
    detail = await plugin_detail(request.app, name)
    return render(
        request,
        "admin/plugin.html",
        {
            "nav": "plugins",
            "plugin": detail.model_dump(),
            "plugin_panels": await ui.settings_panels(
                request, "admin", plugin=detail.name, core=[PLUGIN_SETTINGS_PANEL]
            ),
        },
        status=status,
    )


@routes.get("/admin/plugins/{name}", name="admin_plugin")
@page(access="admin")
async def admin_plugin(request: web.Request) -> web.Response:
    return await _plugin_page(request, request.match_info["name"])


@routes.post("/admin/plugins/{name}/settings", name="admin_plugin_settings")
@page(access="admin")
async def admin_plugin_settings(request: web.Request) -> web.Response:
    require_admin(request)
    name = request.match_info["name"]
    detail = await plugin_detail(request.app, name)
    form = await request.post()
    changes: dict[str, Any] = {}
    for field in detail.settings:
        values = form.getall(field.name, [])
        if not values:
            continue
        # A checkbox sends "false" from the hidden input and "true" when ticked.
        raw = "true" if "true" in values and field.type == "bool" else str(values[-1])
        if field.secret and raw == "":
            continue
        changes[field.name] = None if raw == "" and field.type == "number" else raw
    try:
        await plugin_control.update_settings(request.app, name, changes, request=request)
    except Invalid as exc:
        request[SETTINGS_FORM] = {
            "error": exc.message,
            "fields": {k.removeprefix("settings."): v for k, v in exc.fields.items()},
            "values": changes,
        }
        return await _plugin_page(request, name, status=exc.status)
    return redirect(f"/admin/plugins/{name}", "Settings saved.")
