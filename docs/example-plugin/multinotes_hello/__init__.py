"""multinotes-hello: the smallest complete MultinotesAI plugin.

It registers one provider with one model, declares settings (one of them a secret, stored
encrypted by the core), adds a route, and a periodic task. Install it next to MultinotesAI
(`pip install -e docs/example-plugin`) and it shows up in the Plugins console.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from pydantic import BaseModel, Field, SecretStr

from multinotes.plugin import (
    Chunk,
    GenerationRequest,
    Model,
    Pricing,
    ProviderRegistrar,
    RouteRegistrar,
    SettingsRegistrar,
    StaticProvider,
    TaskRegistrar,
    hookimpl,
    plugin_context,
)

__version__ = "0.1.0"
log = structlog.get_logger(__name__)


class HelloSettings(BaseModel):
    greeting: str = Field(default="Hello", max_length=40, description="First word of every answer.")
    api_key: SecretStr | None = Field(
        default=None, description="Not needed; shows how secrets work."
    )


class HelloModel(Model):
    model_id = "hello/greeter"
    name = "Greeter"
    capabilities = frozenset({"text"})
    context_window = 4096
    max_output = 256
    pricing = Pricing.from_usd(input_per_million=0.10, output_per_million=0.20)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        name = request.messages[-1].content.strip() if request.messages else "world"
        request.usage.input_tokens = len(name.split())
        for count, word in enumerate([request.config.greeting, ", ", name, "!"], start=1):
            request.usage.output_tokens = count
            yield word


async def hello_route(request: web.Request) -> web.Response:
    return web.json_response({"hello": "world"})


PROVIDER = StaticProvider("hello", "Hello (example)", [HelloModel()], key_field=None)


async def count_models(app: web.Application) -> str:
    """A periodic job: runs in the worker (production) or the web process (embedded). It reaches
    the app only through its ``PluginContext``: here, to read its settings."""
    settings = await plugin_context(app, "hello").settings(HelloSettings)
    count = len(await PROVIDER.list_models(settings))
    log.info("hello_models_counted", models=count)
    return f"{settings.greeting}: {count} model(s) offered"


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(PROVIDER)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(HelloSettings)


@hookimpl
def register_routes(register: RouteRegistrar) -> None:
    register("GET", "/api/plugins/hello/ping", hello_route, access="public", name="hello_ping")


@hookimpl
def register_tasks(register: TaskRegistrar) -> None:
    register("hello.count_models", count_models, schedule="0 * * * *")
