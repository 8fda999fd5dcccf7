"""Together AI provider, through the official ``together`` SDK: open-weight chat models and
FLUX image generation.

Curated models with Together's public serverless prices in US dollars (``Pricing.from_usd``
converts them to credits). FLUX.1-schnell costs
US$0.0027 per megapixel; ``per_image`` is the price of a 1024x1024 image (larger sizes cost
Together up to 1.75 times that).
"""

from __future__ import annotations

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
from multinotes.plugins.providers.together.chat import (
    TogetherChatModel,
    TogetherImageModel,
    TogetherModel,
    raise_mapped,
    together_client,
    warm,
)
from multinotes.plugins.providers.together.errors import api_key

__version__ = "1.0.0"

TEXT = frozenset({"text"})
CODE = frozenset({"text", "code"})


def per_million(usd: float) -> Pricing:
    """Together prices these models the same for input and output tokens."""
    return Pricing.from_usd(input_per_million=usd, output_per_million=usd)


CHAT_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        model_id="together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        name="Llama 3.3 70B Instruct Turbo",
        description="Meta's open 70B model, served fast: a strong general-purpose default.",
        capabilities=CODE,
        max_output=8192,
        context_window=131_072,
        pricing=per_million(0.88),
    ),
    ModelInfo(
        model_id="together/Qwen/Qwen2.5-72B-Instruct-Turbo",
        name="Qwen 2.5 72B Instruct Turbo",
        description="Alibaba's open 72B model: good at multilingual text, maths and code.",
        capabilities=CODE,
        max_output=8192,
        context_window=32_768,
        pricing=per_million(1.20),
    ),
    ModelInfo(
        model_id="together/Qwen/Qwen2.5-Coder-32B-Instruct",
        name="Qwen 2.5 Coder 32B Instruct",
        description="An open model tuned for writing and explaining code.",
        capabilities=CODE,
        max_output=8192,
        context_window=32_768,
        pricing=per_million(0.80),
    ),
    ModelInfo(
        model_id="together/deepseek-ai/DeepSeek-V3",
        name="DeepSeek V3",
        description="DeepSeek's open mixture-of-experts model: strong reasoning and code.",
        capabilities=CODE,
        max_output=8192,
        context_window=131_072,
        pricing=per_million(1.25),
    ),
)
IMAGE_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        model_id="together/black-forest-labs/FLUX.1-schnell",
        name="FLUX.1 [schnell]",
        description="Black Forest Labs' fast text-to-image model (4 steps).",
        capabilities=frozenset({"image_generation"}),
        context_window=4_000,
        max_output=0,
        pricing=Pricing.from_usd(per_image=0.00283),
        extra={"steps": 4},
    ),
)


class TogetherSettings(BaseModel):
    api_key: SecretStr | None = Field(
        default=None,
        title="API key",
        description="A Together AI API key (api.together.ai/settings/api-keys).",
    )
    base_url: str = Field(
        default="https://api.together.xyz",
        title="Base URL",
        description="Without /v1: the SDK adds it. Change only to go through a proxy.",
    )
    timeout: float = Field(
        default=60.0,
        gt=0,
        le=600,
        title="Timeout (s)",
        description="Seconds to wait for Together to start answering, and between streamed pieces.",
    )

    @field_validator("base_url")
    @classmethod
    def _without_version(cls, value: str) -> str:
        """The SDK appends /v1; a URL copied from older docs ("…/v1") would double it."""
        value = value.strip().rstrip("/")
        return value.removesuffix("/v1")


class TogetherProvider(StaticProvider):
    def __init__(self) -> None:
        models: list[TogetherModel] = [TogetherChatModel(s) for s in CHAT_MODELS]
        models += [TogetherImageModel(s) for s in IMAGE_MODELS]
        listed: list[Model] = list(models)
        super().__init__("together", "Together AI", listed)

    def warm(self) -> None:
        warm()

    async def check(
        self, config: Any, *, key: str | None = None, base_url: str | None = None
    ) -> str:
        """Lists the models (``GET /v1/models``): proves the URL and the key in one call. The SDK
        has no wrapper for this endpoint, so it goes through the client's raw ``get``."""
        async with together_client(config, api_key(key), base_url=base_url) as client:
            try:
                listing = await client.get("/v1/models", cast_to=object)
            except Exception as exc:
                raise_mapped(exc, config.timeout)
        if not isinstance(listing, list):
            listing = listing.get("data", []) if isinstance(listing, dict) else []
        names = {item.get("id") for item in listing if isinstance(item, dict)}
        records = CHAT_MODELS + IMAGE_MODELS
        offered = sum(1 for info in records if info.remote_name in names)
        return (
            f"Connected to Together AI: {len(names)} model(s) available, "
            f"{offered} of the {len(records)} offered here."
        )


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(TogetherProvider())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(TogetherSettings)
