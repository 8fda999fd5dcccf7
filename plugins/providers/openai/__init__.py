"""OpenAI provider: GPT chat models (with vision), DALL·E 3 images, text to speech and Whisper.

The model list is curated and static, so the catalog shows the models (as "needs key") before an
admin sets a key. Settings come from the Plugins console or ``MULTINOTES_PLUGINS__OPENAI__*``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

from multinotes.plugin import (
    NeedsKey,
    ProviderRegistrar,
    SettingsRegistrar,
    StaticProvider,
    hookimpl,
    openai_wire,
)

from .models import MODELS, PROVIDER_NAME, build_models

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

    # No ``warm``: chat answers and the connection check read the wire themselves, so a web
    # process does not carry the SDK (~14 MB); the first image, speech or transcription call
    # imports it (a call of seconds, against ~0.3 s of import).

    async def check(
        self, config: Any, *, key: str | None = None, base_url: str | None = None
    ) -> str:
        """Lists the account's models: proves the URL, the key and the organization at once."""
        if not key:
            raise NeedsKey(
                f"{PROVIDER_NAME} needs an API key. An admin can set it in the Plugins console."
            )
        async with openai_wire.http_session(None) as session:
            ids = await openai_wire.model_ids_http(
                session,
                base_url or config.base_url,
                key,
                PROVIDER_NAME,
                config.timeout,
                organization=config.organization,
            )
        return f"Connected: {len(ids)} models"


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(OpenAIProvider())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(OpenAISettings)
