from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer
from fake_api import FakeAcme


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAcme, str]]:
    """The fake API served on a loopback port, and its root URL."""
    fake = FakeAcme()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
