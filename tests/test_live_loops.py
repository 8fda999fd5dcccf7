"""The live channel's background loops (the presence sweeper, the heartbeat ticker) end when
their app stops, even if a library they awaited swallowed the cancellation: an app's cleanup
waits for them, and a loop that slept on held a test's teardown until it timed out in CI."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from multinotes.bus import LocalBus
from multinotes.live import presence as presence_module
from multinotes.live.presence import Presence, Store


async def swallowing_sweep(self: Any) -> None:
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        pass  # what some drivers do with a cancellation that arrives mid-read


async def test_a_sweeper_whose_cancellation_was_swallowed_ends_at_its_next_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(presence_module, "SWEEP", 0.01)
    monkeypatch.setattr(Presence, "sweep", swallowing_sweep)
    presence = Presence(db=None, bus=LocalBus(), store=Store())  # type: ignore[arg-type]
    sweeper = asyncio.create_task(presence.sweep_forever())
    await asyncio.sleep(0.05)  # inside a sweep

    sweeper.cancel()

    await asyncio.wait({sweeper}, timeout=2)
    ended = sweeper.done()
    monkeypatch.setattr(Presence, "sweep", lambda self: asyncio.sleep(0))
    sweeper.cancel()  # a sweeper that slept on is stopped for good here
    assert ended, "the sweeper slept on after its cancellation"
