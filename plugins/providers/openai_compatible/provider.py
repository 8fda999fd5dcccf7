"""One provider for every configured OpenAI-compatible connection (Ollama, vLLM, LM Studio,
OpenRouter, ...). Model ids are ``<connection>/<model>``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import structlog

from multinotes.plugin import (
    Chunk,
    GenerationRequest,
    Model,
    Pricing,
    Provider,
    ProviderError,
    ProviderUnavailable,
    openai_wire,
)

from .settings import CompatibleSettings, Connection

log = structlog.get_logger(__name__)

#: Keyless servers (Ollama, LM Studio) ignore the bearer token; they get this placeholder (as
#: when the plugin used the SDK, which would otherwise have sent OPENAI_API_KEY from the
#: environment).
NO_KEY = "no-key"
#: How long a server's model list is trusted, and how long a failing server is left alone.
DISCOVERY_TTL = 60.0
FAILURE_TTL = 15.0
#: Discovery runs while a page lists models: a hung server must not hold the page for long.
DISCOVERY_TIMEOUT = 10.0


#: Words in a model's name that mark a model the chat API cannot use: speech, transcription,
#: image, embedding, moderation and reranking models, which servers that mirror OpenAI's
#: ``GET /models`` (OpenAI itself, LocalAI, vLLM, Ollama) list beside the chat models.
NOT_CHAT_WORDS = frozenset(
    {
        "whisper",
        "tts",
        "transcribe",
        "dall",
        "image",
        "embed",
        "embedding",
        "embeddings",
        "moderation",
        "rerank",
        "reranker",
        "realtime",
        "davinci",
        "babbage",
    }
)


def is_chat_model(name: str) -> bool:
    """Whether a discovered model can answer a chat, judged by the words of its name
    (``text-embedding-3-small``, ``gpt-4o-mini-tts``, ``nomic-embed-text`` cannot)."""
    return not NOT_CHAT_WORDS.intersection(re.split(r"[-_/:.\s]+", name.lower()))


def display(connection: str) -> str:
    return f'Connection "{connection}"'


class CompatibleModel(Model):
    """A model served by one connection. Built per listing, from the connection's settings."""

    def __init__(self, connection: Connection, model: str) -> None:
        self.connection = connection.name
        self.api_name = model
        self.model_id = f"{connection.name}/{model}"
        self.name = f"{model} ({connection.name})"
        self.description = f"{model} on the {connection.name} server ({connection.base_url})."
        self.capabilities = frozenset(connection.capabilities)
        self.context_window = connection.context_window
        self.max_output = connection.max_output
        self.pricing = Pricing(
            input_per_million=connection.prices.input_per_million,
            output_per_million=connection.prices.output_per_million,
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        # Read the connection from the settings of this call: an admin may have edited it.
        config: CompatibleSettings = request.config
        connection = config.connection(self.connection)
        if connection is None:
            raise ProviderError(f"{display(self.connection)} is no longer configured.")
        params = openai_wire.chat_params(
            request,
            self.api_name,
            vision="vision" in connection.capabilities,
            max_tokens_field=connection.max_tokens_field,
        )
        # The stream is read here, not through the openai SDK, whose decoding cost more CPU per
        # chunk than the rest of the answer (issue #17; the conformance suite holds both
        # paths to the same errors).
        async with openai_wire.http_session(request.clients) as session:
            stream = openai_wire.stream_chat_http(
                session,
                connection.base_url,
                config.key_for(connection.name) or NO_KEY,
                params,
                request,
                display(connection.name),
            )
            async for text in stream:
                yield text


class CompatibleProvider(Provider):
    provider_id = "openai_compatible"
    name = "OpenAI-compatible servers"
    # Keys and URLs are per connection (local servers need no key), so the core passes none in.
    key_field = None
    base_url_field = None

    def __init__(self) -> None:
        # (name, base_url, key) → (expires at, model names or None when the server failed)
        self._discovered: dict[tuple[str, str, str], tuple[float, list[str] | None]] = {}

    async def _discover(self, config: CompatibleSettings, connection: Connection) -> list[str]:
        """The chat models a server lists (models an admin names are offered as named)."""
        async with openai_wire.http_session(None) as session:
            names = await openai_wire.model_ids_http(
                session,
                connection.base_url,
                config.key_for(connection.name) or NO_KEY,
                display(connection.name),
                DISCOVERY_TIMEOUT,
            )
        return [name for name in names if is_chat_model(name)]

    async def _model_names(self, config: CompatibleSettings, connection: Connection) -> list[str]:
        if connection.models:
            return list(connection.models)
        cache_key = (connection.name, connection.base_url, config.key_for(connection.name) or "")
        cached = self._discovered.get(cache_key)
        if cached and cached[0] > time.monotonic():
            return list(cached[1] or [])
        try:
            names: list[str] | None = await self._discover(config, connection)
        except ProviderError as exc:
            log.warning(
                "openai_compatible.discovery_failed", connection=connection.name, error=str(exc)
            )
            names = None
        ttl = DISCOVERY_TTL if names is not None else FAILURE_TTL
        self._discovered[cache_key] = (time.monotonic() + ttl, names)
        return list(names or [])

    async def list_models(self, config: Any) -> list[Model]:
        """Configured models, or each server's own list; a failing server contributes none."""
        connections = config.connection_list()
        lists = await asyncio.gather(*(self._model_names(config, c) for c in connections))
        return [
            CompatibleModel(connection, name)
            for connection, names in zip(connections, lists, strict=True)
            for name in names
        ]

    async def check(self, config: Any) -> str:
        """Asks every connection for its models (no cache). Returns one line per connection;
        raises when none answers."""
        connections = config.connection_list()
        if not connections:
            raise ProviderError("No connections are configured. Add one in the Plugins console.")

        async def probe(connection: Connection) -> tuple[bool, str]:
            try:
                names = await self._discover(config, connection)
            except ProviderError as exc:
                return False, f"{connection.name}: failed: {exc.message}"
            if connection.models:
                missing = sorted(set(connection.models) - set(names))
                note = f", not listed by the server: {', '.join(missing)}" if missing else ""
                return True, f"{connection.name}: {len(connection.models)} models configured{note}"
            return True, f"{connection.name}: connected, {len(names)} models"

        results = await asyncio.gather(*(probe(c) for c in connections))
        report = "\n".join(line for _, line in results)
        if not any(ok for ok, _ in results):
            raise ProviderUnavailable(report)
        return report
