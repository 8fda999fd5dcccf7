"""A fake Google (a real OpenID Connect provider) and a fake Facebook (OAuth 2 + Graph API).

It issues real RS256-signed ID tokens from a freshly generated RSA key, publishes the key in its
JWKS, checks client credentials, redirect URIs and PKCE verifiers, and makes each code work once.
The consent pages answer at once (no login form): they redirect back to ``redirect_uri`` with a
code and the state, or with ``error=access_denied`` in ``deny`` mode.

Misbehaviours for tests: ``id_token_overrides`` (another nonce, audience, expiry, ...),
``sign_with_other_key`` (same key id, another key: a forged signature), ``token_status`` (the
token endpoint fails).

Use ``serve_fake(fake.app())`` inside a test's event loop, or ``ServedInThread`` (in
``tests.fakes.in_thread``) when the app under test runs in another process (browser tests).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from joserfc import jwt
from joserfc.jwk import RSAKey

KID = "fake-key-1"


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str | None
    nonce: str | None
    user: dict[str, Any]


@dataclass
class FakeOIDC:
    google_client_id: str = "google-client-id.apps.example"
    google_client_secret: str = "google-client-secret"
    facebook_client_id: str = "1234567890"
    facebook_client_secret: str = "facebook-app-secret"
    #: Claims of the person who "signs in" at Google.
    google_user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "109876543210",
            "email": "gina@example.com",
            "email_verified": True,
            "name": "Gina Google",
        }
    )
    #: The Graph API ``/me`` of the person who "signs in" at Facebook.
    facebook_user: dict[str, Any] = field(
        default_factory=lambda: {
            "id": "10158000000001",
            "name": "Fay Facebook",
            "email": "fay@example.com",
        }
    )
    deny: bool = False
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    sign_with_other_key: bool = False
    token_status: int | None = None
    key: RSAKey = field(default_factory=_new_key)
    other_key: RSAKey = field(default_factory=_new_key)
    #: Every consent request, as the query it came with.
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: int = 0
    _grants: dict[str, Grant] = field(default_factory=dict)
    _access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- the app --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/dialog/oauth", self.facebook_dialog)
        app.router.add_get("/oauth/access_token", self.facebook_token)
        app.router.add_get("/me", self.facebook_me)
        return app

    @staticmethod
    def base(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}"

    def settings(self, base_url: str) -> dict[str, Any]:
        """The app settings that point both providers at this fake, served at ``base_url``."""
        return {
            "oauth_google_client_id": self.google_client_id,
            "oauth_google_client_secret": self.google_client_secret,
            "oauth_google_discovery_url": f"{base_url}/.well-known/openid-configuration",
            "oauth_facebook_client_id": self.facebook_client_id,
            "oauth_facebook_client_secret": self.facebook_client_secret,
            "oauth_facebook_auth_url": f"{base_url}/dialog/oauth",
            "oauth_facebook_token_url": f"{base_url}/oauth/access_token",
            "oauth_facebook_graph_url": base_url,
        }

    # -- Google: OpenID Connect -----------------------------------------------------------------

    async def discovery(self, request: web.Request) -> web.Response:
        base = self.base(request)
        return web.json_response(
            {
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/token",
                "jwks_uri": f"{base}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.google_client_id or not redirect_uri:
            return web.Response(status=400, text="unknown client or missing redirect_uri")
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return web.Response(status=400, text="code flow with S256 PKCE only")
        return self._consent(
            redirect_uri,
            query,
            Grant(
                self.google_client_id,
                redirect_uri,
                query.get("code_challenge"),
                query.get("nonce"),
                dict(self.google_user),
            ),
        )

    def _consent(self, redirect_uri: str, query: dict[str, str], grant: Grant) -> web.Response:
        back: dict[str, str] = {}
        if self.deny:
            back["error"] = "access_denied"
            back["error_description"] = "The user denied access"
        else:
            code = secrets.token_urlsafe(24)
            self._grants[code] = grant
            back["code"] = code
        if "state" in query:
            back["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return web.Response(
            status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(back)}"}
        )

    def _redeem(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> Grant | None:
        grant = self._grants.pop(code, None)  # a code works once
        if grant is None or grant.client_id != client_id or grant.redirect_uri != redirect_uri:
            return None
        if grant.challenge is not None and _challenge(verifier) != grant.challenge:
            return None
        return grant

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.token_status is not None:
            return web.json_response({"error": "server_error"}, status=self.token_status)
        form = await request.post()
        client_id, client_secret = (
            str(form.get("client_id", "")),
            str(form.get("client_secret", "")),
        )
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, client_secret = decoded.partition(":")
        if client_id != self.google_client_id or client_secret != self.google_client_secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        grant = self._redeem(
            str(form.get("code", "")),
            client_id,
            str(form.get("redirect_uri", "")),
            str(form.get("code_verifier", "")),
        )
        if grant is None:
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {
            "iss": self.base(request),
            "aud": self.google_client_id,
            "azp": self.google_client_id,
            "iat": now,
            "exp": now + 3600,
            **grant.user,
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        claims.update(self.id_token_overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key = self.other_key if self.sign_with_other_key else self.key
        id_token = jwt.encode({"alg": "RS256", "kid": KID}, claims, key)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(24),
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": 3599,
                "scope": "openid email profile",
            }
        )

    # -- Facebook: OAuth 2 + Graph --------------------------------------------------------------

    async def facebook_dialog(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.facebook_client_id or not redirect_uri:
            return web.Response(status=400, text="unknown app or missing redirect_uri")
        return self._consent(
            redirect_uri,
            query,
            Grant(
                self.facebook_client_id,
                redirect_uri,
                query.get("code_challenge"),
                None,
                dict(self.facebook_user),
            ),
        )

    @staticmethod
    def _graph_error(message: str, status: int = 400) -> web.Response:
        return web.json_response(
            {"error": {"message": message, "type": "OAuthException", "code": 190}}, status=status
        )

    async def facebook_token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.token_status is not None:
            return self._graph_error("Service temporarily unavailable", self.token_status)
        query = request.query
        if (
            query.get("client_id") != self.facebook_client_id
            or query.get("client_secret") != self.facebook_client_secret
        ):
            return self._graph_error("Error validating client secret.")
        grant = self._redeem(
            query.get("code", ""),
            self.facebook_client_id,
            query.get("redirect_uri", ""),
            query.get("code_verifier", ""),
        )
        if grant is None:
            return self._graph_error("Invalid verification code format.")
        token = secrets.token_urlsafe(32)
        self._access_tokens[token] = grant.user
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": 5183944}
        )

    async def facebook_me(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        user = self._access_tokens.get(token)
        if user is None:
            return self._graph_error("Invalid OAuth access token.")
        proof = hmac.new(
            self.facebook_client_secret.encode(), token.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(proof, request.query.get("appsecret_proof", "")):
            return self._graph_error("Invalid appsecret_proof provided in the API argument")
        fields = request.query.get("fields", "id,name").split(",")
        return web.json_response({k: v for k, v in user.items() if k in fields})
