"""Security tests walk every route of the app; rate limits would only get in their way."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from multinotes.settings import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(rate_limits_enabled=False)
