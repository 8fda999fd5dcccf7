"""This plugin's own tests. Its fake of the API (``fake_compatible.py``) listens on loopback, which
the outgoing-address guard allows here as an operator would (``MULTINOTES_OUTGOING_ALLOW``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from multinotes.plugin import outgoing
from multinotes.testing import LOOPBACK_ALLOW


@pytest.fixture(autouse=True)
def _outgoing_to_the_fake() -> Iterator[None]:
    outgoing.install(outgoing.OutgoingPolicy.parse(LOOPBACK_ALLOW))
    yield
    outgoing.install(outgoing.OutgoingPolicy.parse(LOOPBACK_ALLOW))
