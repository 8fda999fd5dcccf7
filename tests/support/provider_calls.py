"""Driving a provider model directly, as the core's generation pipeline does: build a
``GenerationRequest`` with the plugin's settings model instance, then run ``model.stream``.
For unit-level provider tests that need no database or Redis, against a local fake of the
provider's API (tests/fakes/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from multinotes.providers import Model, Provider
from multinotes.testing import check_connection, make_request, refused_url, serve_fake
from multinotes.testing import collect as run

__all__ = ["check_connection", "fake_url", "listed_model", "make_request", "refused_url", "run"]


@pytest.fixture
async def fake_url(fake: Any) -> AsyncIterator[str]:
    """The root URL of the test module's ``fake`` API server, served for the test. Use in a
    test module as ``fake_url = provider_calls.fake_url`` (pytest finds fixtures by module
    attribute)."""
    async with serve_fake(fake.app()) as url:
        yield url


async def listed_model(provider: Provider, model_id: str, config: Any = None) -> Model:
    """The model with this id, as ``provider`` lists it for ``config``."""
    return next(m for m in await provider.list_models(config) if m.id == model_id)
