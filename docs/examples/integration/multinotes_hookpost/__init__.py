"""multinotes-hookpost: a MultinotesAI integration plugin.

It receives app events (in a background task, in a worker in production) and posts each one to
a webhook URL as JSON, signed with HMAC-SHA256 over ``<timestamp>.<body>`` so the receiver can
check it came from here. Replace ``handle`` with your service's API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import aiohttp
from pydantic import BaseModel, Field, SecretStr

from multinotes.plugin import (
    Event,
    Integration,
    IntegrationRegistrar,
    PluginError,
    SettingsRegistrar,
    hookimpl,
    outgoing,
)

PLUGIN = "hookpost"


class HookpostSettings(BaseModel):
    webhook_url: str | None = Field(default=None, description="Where events are posted.")
    signing_secret: SecretStr | None = Field(default=None, description="Signs every post.")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What the receiver recomputes to trust a post."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class HookpostIntegration(Integration):
    integration_id = PLUGIN
    name = "Hookpost webhook"
    #: The events it wants (empty: all of them).
    events = frozenset({"generation.completed", "note.created", "hookpost.test"})

    async def handle(self, event: Event, config: Any) -> None:
        settings: HookpostSettings = config
        if not settings.webhook_url:
            return  # not configured yet: nothing to deliver
        body = json.dumps({"event": event.name, "user_id": event.user_id, "data": event.data})
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Hookpost-Timestamp": timestamp}
        if settings.signing_secret:
            secret = settings.signing_secret.get_secret_value()
            headers["X-Hookpost-Signature"] = signature(secret, timestamp, body.encode())
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                settings.webhook_url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=10),
                **outgoing.AIOHTTP_REQUEST_ARGS,
            ) as response,
        ):
            # Raising marks the delivery failed (and attributed to this plugin).
            if response.status >= 300:
                raise PluginError(f"Hookpost webhook answered HTTP {response.status}")


@hookimpl
def register_integrations(register: IntegrationRegistrar) -> None:
    register(HookpostIntegration())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(HookpostSettings)
