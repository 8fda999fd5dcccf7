"""OpenAI provider: GPT chat models (with vision), DALL·E 3 images, text to speech and Whisper.

The model list is curated and static, so the catalog shows the models (as "needs key") before an
admin sets a key. Settings come from the Plugins console or ``MULTINOTES_PLUGINS__OPENAI__*``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

from multinotes.plugin import (
    ProviderRegistrar,
    SettingsRegistrar,
    StaticProvider,
    hookimpl,
    openai_wire,
)

from .models import MODELS, PROVIDER_NAME, build_models, connect

__version__ = "1.0.0"


class OpenAISettings(BaseModel):
    api_key: SecretStr | None = Field(
        default=None, title="API key", description="From platform.openai.com → API keys."
    )
    base_url: str = Field(
        default="https://api.openai.com/v1",
        title="Base URL",
        description="Change only to go through a proxy or gateway that speaks the OpenAI API.",
    )
    organization: str | None = Field(
        default=None, title="Organization", description="Optional organization id (org-...)."
    )
    timeout: float = Field(
        default=60,
        gt=0,
        le=600,
        title="Timeout (s)",
        description="Longest wait for any one network step (connect, or the next streamed bytes).",
    )


__all__ = ["MODELS", "OpenAIProvider", "OpenAISettings"]


class OpenAIProvider(StaticProvider):
    def __init__(self) -> None:
        super().__init__("openai", PROVIDER_NAME, build_models())

    async def check(
        self, config: Any, *, key: str | None = None, base_url: str | None = None
    ) -> str:
        """Lists the account's models: proves the URL, the key and the organization at once."""
        async with connect(config, key, base_url) as client:
            ids = await openai_wire.model_ids(client, PROVIDER_NAME)
        return f"Connected: {len(ids)} models"


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(OpenAIProvider())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(OpenAISettings)
