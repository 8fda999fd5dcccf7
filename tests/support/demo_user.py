"""Someone who can use the demo provider's models (they answer without a key): the install's
first user (an admin), with a verified address and the demo plugin switched on, since it starts
enabled in embedded mode only.

Use in a test module as ``user = demo_user.user`` (pytest finds fixtures by module attribute)."""

from __future__ import annotations

import pytest

from multinotes.testing import ApiClient


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    await api.mark_verified()
    response = await api.patch("/api/admin/plugins/demo", {"enabled": True})
    assert response.status == 200, await response.text()
    return api
