"""How a plugin author tests a plugin in isolation, with multinotes.testing."""

import multinotes_hello

from multinotes.testing import plugin_client


async def test_hello_plugin_loads_and_its_route_answers(tmp_path):
    async with plugin_client(tmp_path, [("hello", multinotes_hello)]) as api:
        await api.register_admin()
        plugins = await api.get_json("/api/admin/plugins")
        assert [(p["name"], p["kinds"], p["enabled"]) for p in plugins] == [
            ("hello", ["provider"], True)
        ]
        assert await api.get_json("/api/plugins/hello/ping") == {"hello": "world"}
