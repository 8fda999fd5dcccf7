"""What stands between a prompt's arrival and the provider call: the statements, commits and
rollbacks on the database engine in that span (embedded mode, an API key, one scripted model,
60 prompts, the first 10 not counted), in order, and the span's wall time in-process (the client
runs in the same loop, so it counts too: compare runs, not with bench_stream.py).

Run from the root of a checkout: ``python bench/before_call.py``. Statements of work that runs
beside the provider call (the prompt and answer rows, the hold's live balance) may appear after
the hold's COMMIT: they start before the call but do not delay it.
"""

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from sqlalchemy import event

from multinotes.app import create_app
from multinotes.keys import DB
from multinotes.testing import app_client, embedded_settings
from tests.support.scripted_provider import Script, ScriptedModel, scripted_plugins

MODEL = "script/alpha"


async def main() -> None:
    script = Script(chunks=["a"])
    plugins = scripted_plugins({MODEL: script}, context_window=1000, max_output=100)
    with tempfile.TemporaryDirectory() as d:
        app = create_app(embedded_settings(Path(d)), plugins=plugins)
        async with app_client(app) as api:
            await api.register_admin("count@example.com")
            await api.mark_verified()
            key = (await (await api.post("/api/keys", {"name": "k"})).json())["key"]
            conversations = [
                (await (await api.post("/api/conversations", {})).json())["id"] for _ in range(60)
            ]
            api.use_key(key)
            log: list[str] = []
            engine = app[DB].engine.sync_engine
            event.listen(engine, "before_cursor_execute", lambda *a: log.append(a[2].split()[0]))
            event.listen(engine, "commit", lambda *a: log.append("COMMIT"))
            event.listen(engine, "rollback", lambda *a: log.append("ROLLBACK"))
            marks: dict[str, float] = {}
            original = ScriptedModel.stream

            async def stream(self, request):  # type: ignore[no-untyped-def]
                marks["called"] = time.perf_counter()
                marks["at"] = len(log)
                async for chunk in original(self, request):
                    yield chunk

            ScriptedModel.stream = stream  # type: ignore[method-assign]
            spans, counts = [], []
            for index, conversation in enumerate(conversations):
                log.clear()
                started = time.perf_counter()
                response = await api.post(
                    f"/api/conversations/{conversation}/messages",
                    {"content": "Hello", "models": [MODEL]},
                )
                assert response.status == 200, await response.text()
                await response.text()
                await asyncio.sleep(0.05)
                if index >= 10:
                    spans.append((marks["called"] - started) * 1000)
                    counts.append(list(log[: marks["at"]]))
            last = counts[-1]
            print("before the provider call:", {k: last.count(k) for k in sorted(set(last))})
            print("sequence:", " ".join(last))
            print(
                f"request -> provider call, in-process: p50 {statistics.median(spans):.2f} ms, "
                f"min {min(spans):.2f} ms ({len(spans)} requests)"
            )


asyncio.run(main())
