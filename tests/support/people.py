"""The people of the collaboration tests: Ann owns what is shared, Bob is her colleague, Eve is
someone nothing is shared with. Every one of them has a verified address.

Use in a test module as ``ann = people.ann`` (pytest finds fixtures by module attribute)."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import ApiClient


async def person(make_client: Any, email: str, name: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=name)
    await client.mark_verified()
    return client


@pytest.fixture
async def ann(api: ApiClient) -> ApiClient:
    """The owner of everything shared (the install's first account)."""
    await api.register_and_login("ann@example.com", name="Ann Owner")
    await api.mark_verified()
    return api


@pytest.fixture
async def bob(make_client: Any) -> ApiClient:
    return await person(make_client, "bob@example.com", "Bob Colleague")


@pytest.fixture
async def eve(make_client: Any) -> ApiClient:
    """Someone nothing is shared with."""
    return await person(make_client, "eve@example.com", "Eve Outsider")
