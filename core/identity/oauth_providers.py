"""Social login providers: Google (OpenID Connect) and Facebook (OAuth 2 + Graph ``/me``).

A provider turns a one-time authorization code into a verified ``ProviderIdentity``. Nothing the
browser sends is trusted: Google's identity comes from an ID token whose signature (against the
provider's published keys), issuer, audience, lifetime and nonce are checked; Facebook's comes
from the Graph API, called with our own access token and app secret proof.

Codes, tokens and secrets are never logged nor put in an error message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode, urlsplit

import aiohttp
import structlog
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from multinotes import outgoing
from multinotes.errors import AppError

log = structlog.get_logger("multinotes.oauth")

#: Seconds of clock skew tolerated on ``exp`` and ``iat``.
LEEWAY = 60
#: How long the discovery document and the key set are reused before being fetched again.
METADATA_TTL = 3600.0
#: An unknown key id triggers a refetch of the key set, at most this often (keys rotate).
JWKS_REFRESH_MIN_INTERVAL = 60.0
#: Asymmetric algorithms only: "none" and HMAC (keyed with a public value) are never accepted.
ACCEPTED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


class OAuthFailed(AppError):
    """The sign-in cannot go on: refused consent, a stale or foreign state, an invalid token."""

    status = 400
    code = "oauth_failed"
    default_message = "Signing in with this provider did not work. Try again."


class OAuthProviderError(AppError):
    """The provider could not be reached or answered something unusable."""

    status = 502
    code = "oauth_provider_error"
    default_message = "The sign-in provider is not answering properly. Try again later."


@dataclass(frozen=True)
class ProviderIdentity:
    """Who the provider says signed in; ``email`` is only to be trusted when ``email_verified``."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


class OAuthProvider(Protocol):
    id: str
    name: str

    async def authorization_url(
        self,
        http: aiohttp.ClientSession,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str,
    ) -> str:
        """Where to send the browser to ask the person for consent."""
        ...

    async def identity(
        self,
        http: aiohttp.ClientSession,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        nonce: str,
    ) -> ProviderIdentity:
        """Exchange the one-time ``code`` and return the verified identity."""
        ...

    def authorization_origins(self) -> set[str]:
        """Origins of the consent page (pages allow forms to redirect there); no remote call."""
        ...


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _json(provider: str, response: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    """The JSON object of a successful answer, or an ``OAuthProviderError`` naming ``what``."""
    if response.status != 200:
        # The error body can echo what we sent (codes, secrets): log its status and code only.
        error = ""
        try:
            body = await response.json(content_type=None)
            if isinstance(body, dict):
                raw = body.get("error")
                error = str(raw.get("type") if isinstance(raw, dict) else raw or "")[:80]
        except (ValueError, aiohttp.ClientError):
            pass
        log.warning(
            "oauth_provider_refused",
            provider=provider,
            step=what,
            status=response.status,
            error=error,
        )
        raise OAuthProviderError(
            f"{provider} did not accept the sign-in ({what} failed). Try again.",
            code="oauth_provider_error",
        )
    try:
        body = await response.json(content_type=None)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise OAuthProviderError(f"{provider} sent a malformed answer ({what}).")
    return body


@dataclass
class _Cached:
    value: Any = None
    fetched_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self, ttl: float) -> bool:
        return self.value is not None and time.monotonic() - self.fetched_at < ttl


@dataclass
class OpenIDProvider:
    """An OpenID Connect provider found through its discovery document (Google by default).

    Authorization code flow with PKCE (S256), ``state`` and ``nonce``; the ID token from the
    token endpoint is validated against the key set at the document's ``jwks_uri``."""

    id: str
    name: str
    client_id: str
    client_secret: str = field(repr=False)
    discovery_url: str
    scope: str = "openid email profile"
    #: Issuers accepted besides the document's own (Google also signs "accounts.google.com").
    extra_issuers: tuple[str, ...] = ()

    REQUIRED: ClassVar[tuple[str, ...]] = (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
    )

    def __post_init__(self) -> None:
        self._metadata = _Cached()
        self._jwks = _Cached()

    async def _get(self, http: aiohttp.ClientSession, url: str, what: str) -> dict[str, Any]:
        try:
            async with http.get(
                url, headers={"Accept": "application/json"}, **outgoing.AIOHTTP_REQUEST_ARGS
            ) as response:
                return await _json(self.name, response, what)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "oauth_provider_unreachable", provider=self.id, step=what, error=type(exc).__name__
            )
            raise OAuthProviderError(f"Could not reach {self.name}. Try again later.") from None

    async def metadata(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        cache = self._metadata
        if cache.fresh(METADATA_TTL):
            return dict(cache.value)
        async with cache.lock:
            if not cache.fresh(METADATA_TTL):
                document = await self._get(http, self.discovery_url, "discovery")
                missing = [k for k in self.REQUIRED if not isinstance(document.get(k), str)]
                if missing:
                    raise OAuthProviderError(
                        f"{self.name}'s discovery document lacks {', '.join(missing)}."
                    )
                cache.value, cache.fetched_at = document, time.monotonic()
        return dict(cache.value)

    async def key_set(self, http: aiohttp.ClientSession, *, refresh: bool = False) -> KeySet:
        cache = self._jwks
        if cache.fresh(METADATA_TTL) and not refresh:
            return cache.value
        async with cache.lock:
            recently = time.monotonic() - cache.fetched_at < JWKS_REFRESH_MIN_INTERVAL
            if cache.value is None or not cache.fresh(METADATA_TTL) or (refresh and not recently):
                metadata = await self.metadata(http)
                document = await self._get(http, metadata["jwks_uri"], "key set")
                try:
                    keys = KeySet.import_key_set(
                        {"keys": [k for k in document.get("keys", []) if _usable_key(k)]}
                    )
                except (JoseError, ValueError, TypeError) as exc:
                    raise OAuthProviderError(f"{self.name} published unusable keys.") from exc
                cache.value, cache.fetched_at = keys, time.monotonic()
        return cache.value

    def authorization_origins(self) -> set[str]:
        # The discovery document's origin, and the consent page's once the document is known
        # (for Google both are accounts.google.com).
        found = {origin(self.discovery_url)}
        if self._metadata.value is not None:
            found.add(origin(self._metadata.value["authorization_endpoint"]))
        return found

    async def authorization_url(
        self,
        http: aiohttp.ClientSession,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str,
    ) -> str:
        endpoint = (await self.metadata(http))["authorization_endpoint"]
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "scope": self.scope,
                "redirect_uri": redirect_uri,
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "prompt": "select_account",
            }
        )
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def identity(
        self,
        http: aiohttp.ClientSession,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        nonce: str,
    ) -> ProviderIdentity:
        metadata = await self.metadata(http)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code_verifier": code_verifier,
        }
        try:
            async with http.post(
                metadata["token_endpoint"],
                data=form,
                headers={"Accept": "application/json"},
                **outgoing.AIOHTTP_REQUEST_ARGS,
            ) as response:
                tokens = await _json(self.name, response, "code exchange")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "oauth_provider_unreachable",
                provider=self.id,
                step="code exchange",
                error=type(exc).__name__,
            )
            raise OAuthProviderError(f"Could not reach {self.name}. Try again later.") from None
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise OAuthProviderError(f"{self.name} sent no ID token.")
        claims = await self.validate_id_token(http, id_token, nonce=nonce, metadata=metadata)
        email = claims.get("email")
        return ProviderIdentity(
            provider=self.id,
            subject=str(claims["sub"]),
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            email_verified=claims.get("email_verified") in (True, "true"),
            name=_clean_name(claims.get("name")),
        )

    async def validate_id_token(
        self,
        http: aiohttp.ClientSession,
        id_token: str,
        *,
        nonce: str,
        metadata: dict[str, Any],
    ) -> dict[str, Any]:
        """The claims of ``id_token`` once every check passed; ``OAuthFailed`` otherwise."""
        supported = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in ACCEPTED_ALGORITHMS if a in supported] or ["RS256"]
        try:
            try:
                token = jwt.decode(id_token, await self.key_set(http), algorithms=algorithms)
            except InvalidKeyIdError:
                # The provider may have rotated its keys since we fetched them.
                keys = await self.key_set(http, refresh=True)
                token = jwt.decode(id_token, keys, algorithms=algorithms)
            issuers = [metadata["issuer"], *self.extra_issuers]
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY,
                iss={"essential": True, "values": issuers},
                aud={"essential": True, "value": self.client_id},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except ExpiredTokenError:
            raise _invalid_token(self, "expired") from None
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise _invalid_token(self, _reason(exc)) from None
        claims = dict(token.claims)
        audience = claims["aud"]
        azp = claims.get("azp")
        # Several audiences: the token must have been issued to us (OpenID Connect Core 3.1.3.7).
        if (isinstance(audience, list) and len(audience) > 1 and azp is None) or (
            azp is not None and azp != self.client_id
        ):
            raise _invalid_token(self, "azp")
        return claims


def _usable_key(key: Any) -> bool:
    return isinstance(key, dict) and key.get("use", "sig") == "sig" and key.get("kty") != "oct"


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClaimError):
        return f"claim {exc.claim}"
    return type(exc).__name__


def _invalid_token(provider: OpenIDProvider, reason: str) -> OAuthFailed:
    # The reason goes to the log (it helps an operator spot a misconfigured client id); the
    # visitor learns only that the sign-in could not be verified.
    log.warning("oauth_id_token_rejected", provider=provider.id, reason=reason)
    return OAuthFailed(
        f"The sign-in from {provider.name} could not be verified. Try again.",
        code="oauth_invalid_token",
    )


def _clean_name(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()[:200]
    return None


@dataclass
class FacebookProvider:
    """Facebook Login: OAuth 2 code flow with state and PKCE, then Graph ``/me``.

    Facebook issues no ID token for this flow; the identity is what the Graph API returns for an
    access token we obtained ourselves, with ``appsecret_proof`` so a leaked token cannot be
    replayed by another app. The Graph API does not say whether the email was confirmed, so it
    counts as unverified (the usual verification link is mailed)."""

    client_id: str
    client_secret: str = field(repr=False)
    auth_url: str
    token_url: str
    graph_url: str
    id: str = "facebook"
    name: str = "Facebook"

    def authorization_origins(self) -> set[str]:
        return {origin(self.auth_url)}

    async def authorization_url(
        self,
        http: aiohttp.ClientSession,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str,
    ) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "state": state,
                "response_type": "code",
                "scope": "public_profile,email",
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{self.auth_url}?{query}"

    async def identity(
        self,
        http: aiohttp.ClientSession,
        *,
        code: str,
        redirect_uri: str,
        code_verifier: str,
        nonce: str,
    ) -> ProviderIdentity:
        try:
            async with http.get(
                self.token_url,
                params={
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "redirect_uri": redirect_uri,
                    "code": code,
                    "code_verifier": code_verifier,
                },
                **outgoing.AIOHTTP_REQUEST_ARGS,
            ) as response:
                tokens = await _json(self.name, response, "code exchange")
            access_token = tokens.get("access_token")
            if not isinstance(access_token, str) or not access_token:
                raise OAuthProviderError("Facebook sent no access token.")
            proof = hmac.new(
                self.client_secret.encode(), access_token.encode(), hashlib.sha256
            ).hexdigest()
            async with http.get(
                f"{self.graph_url.rstrip('/')}/me",
                params={
                    "fields": "id,name,email",
                    "access_token": access_token,
                    "appsecret_proof": proof,
                },
                **outgoing.AIOHTTP_REQUEST_ARGS,
            ) as response:
                profile = await _json(self.name, response, "profile")
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("oauth_provider_unreachable", provider=self.id, error=type(exc).__name__)
            raise OAuthProviderError("Could not reach Facebook. Try again later.") from None
        subject = profile.get("id")
        if not isinstance(subject, str | int) or not str(subject):
            raise OAuthProviderError("Facebook sent a profile without an id.")
        email = profile.get("email")
        return ProviderIdentity(
            provider=self.id,
            subject=str(subject),
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            email_verified=False,
            name=_clean_name(profile.get("name")),
        )
