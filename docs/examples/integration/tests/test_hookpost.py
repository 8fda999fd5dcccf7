"""multinotes-hookpost: in the console as an integration, events delivered signed to a local
receiver through the core's background dispatch, and failures attributed to the plugin."""

from __future__ import annotations

import asyncio

import multinotes_hookpost
import pytest
from aiohttp.test_utils import TestServer
from fake_receiver import FakeReceiver

from multinotes.plugin import Event, PluginError, plugin_context
from multinotes.testing import plugin_client

SECRET = "hookpost-signing-secret-0123"


async def served(receiver: FakeReceiver) -> TestServer:
    server = TestServer(receiver.app(), host="127.0.0.1")
    await server.start_server()
    return server


async def test_an_emitted_event_reaches_the_webhook_signed(tmp_path):
    receiver = FakeReceiver(SECRET)
    server = await served(receiver)
    try:
        async with plugin_client(tmp_path, [("hookpost", multinotes_hookpost)]) as api:
            await api.register_admin()
            [plugin] = await api.get_json("/api/admin/plugins")
            assert (plugin["name"], plugin["kinds"]) == ("hookpost", ["integration"])
            settings = {"webhook_url": str(server.make_url("/hook")), "signing_secret": SECRET}
            response = await api.patch("/api/admin/plugins/hookpost", {"settings": settings})
            assert response.status == 200, await response.text()
            assert SECRET not in await response.text()

            context = plugin_context(api.app, "hookpost")
            await context.emit("hookpost.test", user_id=api.user["id"], data={"hello": "world"})
            async with asyncio.timeout(10):
                await receiver.arrived.wait()
        [(verified, body)] = receiver.posts
        assert verified
        assert body == {
            "event": "hookpost.test",
            "user_id": api.user["id"],
            "data": {"hello": "world"},
        }
    finally:
        await server.close()


async def test_a_refusing_receiver_fails_the_delivery():
    receiver = FakeReceiver(SECRET, status=500)
    server = await served(receiver)
    try:
        settings = multinotes_hookpost.HookpostSettings(
            webhook_url=str(server.make_url("/hook")), signing_secret=SECRET
        )
        with pytest.raises(PluginError, match="HTTP 500"):
            integration = multinotes_hookpost.HookpostIntegration()
            await integration.handle(Event("note.created", "u1", {}), settings)
    finally:
        await server.close()


async def test_nothing_is_sent_before_it_is_configured():
    integration = multinotes_hookpost.HookpostIntegration()
    settings = multinotes_hookpost.HookpostSettings()
    await integration.handle(Event("note.created", "u1", {}), settings)
    assert "generation.completed" in integration.events
