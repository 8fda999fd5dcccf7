"""A provider whose models do what a test scripts: stream given chunks, fail with a given
error on given attempts, pause, or report given usage. Built per test (no shared state)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from multinotes import hookimpl
from multinotes.providers import (
    Chunk,
    GenerationRequest,
    Model,
    Pricing,
    Provider,
)


@dataclass
class Script:
    chunks: list[Chunk] = field(default_factory=lambda: ["Hello", " ", "world"])
    #: Errors raised on successive attempts before any chunk (None: succeed).
    failures: list[Exception | None] = field(default_factory=list)
    #: Raise this after the chunks were sent (a stream cut mid-way).
    fail_after_chunks: Exception | None = None
    delay: float = 0.0
    #: Extra seconds to wait before the chunk at an index (a provider pausing mid-answer).
    pauses: dict[int, float] = field(default_factory=dict)
    input_tokens: int = 10
    output_tokens_per_chunk: int = 1
    #: False: report no usage at all (as providers that send it only in a stream's last
    #: chunk, when the stream is cut before it).
    reports_usage: bool = True
    calls: int = 0
    requests: list[GenerationRequest] = field(default_factory=list)


class ScriptedModel(Model):
    def __init__(self, model_id: str, script: Script, **attrs: Any) -> None:
        self.model_id = model_id
        self.name = attrs.pop("name", model_id.split("/")[-1].title())
        self.script = script
        self.pricing = attrs.pop(
            "pricing", Pricing(input_per_million=1_000_000, output_per_million=2_000_000)
        )
        for key, value in attrs.items():
            setattr(self, key, value)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        script = self.script
        attempt = script.calls
        script.calls += 1
        script.requests.append(request)
        if attempt < len(script.failures) and script.failures[attempt] is not None:
            raise script.failures[attempt]  # type: ignore[misc]
        if script.reports_usage:
            request.usage.input_tokens = script.input_tokens
        for index, chunk in enumerate(script.chunks):
            if script.delay:
                await asyncio.sleep(script.delay)
            if index in script.pauses:
                await asyncio.sleep(script.pauses[index])
            if script.reports_usage:
                request.usage.output_tokens += script.output_tokens_per_chunk
            yield chunk
        if script.fail_after_chunks is not None:
            raise script.fail_after_chunks


class ScriptedProvider(Provider):
    provider_id = "script"
    name = "Scripted"
    key_field = None

    def __init__(self, models: list[Model]) -> None:
        self.models = models

    async def list_models(self, config: Any) -> list[Model]:
        return list(self.models)


class ScriptedPlugin:
    def __init__(self, *models: Model) -> None:
        self.provider = ScriptedProvider(list(models))

    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(self.provider)


def scripted_plugins(scripts: dict[str, Script], **attrs: Any) -> list[tuple[str, ScriptedPlugin]]:
    """A test app's ``plugins``: the scripted provider alone, with one model per entry of
    ``{model id: script}``, each given ``attrs`` (``context_window=...`` and so on)."""
    models = [ScriptedModel(model_id, script, **attrs) for model_id, script in scripts.items()]
    return [("script", ScriptedPlugin(*models))]
