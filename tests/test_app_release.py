"""Apps that stopped leave nothing behind: a process that makes many apps one after another (a
test suite, a plugin author's included) keeps at most the latest one alive, not all of them.
(taskiq keeps the most recently registered task functions at module level: the latest app's.)"""

from __future__ import annotations

import gc
import weakref

from multinotes.app import create_app
from multinotes.testing import app_client, embedded_settings


async def test_apps_that_served_requests_and_stopped_are_freed(tmp_path):
    stopped = []
    for n in range(3):
        app = create_app(embedded_settings(tmp_path / str(n)), plugins=[])
        async with app_client(app) as api:
            assert (await api.get("/healthz")).status == 200
            await api.register_and_login(f"gone{n}@example.com")
        stopped.append(weakref.ref(app))
        del app, api
    gc.collect()
    alive = [n for n, ref in enumerate(stopped) if ref() is not None]
    assert alive in ([], [2]), alive  # the last one may stay, as explained above
