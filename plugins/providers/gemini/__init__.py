"""Google Gemini provider, through the official ``google-genai`` SDK (Gemini API, not Vertex).

Curated models with Google's public list prices in US dollars (``Pricing.from_usd`` converts them
to credits). Prices are the paid tier for prompts up
to 200k tokens; Gemini 2.5 Pro charges double above that, and audio input costs more than text.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator

from multinotes.plugin import (
    Model,
    ModelInfo,
    Pricing,
    ProviderRegistrar,
    SettingsRegistrar,
    StaticProvider,
    hookimpl,
)
from multinotes.plugins.providers.gemini.chat import (
    GEMINI_CAPABILITIES,
    GeminiModel,
    gemini_client,
    warm,
)
from multinotes.plugins.providers.gemini.errors import api_key, map_error

__version__ = "1.0.0"


MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        model_id="gemini/gemini-2.5-pro",
        name="Gemini 2.5 Pro",
        description="Google's strongest 2.5 model: deep reasoning, code, long documents.",
        context_window=1_048_576,
        max_output=65_536,
        capabilities=GEMINI_CAPABILITIES,
        pricing=Pricing.from_usd(input_per_million=1.25, output_per_million=10.0),
    ),
    ModelInfo(
        model_id="gemini/gemini-2.5-flash",
        name="Gemini 2.5 Flash",
        description="Fast and inexpensive, with thinking; a good default for most prompts.",
        context_window=1_048_576,
        max_output=65_536,
        capabilities=GEMINI_CAPABILITIES,
        pricing=Pricing.from_usd(input_per_million=0.30, output_per_million=2.50),
    ),
    ModelInfo(
        model_id="gemini/gemini-2.5-flash-lite",
        name="Gemini 2.5 Flash-Lite",
        description="The cheapest 2.5 model, for quick and high-volume tasks.",
        context_window=1_048_576,
        max_output=65_536,
        capabilities=GEMINI_CAPABILITIES,
        pricing=Pricing.from_usd(input_per_million=0.10, output_per_million=0.40),
    ),
    ModelInfo(
        model_id="gemini/gemini-2.0-flash",
        name="Gemini 2.0 Flash",
        description="The previous generation's fast model: low latency, no thinking.",
        context_window=1_048_576,
        max_output=8_192,
        capabilities=GEMINI_CAPABILITIES,
        pricing=Pricing.from_usd(input_per_million=0.10, output_per_million=0.40),
    ),
)


class GeminiSettings(BaseModel):
    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="A Gemini API key from Google AI Studio (aistudio.google.com/apikey).",
    )
    base_url: str = Field(
        default="https://generativelanguage.googleapis.com",
        title="Base URL",
        description="Change only to go through a proxy; the API version is added to it.",
    )
    api_version: str = Field(default="v1beta", title="API version", max_length=20)
    timeout: float = Field(
        default=60.0,
        gt=0,
        le=600,
        title="Timeout (s)",
        description="Seconds to wait for Gemini to start answering, and between streamed pieces.",
    )

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.strip().rstrip("/")


class GeminiProvider(StaticProvider):
    def __init__(self) -> None:
        models: list[Model] = [GeminiModel(info) for info in MODELS]
        super().__init__("gemini", "Google Gemini", models)

    def warm(self) -> None:
        warm()

    async def check(
        self, config: Any, *, key: str | None = None, base_url: str | None = None
    ) -> str:
        """Lists the models the key can see: proves the URL and the key in one call."""
        async with gemini_client(config, api_key(key), config.timeout, base_url=base_url) as client:
            try:
                async with asyncio.timeout(config.timeout):
                    pager = await client.models.list(config={"page_size": 1000})
            except Exception as exc:
                mapped = map_error(exc, timeout=config.timeout)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc
        names = {(m.name or "").removeprefix("models/") for m in pager.page}
        offered = sum(1 for info in MODELS if info.remote_name in names)
        return (
            f"Connected to Gemini: the key sees {len(names)} model(s), "
            f"{offered} of the {len(MODELS)} offered here."
        )


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(GeminiProvider())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(GeminiSettings)
