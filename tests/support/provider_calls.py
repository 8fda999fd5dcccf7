"""Driving a provider model directly, as the core's generation pipeline does: build a
``GenerationRequest`` with the plugin's settings model instance, then run ``model.stream``.
For unit-level provider tests that need no database or Redis, against a local fake of the
provider's API (tests/fakes/)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from multinotes.providers import ChatMessage, Chunk, GenerationRequest, Model, Provider
from tests.fakes import serve_fake


@pytest.fixture
async def fake_url(fake: Any) -> AsyncIterator[str]:
    """The root URL of the test module's ``fake`` API server, served for the test. Use in a
    test module as ``fake_url = provider_calls.fake_url`` (pytest finds fixtures by module
    attribute)."""
    async with serve_fake(fake.app()) as url:
        yield url


async def listed_model(provider: Provider, model_id: str, config: Any = None) -> Model:
    """The model with this id, as ``provider`` lists it for ``config``."""
    return next(m for m in await provider.list_models(config) if m.id == model_id)


def make_request(
    model: Model,
    config: Any,
    *messages: ChatMessage | str,
    options: dict[str, Any] | None = None,
    timeout: float = 30.0,
) -> GenerationRequest:
    """A request as the core builds it; plain strings become user messages and ``options`` are
    validated by the model's ``Options``."""
    chat = [ChatMessage("user", m) if isinstance(m, str) else m for m in messages]
    parsed: BaseModel = model.Options.model_validate(options or {})
    return GenerationRequest(messages=chat, options=parsed, config=config, timeout=timeout)


async def run(
    model: Model, request: GenerationRequest, into: list[Chunk] | None = None
) -> list[Chunk]:
    """Everything the model yields. Pass ``into`` to keep what arrived before an error."""
    chunks = [] if into is None else into
    async for chunk in model.stream(request):
        chunks.append(chunk)
    return chunks


def refused_url(path: str = "/v1") -> str:
    """A loopback URL where nothing listens, so connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
