"""Embedding jobs are coalesced per user: a burst of changes (answers streaming in, autosaves)
queues one job per user after a short wait, and jobs still waiting when the app stops are dropped
for the periodic sweep rather than sent into a closing app."""

from __future__ import annotations

import asyncio
from typing import Any

from multinotes.keys import TASKS
from multinotes.search.tasks import EMBED_QUEUE, EMBED_TASK, EmbedQueue, queue_embedding
from multinotes.testing import ApiClient
from tests.support.waiting import eventually


def record_enqueues(api: ApiClient, monkeypatch: Any) -> list[tuple[str, dict[str, Any]]]:
    sent: list[tuple[str, dict[str, Any]]] = []

    async def enqueue(task_name: str, /, **kwargs: Any) -> None:
        sent.append((task_name, kwargs))

    monkeypatch.setattr(api.app[TASKS], "enqueue", enqueue)
    return sent


async def test_a_burst_of_changes_queues_one_job_per_user(api: ApiClient, monkeypatch: Any):
    sent = record_enqueues(api, monkeypatch)
    queue = EmbedQueue(api.app, delay=0.05)  # a short wait for the test
    for _ in range(5):
        queue.request("ann")
    queue.request("bob")
    assert sent == []  # nothing yet: more changes may come
    await asyncio.sleep(0.2)
    assert sorted(sent, key=lambda s: s[1]["user_id"]) == [
        (EMBED_TASK, {"user_id": "ann"}),
        (EMBED_TASK, {"user_id": "bob"}),
    ]
    # A later change starts a new wait.
    queue.request("ann")
    await asyncio.sleep(0.2)
    assert len(sent) == 3


async def test_jobs_still_waiting_at_shutdown_are_left_to_the_sweep(
    api: ApiClient, monkeypatch: Any
):
    sent = record_enqueues(api, monkeypatch)
    queue = EmbedQueue(api.app, delay=0.05)
    queue.request("ann")
    await queue.close()
    await asyncio.sleep(0.1)
    assert sent == []


async def test_the_app_coalesces_what_changes_report(api: ApiClient, monkeypatch: Any):
    sent = record_enqueues(api, monkeypatch)
    assert isinstance(api.app[EMBED_QUEUE], EmbedQueue)
    await queue_embedding(api.app, "ann")
    await queue_embedding(api.app, "ann")
    assert sent == []

    async def queued() -> bool:
        return bool(sent)

    await eventually(queued, timeout=10)
    assert sent == [(EMBED_TASK, {"user_id": "ann"})]
