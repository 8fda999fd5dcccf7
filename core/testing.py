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

import asyncio
import contextlib
import gc
import re
import secrets
import socket
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, SecretStr

from multinotes.errors import NeedsKey, ProviderError, ProviderRateLimited, ProviderUnavailable
from multinotes.plugin_host import PluginSource
from multinotes.providers import (
    CAPABILITIES,
    ChatMessage,
    Chunk,
    ClientCache,
    GenerationRequest,
    Model,
    ModelInfo,
    Provider,
    call_with_credentials,
    generation_request,
    provider_base_url,
    provider_key,
)
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
    if value == "[redacted]":
        return  # what the logs and the audit trail write in a secret's place
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


#: What tests allow outgoing requests to reach: the loopback addresses fake servers run on.
LOOPBACK_ALLOW = ("127.0.0.1/32", "::1/128")


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
        # Fake upstreams listen on loopback: allowed by name, like an operator would, and
        # nothing else internal (no embedded-mode default), so tests see production's guard.
        "outgoing_allow": list(LOOPBACK_ALLOW),
        "outgoing_allow_private": False,
        # Tests call the sweeps they check; a scheduler firing at its own minute would race
        # them (two runs of one sweep, or rows read while a test counts statements).
        "embedded_scheduler": False,
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
        from multinotes.identity.models import User
        from multinotes.keys import DB

        assert self.user is not None, "log in first"
        async with self.app[DB].transaction() as session:
            await session.execute(
                update(User).where(User.id == self.user["id"]).values(email_verified_at=utcnow())
            )

    def use_key(self, key: str) -> None:
        remember_secret(key)
        self.bearer = key
        self.client.session.cookie_jar.clear()


#: A test app's shutdown taking longer than this prints every task's stack to stderr: a hung
#: teardown otherwise ends as a bare timeout with nothing saying what it waited for.
SLOW_SHUTDOWN = 30.0


def _awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits: its frame and each one it awaits, outermost first
    (a task's get_stack() gives a suspended coroutine's outermost frame only)."""
    places = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            places.append(
                f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
            )
        awaited = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
        if awaited is not None and not hasattr(awaited, "cr_frame"):
            # An async generator's asend/athrow wrapper names its generator only to the GC.
            inner = [o for o in gc.get_referents(awaited) if hasattr(o, "ag_frame")]
            awaited = inner[0] if inner else awaited
        coro = awaited
    return places


async def _report_slow_shutdown(after: float) -> None:
    await asyncio.sleep(after)
    lines = [f"-- app shutdown still running after {after:.0f} s; its tasks:"]
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            lines.append(f"task {task.get_name()}:")
            lines += _awaiting(task.get_coro())
    print("\n".join(lines), file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def app_client(app: web.Application) -> AsyncIterator[ApiClient]:
    watchdog: asyncio.Task[None] | None = None
    try:
        async with TestClient(TestServer(app)) as client:
            try:
                yield ApiClient(client)
            finally:
                watchdog = asyncio.create_task(_report_slow_shutdown(SLOW_SHUTDOWN))
    finally:
        if watchdog is not None:
            watchdog.cancel()


@contextlib.asynccontextmanager
async def plugin_client(
    data_dir: Path, plugins: Iterable[PluginSource], **settings: Any
) -> AsyncIterator[ApiClient]:
    """An embedded app with exactly ``plugins`` loaded, served on a local port."""
    from multinotes.app import create_app

    app = create_app(embedded_settings(data_dir, **settings), plugins=list(plugins))
    async with app_client(app) as api:
        yield api


# -- calling a provider as the core does -----------------------------------------------------------


@contextlib.asynccontextmanager
async def serve_fake(app: web.Application) -> AsyncIterator[str]:
    """Serve a fake of a provider's API on a free loopback port; yields its root URL (no
    trailing slash)."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def refused_url(path: str = "/v1") -> str:
    """A loopback URL where nothing listens, so connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


class _ConventionalFields(Provider):
    """A provider's usual settings fields (``api_key``, ``base_url``), for requests built
    without naming the provider."""

    provider_id = "provider"
    name = "The provider"

    async def list_models(self, config: Any) -> list[Model]:
        return []


def make_request(
    model: Model,
    config: Any,
    *messages: ChatMessage | str,
    options: dict[str, Any] | None = None,
    timeout: float = 30.0,
    provider: Provider | None = None,
) -> GenerationRequest:
    """A request as the core builds it: the settings, and the key and base URL read from them
    (by ``provider``'s ``key_field`` / ``base_url_field``; without a provider, from ``api_key``
    and ``base_url``). A missing key is passed on as None, so the model's own refusal can be
    tested. Plain strings become user messages; ``options`` are validated by the model's
    ``Options``."""
    fields = provider or _ConventionalFields()
    chat = [ChatMessage("user", m) if isinstance(m, str) else m for m in messages]
    parsed: BaseModel = model.Options.model_validate(options or {})
    return GenerationRequest(
        messages=chat,
        options=parsed,
        config=config,
        timeout=timeout,
        key=provider_key(fields, config, required=False),
        base_url=provider_base_url(fields, config),
    )


def provider_request(
    provider: Provider, config: Any, messages: list[ChatMessage], options: BaseModel, **kwargs: Any
) -> GenerationRequest:
    """Like ``make_request`` for a provider and already-built messages and options."""
    return GenerationRequest(
        messages=messages,
        options=options,
        config=config,
        key=provider_key(provider, config, required=False),
        base_url=provider_base_url(provider, config),
        **kwargs,
    )


async def collect(
    model: Model, request: GenerationRequest, into: list[Chunk] | None = None
) -> list[Chunk]:
    """Everything the model yields. Pass ``into`` to keep what arrived before an error."""
    chunks = [] if into is None else into
    async for chunk in model.stream(request):
        chunks.append(chunk)
    return chunks


async def check_connection(provider: Provider, config: Any) -> str:
    """The console's "Test connection" as the core runs it: ``NeedsKey`` when a needed key is
    missing, else ``provider.check`` with the key and base URL read from the settings."""
    return await call_with_credentials(
        provider.check,
        config,
        key=provider_key(provider, config),
        base_url=provider_base_url(provider, config),
    )


# -- provider conformance -------------------------------------------------------------------------


def _takes_info(cls: type[Model]) -> bool:
    """Whether ``cls(info)`` builds the model (models built from records)."""
    import inspect

    try:
        parameters = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(parameters) == 1 and parameters[0].name == "info"


class FakeProviderServer(Protocol):
    """What a provider's fake API server offers the conformance suite: the requests it got, and
    scripted failures for the next requests, in order (``"401"``, ``"429"`` answered with
    ``Retry-After: 7``, ``"500"``, ``"cut"``: a stream dropped after its first chunks)."""

    requests: list[Any]
    next_failures: list[str]

    def app(self) -> web.Application: ...


class ProviderConformance:
    """What every provider plugin must do, as tests a provider's test module inherits::

        class TestConformance(ProviderConformance):
            model_id = "acme/large"
            api_key = "acme-test-key"

            def make_fake(self): return FakeAcme(api_key=self.api_key)
            def make_provider(self): return AcmeProvider()
            def make_settings(self, url, api_key):
                return AcmeSettings(base_url=url, api_key=api_key)

    ``make_settings`` gets the fake's root URL and the key (None: no key configured). Each test
    serves a new fake on a loopback port and streams ``model_id`` the way the core does: the
    core reads the key and base URL from the settings (``Provider.key_field``,
    ``Provider.base_url_field``) and passes them in, so a provider must use ``request.key`` and
    ``request.base_url`` rather than read its settings for them.
    """

    model_id: str
    api_key: str

    def make_fake(self) -> FakeProviderServer:
        raise NotImplementedError

    def make_provider(self) -> Provider:
        raise NotImplementedError

    def make_settings(self, url: str, api_key: str | None) -> BaseModel:
        raise NotImplementedError

    @contextlib.asynccontextmanager
    async def _served(self) -> AsyncIterator[tuple[FakeProviderServer, str]]:
        fake = self.make_fake()
        server = TestServer(fake.app(), host="127.0.0.1")
        await server.start_server()
        try:
            yield fake, str(server.make_url("")).rstrip("/")
        finally:
            await server.close()

    async def _model(self, settings: BaseModel) -> Model:
        models = await self.make_provider().list_models(settings)
        return next(m for m in models if m.model_id == self.model_id)

    async def _request(
        self, settings: BaseModel, clients: ClientCache | None = None
    ) -> tuple[Model, GenerationRequest]:
        model = await self._model(settings)
        request = generation_request(
            self.make_provider(),
            [ChatMessage("user", "Say hello")],
            model.Options(),
            settings,
            timeout=10.0,
            clients=clients,
        )
        return model, request

    async def _stream(self, settings: BaseModel) -> tuple[list[Chunk], GenerationRequest]:
        model, request = await self._request(settings)
        chunks = [chunk async for chunk in model.stream(request)]
        return chunks, request

    async def test_conformance_streams_text_and_fills_usage(self) -> None:
        async with self._served() as (_, url):
            chunks, request = await self._stream(self.make_settings(url, self.api_key))
        assert chunks and all(isinstance(c, str) for c in chunks)
        assert request.usage.input_tokens > 0 and request.usage.output_tokens > 0

    async def test_conformance_missing_key_is_needs_key_before_any_request(self) -> None:
        """The core refuses the call (the provider's ``key_field`` names its key setting), and
        a request built without a key fails in the provider before anything is sent."""
        provider = self.make_provider()
        if provider.key_field is None:
            return  # a provider that needs no key has nothing to check here
        async with self._served() as (fake, url):
            settings = self.make_settings(url, None)
            try:
                await self._stream(settings)
            except NeedsKey:
                pass
            else:
                raise AssertionError("a missing key must raise NeedsKey")
            assert provider_key(provider, self.make_settings(url, self.api_key)), (
                f"key_field {provider.key_field!r} does not name the settings' key field"
            )
            model = await self._model(settings)
            bare = GenerationRequest(
                [ChatMessage("user", "Say hello")], model.Options(), settings, timeout=10.0
            )
            try:
                [chunk async for chunk in model.stream(bare)]
            except NeedsKey:
                pass
            else:
                raise AssertionError("a request without a key must raise NeedsKey")
            assert fake.requests == []

    async def test_conformance_uses_the_key_and_base_url_the_core_passes_in(self) -> None:
        """The call goes with ``request.key`` and ``request.base_url``, not with what the
        provider could read from its settings (here a stale key and a dead URL)."""
        provider = self.make_provider()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with self._served() as (_, url):
            good = self.make_settings(url, self.api_key)
            passes_url = provider_base_url(provider, good) is not None
            stale = self.make_settings(
                dead if passes_url else url,
                # without a key_field the core passes no key: the settings' key is the one
                self.api_key if provider.key_field is None else "stale-key-from-the-settings",
            )
            model = await self._model(stale)
            request = GenerationRequest(
                messages=[ChatMessage("user", "Say hello")],
                options=model.Options(),
                config=stale,
                timeout=10.0,
                key=provider_key(provider, good),
                base_url=provider_base_url(provider, good),
            )
            chunks = [chunk async for chunk in model.stream(request)]
        assert chunks and request.usage.output_tokens > 0

    async def test_conformance_models_are_declared_as_valid_records(self) -> None:
        """Every listed model is a valid ``ModelInfo`` record (known capabilities, a
        ``<provider>/<model>`` id, no negative price or limit), ids are unique, and the model
        built from its own record is the same model."""
        async with self._served() as (_, url):
            settings = self.make_settings(url, self.api_key)
            models = await self.make_provider().list_models(settings)
        ids = [m.model_id for m in models]
        assert models and len(ids) == len(set(ids)), ids
        assert self.model_id in ids
        for model in models:
            info = model.info
            assert isinstance(info, ModelInfo)
            assert info.capabilities and set(info.capabilities) <= set(CAPABILITIES)
            assert info.name.strip(), model.model_id
            rebuilt = type(model)(info) if _takes_info(type(model)) else None
            if rebuilt is not None:
                assert rebuilt.info == info, model.model_id

    async def test_conformance_rejected_key_is_needs_key(self) -> None:
        await self._expect_failure("401", NeedsKey)

    async def test_conformance_rate_limit_keeps_retry_after_and_is_not_retried(self) -> None:
        error = await self._expect_failure("429", ProviderRateLimited)
        assert isinstance(error, ProviderRateLimited) and error.retry_after == 7

    async def test_conformance_server_error_is_unavailable_and_not_retried(self) -> None:
        await self._expect_failure("500", ProviderUnavailable)

    async def test_conformance_cut_stream_is_unavailable(self) -> None:
        await self._expect_failure("cut", ProviderUnavailable, repeat=1)

    async def _expect_failure(
        self, failure: str, expected: type[ProviderError], repeat: int = 2
    ) -> ProviderError:
        """The provider maps ``failure`` to ``expected`` after exactly one request: an SDK
        that retried on its own would send a second (the core owns retries)."""
        async with self._served() as (fake, url):
            fake.next_failures.extend([failure] * repeat)
            try:
                await self._stream(self.make_settings(url, self.api_key))
            except ProviderError as exc:
                assert type(exc) is expected, f"{failure} became {exc!r}"
                assert len(fake.requests) == 1, f"{len(fake.requests)} requests: an SDK retry"
                return exc
        raise AssertionError(f"{failure} must raise {expected.__name__}")

    async def test_conformance_refused_connection_is_unavailable(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        try:
            await self._stream(self.make_settings(f"http://127.0.0.1:{port}", self.api_key))
        except ProviderUnavailable:
            return
        raise AssertionError("a refused connection must raise ProviderUnavailable")

    async def test_conformance_stopping_a_stream_releases_it(self) -> None:
        """Stop after the first chunk (the core closes the generator): it closes at once, and
        the app's shared client serves the next answer."""
        clients = ClientCache()
        try:
            async with self._served() as (_, url):
                settings = self.make_settings(url, self.api_key)
                model, request = await self._request(settings, clients)
                stream = model.stream(request)
                assert isinstance(stream, AsyncGenerator)
                first = await anext(stream)
                assert first
                async with asyncio.timeout(2):
                    await stream.aclose()
                model, request = await self._request(settings, clients)
                again = [chunk async for chunk in model.stream(request)]
                assert again and request.usage.output_tokens > 0
        finally:
            await clients.aclose()
