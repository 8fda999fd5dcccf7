"""A process too busy to get a database connection in time (its pool's checkout time-out) is
overloaded, not broken: the request answers a retryable 503 in the app's error shape, not a
500 (``bench_users.py`` saw 129 such 500s with 1,000 people on two cores)."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from multinotes.notes import service as notes
from multinotes.testing import ApiClient


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    return api


async def test_a_pool_checkout_time_out_is_a_retryable_503(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    async def no_connection(*args: object, **kwargs: object) -> None:
        raise sqlalchemy.exc.TimeoutError(
            "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 30.00"
        )

    monkeypatch.setattr(notes, "list_document_summaries", no_connection)
    response = await user.get("/api/documents")
    body = await response.json()
    assert response.status == 503, body
    assert int(response.headers["Retry-After"]) >= 1
    assert body["error"]["code"] == "service_unavailable"
    assert "try again" in body["error"]["message"].lower()
