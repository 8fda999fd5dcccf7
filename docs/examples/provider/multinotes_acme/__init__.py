"""multinotes-acme: a MultinotesAI provider plugin.

The models answer by calling the Acme HTTP API: ``POST {base_url}/v1/complete`` with a
bearer key; the answer streams back as JSON lines (``{"text": ...}`` deltas, then one
``{"usage": {"input_tokens": ..., "output_tokens": ...}}``). Replace ``_post`` and
``_read_lines`` with your provider's wire protocol or SDK.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from multinotes.plugin import (
    Chunk,
    ClientCache,
    GenerationRequest,
    Model,
    NeedsKey,
    Options,
    Pricing,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRegistrar,
    ProviderUnavailable,
    SettingsRegistrar,
    StaticProvider,
    hookimpl,
    outgoing,
    parse_retry_after,
)

PLUGIN = "acme"


class AcmeSettings(BaseModel):
    """What an admin configures in the Plugins console. Every field has a default, so the plugin
    loads before anyone configures it; ``SecretStr`` fields are stored encrypted."""

    api_key: SecretStr | None = Field(default=None, description="Your Acme API key.")
    base_url: str = Field(default="https://api.acme.example", description="API root URL.")


class AcmeOptions(Options):
    """Per-request options: the core's (temperature, top_p, max_tokens, system) plus one of this
    provider's. Unknown options are rejected (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid")

    stop: list[str] | None = Field(default=None, max_length=4)


class AcmeModel(Model):
    Options = AcmeOptions

    def __init__(self, model_id: str, name: str, *, input_usd: float, output_usd: float) -> None:
        self.model_id = f"{PLUGIN}/{model_id}"
        self.remote_id = model_id
        self.name = name
        self.pricing = Pricing.from_usd(input_per_million=input_usd, output_per_million=output_usd)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        # The core reads the key and the base URL from this plugin's settings (secrets decrypted)
        # and passes them in; a missing key never gets here. Never read the environment.
        key = request.require_key("Acme")
        options = request.options.model_dump(exclude_none=True)
        body = {
            "model": self.remote_id,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            **options,
        }
        session, owned = _session(request.clients, request.base_url or request.config.base_url)
        try:
            async for line in _read_lines(session, request, key, body):
                if "text" in line:
                    yield str(line["text"])
                elif "usage" in line:
                    # The core bills from request.usage: fill it from the provider's numbers.
                    request.usage.input_tokens = int(line["usage"]["input_tokens"])
                    request.usage.output_tokens = int(line["usage"]["output_tokens"])
        finally:
            if owned:
                await session.close()


def _session(clients: ClientCache | None, base_url: str) -> tuple[aiohttp.ClientSession, bool]:
    """The app's long-lived session for this base URL, or one for this call outside an app."""
    if clients is None:
        return aiohttp.ClientSession(base_url), True
    return clients.get((PLUGIN, base_url), lambda: aiohttp.ClientSession(base_url)), False


async def _read_lines(
    session: aiohttp.ClientSession, request: GenerationRequest, key: str, body: dict[str, object]
) -> AsyncIterator[dict[str, Any]]:
    """POST the request and yield the JSON lines of the answer; map every failure to the
    core's provider errors (which tell the user what to do)."""
    try:
        async with session.post(
            "/v1/complete",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=request.timeout),
            **outgoing.AIOHTTP_REQUEST_ARGS,
        ) as response:
            if outgoing.is_redirect(response.status):
                raise outgoing.redirect_error("Acme", response.status)
            if response.status in (401, 403):
                raise NeedsKey("Acme rejected the API key: check it in the Plugins console.")
            if response.status == 429:
                raise ProviderRateLimited(
                    "Acme is rate limiting requests.",
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            if response.status >= 500:
                raise ProviderUnavailable(f"Acme answered HTTP {response.status}.")
            if response.status != 200:
                raise ProviderBadResponse(f"Acme answered HTTP {response.status}.")
            async for raw in response.content:
                if raw.strip():
                    try:
                        yield json.loads(raw)
                    except ValueError as exc:
                        raise ProviderBadResponse("Acme sent a line that is not JSON.") from exc
    except (aiohttp.ClientConnectionError, TimeoutError) as exc:
        raise ProviderUnavailable(f"Acme could not be reached: {exc}") from exc


PROVIDER = StaticProvider(
    PLUGIN,
    "Acme",
    [
        AcmeModel("small", "Acme Small", input_usd=0.15, output_usd=0.60),
        AcmeModel("large", "Acme Large", input_usd=2.50, output_usd=10.00),
    ],
)


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(PROVIDER)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(AcmeSettings)
