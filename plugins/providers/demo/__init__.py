"""Demo provider: answers without a key or a network, so a newcomer can try the workspace.

Its models are labelled "Demo" wherever their names appear. It starts enabled only in embedded
mode; production installs switch it on deliberately.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, Field

from multinotes import hookimpl
from multinotes.providers import ChatMessage, Model, Pricing, Provider, Usage

__version__ = "1.0.0"


class DemoSettings(BaseModel):
    delay_ms: int = Field(
        title="Delay between words (ms)",
        default=15,
        ge=0,
        le=2000,
        description="Pause between streamed words, to show streaming.",
    )


def _words(text: str) -> list[str]:
    return [w + " " for w in text.split()]


class EchoModel(Model):
    """Answers with a summary of the prompt it received: handy to test the whole pipeline."""

    model_id = "demo/echo"
    name = "Echo (demo)"
    label = "Demo"
    capabilities = frozenset({"text", "code"})
    context_window = 16_000
    max_output = 2_000
    pricing = Pricing(input_per_million=100.0, output_per_million=200.0)

    async def stream(
        self, messages: list[ChatMessage], options: BaseModel, usage: Usage, config: Any
    ) -> AsyncIterator[str]:
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        answer = (
            f"You asked: {prompt}\n\nThis is the demo model: it repeats your prompt so you "
            "can try streaming, stopping and saving notes without any API key."
        )
        max_tokens = getattr(options, "max_tokens", None) or self.max_output
        usage.input_tokens = sum(len(m.content.split()) for m in messages)
        delay = (getattr(config, "delay_ms", 15) or 0) / 1000
        for count, word in enumerate(_words(answer), start=1):
            if count > max_tokens:
                break
            usage.output_tokens = count
            if delay:
                await asyncio.sleep(delay)
            yield word


class ReverseModel(EchoModel):
    model_id = "demo/reverse"
    name = "Reverse (demo)"

    async def stream(
        self, messages: list[ChatMessage], options: BaseModel, usage: Usage, config: Any
    ) -> AsyncIterator[str]:
        prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
        usage.input_tokens = sum(len(m.content.split()) for m in messages)
        for count, word in enumerate(_words(" ".join(reversed(prompt.split()))), start=1):
            usage.output_tokens = count
            yield word


@hookimpl
def register_providers(register: Any) -> None:
    register(Provider("demo", "Demo (no key needed)", [EchoModel(), ReverseModel()]))


@hookimpl
def register_settings(register: Any) -> None:
    register(DemoSettings)


@hookimpl
def default_enabled(mode: str) -> bool:
    return mode == "embedded"
