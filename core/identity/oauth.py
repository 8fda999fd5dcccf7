"""Social login: which providers are enabled, sign-in flows, and linked identities.

A flow starts in a browser (``begin_flow``): random ``state``, ``nonce`` and PKCE verifier are
stored server-side in ``oauth_flows``, bound to that browser by a random HttpOnly cookie. The
callback (``finish_flow``) must come back to the same browser with the same state, once, within
ten minutes; only then is the code exchanged and the provider's identity verified.

What a verified identity does (``sign_in``):

- known (provider, subject): log in as its user (unless the user is blocked);
- unknown, and no account has its email: create the account (no password) and log in;
- unknown, and an account has its email: refuse. The person must log in to that account the way
  they usually do and link the provider from the account page, so a social login never takes
  over an existing account.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import aiohttp
import structlog
from aiohttp import web
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from multinotes import audit, outgoing
from multinotes.db import Database, rows_affected, utcnow
from multinotes.domain_events import stage
from multinotes.errors import Conflict, Forbidden, NotFound
from multinotes.identity.account_mail import email_verified, public_base_url
from multinotes.identity.actor import require_user
from multinotes.identity.models import User
from multinotes.identity.oauth_models import OAuthFlow, OAuthIdentity
from multinotes.identity.oauth_providers import (
    FacebookProvider,
    OAuthFailed,
    OAuthProvider,
    OpenIDProvider,
    ProviderIdentity,
)
from multinotes.identity.service import normalize_email
from multinotes.keys import DB, SETTINGS
from multinotes.settings import Settings

log = structlog.get_logger("multinotes.oauth")

FLOW_TTL = timedelta(minutes=10)
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
COOKIE_PATH = "/api/auth/oauth/"
GOOGLE_ISSUER = "https://accounts.google.com"

Purpose = Literal["login", "link"]


class OAuthRegistry:
    """The providers configured in settings and the HTTP client they share (one per app)."""

    def __init__(self, providers: dict[str, OAuthProvider]) -> None:
        self.providers = providers
        self._http: aiohttp.ClientSession | None = None

    def get(self, provider_id: str) -> OAuthProvider:
        """The enabled provider, or 404: an unconfigured provider does not exist."""
        provider = self.providers.get(provider_id)
        if provider is None:
            raise NotFound("This sign-in provider is not enabled here.")
        return provider

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise RuntimeError("the OAuth HTTP client is not started")
        return self._http

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            connector=outgoing.connector(),
            timeout=HTTP_TIMEOUT,
            headers={"User-Agent": "MultinotesAI"},
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def form_action_origins(self) -> list[str]:
        """The origins of the enabled providers' consent pages: a page whose form redirects there
        (the account page's "Link Google" button) must allow them in its ``form-action``, which
        Chrome applies to redirects. Empty when no provider is enabled."""
        return sorted({o for p in self.providers.values() for o in p.authorization_origins()})


OAUTH: web.AppKey[OAuthRegistry] = web.AppKey("oauth", OAuthRegistry)


def providers_from_settings(settings: Settings) -> dict[str, OAuthProvider]:
    """A provider is enabled when both its client id and secret are set."""
    providers: dict[str, OAuthProvider] = {}
    if settings.oauth_google_client_id and settings.oauth_google_client_secret:
        providers["google"] = OpenIDProvider(
            id="google",
            name="Google",
            client_id=settings.oauth_google_client_id,
            client_secret=settings.oauth_google_client_secret.get_secret_value(),
            discovery_url=settings.oauth_google_discovery_url,
            extra_issuers=("accounts.google.com",)
            if settings.oauth_google_discovery_url.startswith(GOOGLE_ISSUER + "/")
            else (),
        )
    if settings.oauth_facebook_client_id and settings.oauth_facebook_client_secret:
        providers["facebook"] = FacebookProvider(
            client_id=settings.oauth_facebook_client_id,
            client_secret=settings.oauth_facebook_client_secret.get_secret_value(),
            auth_url=settings.oauth_facebook_auth_url,
            token_url=settings.oauth_facebook_token_url,
            graph_url=settings.oauth_facebook_graph_url,
        )
    return providers


def setup_oauth(app: web.Application) -> None:
    """The provider registry, its HTTP client, and the template global listing providers.

    Call after ``setup_templates``."""
    import aiohttp_jinja2

    registry = OAuthRegistry(providers_from_settings(app[SETTINGS]))
    app[OAUTH] = registry
    aiohttp_jinja2.get_env(app).globals["oauth_providers"] = [
        {"id": p.id, "name": p.name} for p in registry.providers.values()
    ]

    async def http_client(app: web.Application) -> AsyncIterator[None]:
        await registry.start()
        yield
        await registry.close()

    app.cleanup_ctx.append(http_client)


# -- flows --------------------------------------------------------------------------------------


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def flow_cookie_name(settings: Settings) -> str:
    return "__Secure-mn_oauth" if settings.secure_cookies else "mn_oauth"


def callback_url(request: web.Request, provider_id: str) -> str:
    """The redirect URI registered at the provider: ``public_url`` when set, else the address
    the server listens on (a forged Host header cannot change it)."""
    return f"{public_base_url(request)}/api/auth/oauth/{provider_id}/callback"


@dataclass(frozen=True)
class StartedFlow:
    authorize_url: str
    browser_token: str


async def begin_flow(
    request: web.Request,
    provider: OAuthProvider,
    *,
    purpose: Purpose,
    user_id: str | None = None,
    next_url: str = "/",
) -> StartedFlow:
    """Create a flow and return where to send the browser; set the cookie with
    ``set_flow_cookie``. Several flows (tabs) of one browser share its cookie."""
    settings = request.app[SETTINGS]
    browser = request.cookies.get(flow_cookie_name(settings), "")
    if not (40 <= len(browser) <= 64):
        browser = secrets.token_urlsafe(32)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # 64 characters of the unreserved set (RFC 7636)
    redirect_uri = callback_url(request, provider.id)
    # The remote call (discovery) happens before the transaction, never inside it.
    url = await provider.authorization_url(
        request.app[OAUTH].http,
        redirect_uri=redirect_uri,
        state=state,
        nonce=nonce,
        code_challenge=pkce_challenge(verifier),
    )
    now = utcnow()
    async with request.app[DB].transaction() as session:
        # Sweep abandoned flows as new ones start: the table stays as small as recent traffic.
        await session.execute(delete(OAuthFlow).where(OAuthFlow.expires_at < now))
        session.add(
            OAuthFlow(
                state_hash=_sha256(state),
                browser_hash=_sha256(browser),
                provider=provider.id,
                purpose=purpose,
                user_id=user_id,
                nonce=nonce,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                next_url=next_url[:500],
                created_at=now,
                expires_at=now + FLOW_TTL,
            )
        )
    return StartedFlow(url, browser)


def set_flow_cookie(request: web.Request, response: web.StreamResponse, browser_token: str) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(
        flow_cookie_name(settings),
        browser_token,
        max_age=int(FLOW_TTL.total_seconds()),
        httponly=True,
        secure=settings.secure_cookies,
        # Lax: the provider sends the browser back with a top-level GET, which carries it.
        samesite="Lax",
        path=COOKIE_PATH,
    )


def _bad_state(reason: str) -> OAuthFailed:
    log.info("oauth_state_rejected", reason=reason)
    return OAuthFailed(
        "This sign-in link is invalid, was already used, or was started in another browser. "
        "Start again from the login page.",
        code="oauth_state_invalid",
    )


async def consume_flow(request: web.Request, provider_id: str, state: str | None) -> OAuthFlow:
    """The flow this callback finishes, deleted so it cannot be used again."""
    db = request.app[DB]
    browser = request.cookies.get(flow_cookie_name(request.app[SETTINGS]))
    if not state or len(state) > 200:
        raise _bad_state("missing")
    if not browser:
        raise _bad_state("no browser cookie")
    async with db.read() as session:
        flow = await session.scalar(select(OAuthFlow).where(OAuthFlow.state_hash == _sha256(state)))
    if flow is None:
        raise _bad_state("unknown or used")
    if not secrets.compare_digest(flow.browser_hash, _sha256(browser)):
        # Someone else's state (login CSRF): refuse, and leave the owner's flow alone.
        raise _bad_state("other browser")
    if flow.provider != provider_id:
        raise _bad_state("other provider")
    async with db.transaction() as session:
        result = await session.execute(delete(OAuthFlow).where(OAuthFlow.id == flow.id))
    if rows_affected(result) != 1:
        raise _bad_state("used concurrently")
    if flow.expires_at <= utcnow():
        raise OAuthFailed(
            "This sign-in took too long and expired. Start again from the login page.",
            code="oauth_state_expired",
        )
    return flow


# -- what a verified identity does --------------------------------------------------------------


class AccountExists(Conflict):
    """An account already uses the provider's email; it must be linked from inside."""

    code = "oauth_account_exists"

    def __init__(self, provider_name: str, email: str) -> None:
        super().__init__(
            f"An account with the email {email} already exists. Log in to it the way you "
            f"usually do (with your password), then link {provider_name} from your account "
            "page. For your safety we never link accounts on our own."
        )
        self.email = email
        self.provider_name = provider_name


@dataclass(frozen=True)
class SignIn:
    user: User
    created: bool


def _blocked() -> Forbidden:
    return Forbidden("This account is blocked. Contact the administrator.", code="account_blocked")


async def sign_in(db: Database, provider_name: str, found: ProviderIdentity) -> SignIn:
    """Log in with a verified identity, creating the account if nobody has its email."""
    now = utcnow()
    async with db.read() as session:
        row = (
            await session.execute(
                select(OAuthIdentity, User)
                .join(User, User.id == OAuthIdentity.user_id)
                .where(
                    OAuthIdentity.provider == found.provider,
                    OAuthIdentity.subject == found.subject,
                )
            )
        ).first()
    if row is not None:
        identity, user = row
        if not user.is_active:
            raise _blocked()
        async with db.transaction() as session:
            await session.execute(
                update(OAuthIdentity)
                .where(OAuthIdentity.id == identity.id)
                .values(last_login_at=now, email=found.email or identity.email)
            )
        return SignIn(user, created=False)

    if not found.email:
        raise OAuthFailed(
            f"{provider_name} did not share an email address with us. Allow access to your "
            "email address, or sign up with email and a password.",
            code="oauth_email_missing",
        )
    email = normalize_email(found.email)
    if found.provider == "google" and not found.email_verified:
        raise OAuthFailed(
            f"Your {provider_name} email address is not verified. Verify it with "
            f"{provider_name} first, or sign up with email and a password.",
            code="oauth_email_unverified",
        )
    try:
        async with db.transaction() as session:
            if await session.scalar(select(User.id).where(User.email == email)) is not None:
                raise AccountExists(provider_name, email)
            users = await session.scalar(select(func.count()).select_from(User))
            user = User(
                email=email,
                name=found.name or email.split("@")[0],
                password_hash=None,
                role="admin" if users == 0 else "user",
                email_verified_at=now if found.email_verified else None,
            )
            session.add(user)
            await session.flush()
            session.add(
                OAuthIdentity(
                    user_id=user.id,
                    provider=found.provider,
                    subject=found.subject,
                    email=email,
                    created_at=now,
                    last_login_at=now,
                )
            )
            if found.email_verified:
                stage(session, email_verified(user.id, email))
    except IntegrityError:
        # Raced with a registration for the same email, or the same identity signing in twice
        # at once: let the winner stand, and ask this attempt to try again.
        raise Conflict(
            "This account was just created by another request. Try signing in again.",
            code="oauth_race",
        ) from None
    log.info("oauth_account_created", provider=found.provider, user_id=user.id)
    return SignIn(user, created=True)


async def link_identity(
    db: Database, user_id: str, provider_name: str, found: ProviderIdentity
) -> OAuthIdentity:
    """Attach a verified identity to ``user_id`` (who started the link while logged in)."""
    async with db.read() as session:
        existing = await session.scalar(
            select(OAuthIdentity).where(
                OAuthIdentity.provider == found.provider,
                OAuthIdentity.subject == found.subject,
            )
        )
        same_provider = await session.scalar(
            select(OAuthIdentity).where(
                OAuthIdentity.user_id == user_id, OAuthIdentity.provider == found.provider
            )
        )
    if existing is not None:
        if existing.user_id == user_id:
            return existing
        raise Conflict(
            f"This {provider_name} account is already linked to another MultinotesAI account.",
            code="oauth_identity_taken",
        )
    if same_provider is not None:
        raise Conflict(
            f"Another {provider_name} account is already linked to yours. Unlink it first.",
            code="oauth_provider_linked",
        )
    record = OAuthIdentity(
        user_id=user_id,
        provider=found.provider,
        subject=found.subject,
        email=found.email,
        created_at=utcnow(),
    )
    try:
        async with db.transaction() as session:
            session.add(record)
    except IntegrityError:
        raise Conflict(
            f"This {provider_name} account is already linked to another MultinotesAI account.",
            code="oauth_identity_taken",
        ) from None
    log.info("oauth_identity_linked", provider=found.provider, user_id=user_id)
    return record


async def list_identities(db: Database, user_id: str) -> list[OAuthIdentity]:
    async with db.read() as session:
        rows = await session.scalars(
            select(OAuthIdentity)
            .where(OAuthIdentity.user_id == user_id)
            .order_by(OAuthIdentity.created_at)
        )
        return list(rows)


async def unlink_identity(db: Database, user_id: str, identity_id: str) -> OAuthIdentity:
    """Remove one of the user's identities, unless it is their last way to log in."""
    async with db.transaction() as session:
        # Lock the user's row: two concurrent unlinks must not remove the last two ways in.
        user = await session.scalar(select(User).where(User.id == user_id).with_for_update())
        identity = await session.scalar(
            select(OAuthIdentity).where(
                OAuthIdentity.id == identity_id, OAuthIdentity.user_id == user_id
            )
        )
        if user is None or identity is None:
            raise NotFound("No such linked account.")
        others = await session.scalar(
            select(func.count())
            .select_from(OAuthIdentity)
            .where(OAuthIdentity.user_id == user_id, OAuthIdentity.id != identity_id)
        )
        if user.password_hash is None and not others:
            raise Conflict(
                "This is the only way to log in to your account. Set a password first "
                "(“Forgot your password?” mails you a link) or link another account.",
                code="last_login_method",
            )
        await session.execute(delete(OAuthIdentity).where(OAuthIdentity.id == identity_id))
    log.info("oauth_identity_unlinked", provider=identity.provider, user_id=user_id)
    return identity


# -- linking ------------------------------------------------------------------------------------

#: Where the account page lists linked sign-ins; a link flow comes back there.
LINKED_ACCOUNTS = "/account#linked-accounts"


async def begin_link(request: web.Request, provider_id: str) -> tuple[str, web.Response]:
    """Start linking a provider to the logged-in user; returns the consent URL and a response
    carrying the flow cookie (the caller fills in status and body)."""
    actor = require_user(request)
    provider = request.app[OAUTH].get(provider_id)
    if actor.via != "session":
        raise Forbidden(
            "Link accounts from a logged-in browser (the provider sends that browser back).",
            code="session_required",
        )
    flow = await begin_flow(
        request, provider, purpose="link", user_id=actor.user_id, next_url=LINKED_ACCOUNTS
    )
    response = web.Response()
    set_flow_cookie(request, response, flow.browser_token)
    response.headers["Cache-Control"] = "no-store"
    return flow.authorize_url, response


async def record_identity_change(
    request: web.Request, action: str, user_id: str, provider_id: str
) -> None:
    """An audit record of a provider linked to or unlinked from ``user_id``."""
    await audit.record(
        request.app,
        request,
        action,
        actor_id=user_id,
        target_type="user",
        target_id=user_id,
        details={"provider": provider_id},
    )
