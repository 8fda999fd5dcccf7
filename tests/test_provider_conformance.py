"""The provider conformance suite in ``multinotes.testing`` (which every provider's tests
inherit) fails a provider that breaks the contract, for the right reason."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from pydantic import BaseModel, SecretStr

from multinotes.plugin import (
    Chunk,
    GenerationRequest,
    Model,
    Pricing,
    StaticProvider,
    configured_key,
    openai_wire,
)
from multinotes.plugins.providers.openai.tests.fake_openai import FakeOpenAI
from multinotes.testing import ProviderConformance

KEY = "sk-conformance-key"


class SloppySettings(BaseModel):
    api_key: SecretStr | None = None
    base_url: str = ""


class SloppyModel(Model):
    """Maps errors and fills usage, but leaves the SDK's own retries on."""

    model_id = "sloppy/chat"
    name = "Sloppy"
    pricing = Pricing()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        client = openai.AsyncOpenAI(
            api_key=configured_key(request.config) or "none",
            base_url=request.config.base_url,
            max_retries=1,  # the breach
        )
        async with client:
            params = openai_wire.chat_params(request, "gpt-4o-mini")
            async for text in openai_wire.stream_chat(client, params, request, "Sloppy"):
                yield text


class SloppySuite(ProviderConformance):
    model_id = "sloppy/chat"
    api_key = KEY

    def make_fake(self) -> FakeOpenAI:
        return FakeOpenAI(api_key=KEY)

    def make_provider(self) -> StaticProvider:
        return StaticProvider("sloppy", "Sloppy", [SloppyModel()], key_field=None)

    def make_settings(self, url: str, api_key: str | None) -> SloppySettings:
        return SloppySettings(api_key=SecretStr(api_key) if api_key else None, base_url=f"{url}/v1")


async def test_the_suite_passes_what_the_provider_does_right():
    await SloppySuite().test_conformance_streams_text_and_fills_usage()
    await SloppySuite().test_conformance_rejected_key_is_needs_key()


async def test_the_suite_catches_hidden_sdk_retries():
    with pytest.raises(AssertionError, match="an SDK retry"):
        await SloppySuite().test_conformance_server_error_is_unavailable_and_not_retried()
