"""Account page forms for linked accounts: link a provider, unlink one."""

from __future__ import annotations

from aiohttp import web

from multinotes.errors import AppError
from multinotes.http.endpoint import page
from multinotes.http.responses import redirect
from multinotes.identity import oauth
from multinotes.identity.actor import require_user
from multinotes.keys import DB

routes = web.RouteTableDef()


@routes.post("/account/oauth/{provider}/link", name="account_oauth_link")
@page(access="user", rate="auth")
async def account_oauth_link(request: web.Request) -> web.Response:
    try:
        url, response = await oauth.begin_link(request, request.match_info["provider"])
    except AppError as exc:
        return redirect(oauth.LINKED_ACCOUNTS, exc.message, "error")
    # The account page allows this form to redirect to the provider (see account_page_csp).
    response.set_status(303)
    response.headers["Location"] = url
    return response


@routes.post("/account/oauth/identities/{id}/unlink", name="account_oauth_unlink")
@page(access="user")
async def account_oauth_unlink(request: web.Request) -> web.Response:
    actor = require_user(request)
    try:
        identity = await oauth.unlink_identity(
            request.app[DB], actor.user_id, request.match_info["id"]
        )
    except AppError as exc:
        if exc.status == 404:
            raise
        return redirect(oauth.LINKED_ACCOUNTS, exc.message, "error")
    await oauth.record_identity_change(request, "oauth.unlinked", actor.user_id, identity.provider)
    return redirect(oauth.LINKED_ACCOUNTS, f"{identity.provider.capitalize()} is no longer linked.")
