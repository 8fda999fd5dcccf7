"""Sign in with Google or Facebook, and the identities linked to an account.

``GET /api/auth/oauth/{provider}/start`` sends the browser to the provider; the provider sends it
back to ``/callback``, which logs in (or signs up) and redirects to the page it came from. Both
are browser navigations: a failure is an HTML page for a browser and a JSON problem otherwise.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import aiohttp_jinja2
import structlog
from aiohttp import web
from pydantic import BaseModel, Field

from multinotes import audit
from multinotes.errors import AppError
from multinotes.http.endpoint import endpoint, raw
from multinotes.http.responses import flash, safe_next
from multinotes.http.session import start_session
from multinotes.identity import oauth
from multinotes.identity.account_mail import VERIFY_EMAIL, queue_account_mail
from multinotes.identity.actor import current_actor, require_user
from multinotes.identity.oauth_models import OAuthIdentity
from multinotes.identity.oauth_providers import OAuthFailed
from multinotes.keys import DB

log = structlog.get_logger("multinotes.oauth")

routes = web.RouteTableDef()


class ProviderOut(BaseModel):
    id: str = Field(description="`google` or `facebook`.")
    name: str
    start_url: str = Field(description="Open in the browser to sign in (a GET navigation).")


class IdentityOut(BaseModel):
    id: str
    provider: str
    email: str | None = Field(description="The address the provider last reported.")
    created_at: datetime
    last_login_at: datetime | None

    @classmethod
    def of(cls, record: OAuthIdentity) -> IdentityOut:
        return cls(
            id=record.id,
            provider=record.provider,
            email=record.email,
            created_at=record.created_at,
            last_login_at=record.last_login_at,
        )


class LinkOut(BaseModel):
    authorize_url: str = Field(
        description="Open in this browser (the one holding the session) to approve the link."
    )


@routes.get("/api/auth/oauth/providers", name="api_oauth_providers")
@endpoint(access="public", response=list[ProviderOut], tags=["auth"])
async def providers(request: web.Request) -> list[ProviderOut]:
    """The sign-in providers enabled on this install (empty when none is configured)."""
    return [
        ProviderOut(id=p.id, name=p.name, start_url=f"/api/auth/oauth/{p.id}/start")
        for p in request.app[oauth.OAUTH].providers.values()
    ]


@routes.get("/api/auth/oauth/{provider}/start", name="api_oauth_start")
@raw(access="public", summary="Start signing in with a provider (redirects)", rate="auth")
async def start(request: web.Request) -> web.StreamResponse:
    """Redirect to the provider's consent page. ``?next=`` is where to land afterwards."""
    provider = request.app[oauth.OAUTH].get(request.match_info["provider"])
    try:
        flow = await oauth.begin_flow(
            request, provider, purpose="login", next_url=safe_next(request.query.get("next"))
        )
    except AppError as exc:
        return _failure(request, exc, provider.name)
    response = web.Response(status=302, headers={"Location": flow.authorize_url})
    oauth.set_flow_cookie(request, response, flow.browser_token)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.post("/api/auth/oauth/{provider}/link", name="api_oauth_link")
@endpoint(access="user", response=LinkOut, tags=["auth"], rate="auth", errors=[403, 404])
async def link(request: web.Request) -> web.Response:
    """Start linking a provider to your account: open `authorize_url` in this browser.

    Needs a browser session (not an API key): the provider returns to that browser, and the
    link is made only for the user who started it."""
    url, response = await oauth.begin_link(request, request.match_info["provider"])
    response.content_type = "application/json"
    response.text = LinkOut(authorize_url=url).model_dump_json()
    return response


@routes.get("/api/auth/oauth/{provider}/callback", name="api_oauth_callback")
@raw(access="public", summary="Where the provider sends the browser back", rate="auth")
async def callback(request: web.Request) -> web.StreamResponse:
    """Finish a sign-in or a link; redirects on success."""
    provider = request.app[oauth.OAUTH].get(request.match_info["provider"])
    try:
        return await _finish(request, provider)
    except AppError as exc:
        await audit.record(
            request.app,
            request,
            "auth.login_failed",
            actor_id=None,
            details={"method": provider.id, "reason": exc.error_code},
        )
        return _failure(request, exc, provider.name)


async def _finish(request: web.Request, provider: oauth.OAuthProvider) -> web.StreamResponse:
    query = request.query
    flow = await oauth.consume_flow(request, provider.id, query.get("state"))
    if "error" in query:
        # Consent refused (or the provider failed before asking): nothing more to check.
        log.info("oauth_denied", provider=provider.id, error=query.get("error", "")[:60])
        raise OAuthFailed(
            f"{provider.name} did not let us sign you in (you may have cancelled). "
            "You can try again, or use your email and password.",
            code="oauth_denied",
        )
    code = query.get("code")
    if not code or len(code) > 2048:
        raise OAuthFailed(f"{provider.name} sent no sign-in code. Try again.", code="oauth_failed")
    found = await provider.identity(
        request.app[oauth.OAUTH].http,
        code=code,
        redirect_uri=flow.redirect_uri,
        code_verifier=flow.code_verifier,
        nonce=flow.nonce,
    )
    db = request.app[DB]
    if flow.purpose == "link":
        actor = current_actor(request)
        if actor is None or actor.user_id != flow.user_id:
            raise OAuthFailed(
                "You are no longer logged in as the account that asked for this link. "
                "Log in and start again from your account page.",
                code="oauth_link_session",
            )
        await oauth.link_identity(db, actor.user_id, provider.name, found)
        await oauth.record_identity_change(request, "oauth.linked", actor.user_id, provider.id)
        response = web.Response(status=303, headers={"Location": oauth.LINKED_ACCOUNTS})
        flash(response, f"Your {provider.name} account is linked. You can now log in with it.")
        return response

    result = await oauth.sign_in(db, provider.name, found)
    user_id = result.user.id
    if result.created:
        await audit.record(
            request.app,
            request,
            "auth.register",
            actor_id=user_id,
            target_type="user",
            target_id=user_id,
            details={"method": provider.id},
        )
    await audit.record(
        request.app,
        request,
        "auth.login",
        actor_id=user_id,
        target_type="user",
        target_id=user_id,
        details={"method": provider.id},
    )
    response = web.Response(status=303, headers={"Location": safe_next(flow.next_url)})
    await start_session(request, response, result.user)
    if result.created:
        if result.user.email_verified_at is None:
            await queue_account_mail(request, VERIFY_EMAIL, result.user.email)
        flash(response, f"Welcome, {result.user.name}! Your account is ready.")
    return response


def _wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


def _failure(request: web.Request, exc: AppError, provider_name: str) -> web.StreamResponse:
    """A browser gets a page that says what happened and what to do; others get JSON."""
    if not _wants_html(request):
        raise exc
    context = {
        "nav": "login",
        "provider": provider_name,
        "code": exc.error_code,
        "message": exc.message,
        "email": getattr(exc, "email", None),
        "login_url": "/login?next=" + quote(oauth.LINKED_ACCOUNTS, safe="/"),
    }
    response = aiohttp_jinja2.render_template(
        "account/oauth_error.html", request, context, status=exc.status
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/api/auth/oauth/identities", name="api_oauth_identities")
@endpoint(access="user", response=list[IdentityOut], tags=["auth"])
async def identities(request: web.Request) -> list[IdentityOut]:
    """The Google or Facebook accounts you can log in with."""
    actor = require_user(request)
    return [IdentityOut.of(i) for i in await oauth.list_identities(request.app[DB], actor.user_id)]


@routes.delete("/api/auth/oauth/identities/{id}", name="api_oauth_unlink")
@endpoint(access="user", status=204, tags=["auth"], errors=[404, 409])
async def unlink(request: web.Request) -> None:
    """Unlink a provider account. Refused (409 `last_login_method`) when it is the only way
    to log in: an account without a password must keep one."""
    actor = require_user(request)
    removed = await oauth.unlink_identity(request.app[DB], actor.user_id, request.match_info["id"])
    await oauth.record_identity_change(request, "oauth.unlinked", actor.user_id, removed.provider)
