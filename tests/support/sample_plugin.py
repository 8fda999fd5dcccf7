"""A plugin used by the admin-console tests: a provider, settings with a secret, a route."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, SecretStr

from multinotes import hookimpl
from multinotes.keys import PLUGIN_SETTINGS
from multinotes.providers import StaticProvider

__version__ = "2.3.4"


class SampleSettings(BaseModel):
    base_url: str = Field(default="http://127.0.0.1:9/v1", description="Where the API lives.")
    timeout: float = Field(default=30.0, gt=0, le=600)
    verbose: bool = False
    api_key: SecretStr | None = None


async def whoami(request: web.Request) -> web.Response:
    config = await request.app[PLUGIN_SETTINGS].config("sample")
    key = config.api_key.get_secret_value() if config.api_key else None
    return web.json_response({"base_url": config.base_url, "key_len": len(key or "")})


@hookimpl
def register_providers(register: Any) -> None:
    register(StaticProvider("sample", "Sample", []))


@hookimpl
def register_settings(register: Any) -> None:
    register(SampleSettings)


@hookimpl
def register_routes(register: Any) -> None:
    register("GET", "/api/plugins/sample/config", whoami, access="user")
