"""Process CPU per call of an async function, for the in-process benches (``bench_driver.py``,
``bench_list_rows.py``, ``profile_lists.py``): less sensitive to a busy machine than wall time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any


async def cpu_ms_per_call(
    call: Callable[[], Awaitable[Any]], calls: int, warmup: int = 20
) -> float:
    """Milliseconds of this process's CPU per ``call()``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        await call()
    started = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - started) / calls * 1000
