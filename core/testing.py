"""Helpers for testing MultinotesAI and its plugins in isolation.

A plugin author's test::

    from multinotes.testing import plugin_client
    import my_plugin

    async def test_my_provider(tmp_path):
        async with plugin_client(tmp_path, [("my_plugin", my_plugin)]) as api:
            await api.register_admin()
            plugins = await api.get_json("/api/admin/plugins")
            assert plugins[0]["name"] == "my_plugin"

The app runs in embedded mode (SQLite in ``tmp_path``, no Redis) with exactly the plugins given.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from multinotes.plugin_host import PluginSource
from multinotes.settings import Settings

DEFAULT_PASSWORD = "correct horse battery staple"

#: Every password, token and key the helpers saw a test use, so a suite can check that none of
#: them reached its logs (see ``tests/support/log_guard.py``).
SEEN_SECRETS: set[str] = {DEFAULT_PASSWORD}
_SECRET_FIELD = re.compile(r"(^|_)(password|secret|token|api_key)$", re.IGNORECASE)
_SESSION_COOKIES = ("mn_session", "__Host-mn_session")


def remember_secret(value: object) -> None:
    """Note a secret a test used (too short or word-like values are not worth looking for)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or len(value) < 10:
        return
    if re.fullmatch(r"[a-z_.]+", value) and len(value) < 16:
        return  # reads like a word or an event name, not like a secret
    SEEN_SECRETS.add(value)


def remember_secrets(data: object) -> None:
    """Note every value of a password-, token-, secret- or key-named field, at any depth."""
    if isinstance(data, dict):
        for name, value in data.items():
            if isinstance(value, dict | list):
                remember_secrets(value)
            elif _SECRET_FIELD.search(str(name)) or (
                # "key" names many things; an API key (ours or a provider's) looks like one.
                name == "key" and isinstance(value, str) and value.startswith(("mn_", "sk-"))
            ):
                remember_secret(value)
    elif isinstance(data, list):
        for item in data:
            remember_secrets(item)


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for an isolated embedded app: its own data dir and a strong random key."""
    values: dict[str, Any] = {
        "mode": "embedded",
        "data_dir": data_dir,
        "secret_key": secrets.token_urlsafe(48),
        "log_level": "WARNING",
        "plugins": {},
        # Argon2 at full cost takes ~0.1-1.5 s of CPU per hash: a test suite registers
        # hundreds of users. Production refuses this setting.
        "password_hash_cost": "test",
    }
    values.update(overrides)
    settings = Settings(_env_file=None, **values)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, SecretStr):
                remember_secret(item)
    remember_secrets(settings.plugins)
    return settings


class ApiClient:
    """A test client that speaks the JSON API like a browser or an API client would.

    After ``login`` it carries the session cookie and sends the CSRF token on writes; with
    ``use_key`` it sends ``Authorization: Bearer`` instead and no cookies.
    """

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf: str | None = None
        self.bearer: str | None = None
        self.user: dict[str, Any] | None = None

    @property
    def app(self) -> web.Application:
        app = self.client.app
        assert app is not None
        return app

    def _headers(self, method: str, extra: dict[str, str] | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.bearer:
            headers["Authorization"] = f"Bearer {self.bearer}"
        elif self.csrf and method not in ("GET", "HEAD", "OPTIONS"):
            headers["X-CSRF-Token"] = self.csrf
        headers.update(extra or {})
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        remember_secrets(json)
        response = await self.client.request(
            method, path, json=json, headers=self._headers(method, headers), **kwargs
        )
        if response.content_type == "application/json":
            try:
                remember_secrets(await response.json())
            except ValueError:
                pass
        for cookie in self.client.session.cookie_jar:
            if cookie.key in _SESSION_COOKIES:
                remember_secret(cookie.value)
        return response

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("POST", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", path, **kw)

    async def get_json(self, path: str, status: int = 200) -> Any:
        response = await self.get(path)
        body = await response.json()
        assert response.status == status, (response.status, body)
        return body

    async def register(
        self, email: str, password: str = DEFAULT_PASSWORD, name: str = "Test User"
    ) -> dict[str, Any]:
        response = await self.post(
            "/api/auth/register", {"email": email, "password": password, "name": name}
        )
        body = await response.json()
        assert response.status == 201, body
        return dict(body)

    async def login(self, email: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
        response = await self.post("/api/auth/login", {"email": email, "password": password})
        body = await response.json()
        assert response.status == 200, body
        self.csrf = body["csrf_token"]
        self.user = body["user"]
        return dict(body["user"])

    async def register_and_login(
        self, email: str, password: str = DEFAULT_PASSWORD, name: str = "Test User"
    ) -> dict[str, Any]:
        await self.register(email, password, name)
        return await self.login(email, password)

    async def register_admin(self, email: str = "admin@example.com") -> dict[str, Any]:
        """The first account on a fresh install is the admin."""
        user = await self.register_and_login(email, name="Admin")
        assert user["role"] == "admin", user
        return user

    async def mark_verified(self) -> None:
        """Mark the logged-in user's email as verified (as if they clicked the mailed link)."""
        from sqlalchemy import update

        from multinotes.db import utcnow
        from multinotes.keys import DB
        from multinotes.models import User

        assert self.user is not None, "log in first"
        async with self.app[DB].transaction() as session:
            await session.execute(
                update(User).where(User.id == self.user["id"]).values(email_verified_at=utcnow())
            )

    def use_key(self, key: str) -> None:
        remember_secret(key)
        self.bearer = key
        self.client.session.cookie_jar.clear()


@contextlib.asynccontextmanager
async def app_client(app: web.Application) -> AsyncIterator[ApiClient]:
    async with TestClient(TestServer(app)) as client:
        yield ApiClient(client)


@contextlib.asynccontextmanager
async def plugin_client(
    data_dir: Path, plugins: Iterable[PluginSource], **settings: Any
) -> AsyncIterator[ApiClient]:
    """An embedded app with exactly ``plugins`` loaded, served on a local port."""
    from multinotes.app import create_app

    app = create_app(embedded_settings(data_dir, **settings), plugins=list(plugins))
    async with app_client(app) as api:
        yield api
