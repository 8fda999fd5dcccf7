"""Demo provider: answers without a key or a network, so a newcomer can try the workspace.

Its models are labelled "Demo" wherever their names appear. It starts enabled only in embedded
mode; production installs switch it on deliberately.
"""

from __future__ import annotations

import asyncio
import math
import struct
import zlib
from collections.abc import AsyncIterator

from pydantic import BaseModel, Field

from multinotes.plugin import (
    Chunk,
    GenerationRequest,
    ImageOptions,
    MediaOutput,
    Model,
    Pricing,
    ProviderRegistrar,
    SettingsRegistrar,
    StaticProvider,
    hookimpl,
)

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
    words = text.split(" ")
    return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]


def _prompt(request: GenerationRequest) -> str:
    return next((m.content for m in reversed(request.messages) if m.role == "user"), "")


def _count(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


class EchoModel(Model):
    """Answers with what it was asked: handy to try streaming, stopping and saving notes."""

    model_id = "demo/echo"
    name = "Echo"
    label = "Demo"
    description = "Repeats your prompt, word by word. Needs no key and no network."
    capabilities = frozenset({"text", "code"})
    context_window = 16_000
    max_output = 2_000
    pricing = Pricing(input_per_million=100.0, output_per_million=200.0)

    def answer(self, prompt: str) -> str:
        return (
            f"You asked: {prompt}\n\nThis is the demo model: it repeats your prompt so you can "
            "try streaming, stopping and saving notes without any API key."
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        text = self.answer(_prompt(request))
        limit = getattr(request.options, "max_tokens", None) or self.max_output
        request.usage.input_tokens = sum(_count(m.content) for m in request.messages)
        delay = (getattr(request.config, "delay_ms", 15) or 0) / 1000
        sent = ""
        for word in _words(text):
            if _count(sent + word) > limit:
                break
            sent += word
            request.usage.output_tokens = _count(sent)
            if delay:
                await asyncio.sleep(delay)
            yield word


class ReverseModel(EchoModel):
    model_id = "demo/reverse"
    name = "Reverse"
    description = "Says your prompt backwards. Needs no key and no network."

    def answer(self, prompt: str) -> str:
        return " ".join(reversed(prompt.split()))


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid, tiny, single-colour PNG (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class SwatchModel(Model):
    """'Generates' an image: a colour swatch picked from the prompt."""

    model_id = "demo/swatch"
    name = "Swatch"
    label = "Demo"
    description = "Paints a colour swatch picked from your prompt. Needs no key."
    capabilities = frozenset({"image_generation"})
    context_window = 4_000
    max_output = 0
    pricing = Pricing(per_image=50.0)
    Options = ImageOptions

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        prompt = _prompt(request)
        seed = zlib.crc32(prompt.encode())
        colour = ((seed >> 16) & 255, (seed >> 8) & 255, seed & 255)
        count = getattr(request.options, "n", 1)
        request.usage.input_tokens = _count(prompt)
        for index in range(count):
            request.usage.images = index + 1
            yield MediaOutput("image/png", _png(64, 64, colour), f"swatch-{index + 1}.png")


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(
        StaticProvider(
            "demo",
            "Demo (no key needed)",
            [EchoModel(), ReverseModel(), SwatchModel()],
            key_field=None,
        )
    )


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(DemoSettings)


@hookimpl
def default_enabled(mode: str) -> bool:
    return mode == "embedded"
