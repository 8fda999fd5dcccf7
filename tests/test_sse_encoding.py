"""The per-chunk SSE path (issue #17): a ``delta`` event encoded from a prefix made once per
answer is byte for byte the event ``sse()`` makes from a dict, whatever the text holds; events
that piled up go out as one write, in order."""

from __future__ import annotations

import asyncio
import json

import pytest

from multinotes.chat.pipeline import DeltaEncoder, EventSink, encoded, sse

TAG = {"generation_id": "0f3a", "model": 'acme/"quoted" model'}

TEXTS = [
    "tok0 ",
    "",
    'quote " backslash \\ slash /',
    "line\nbreak\r\ttab",
    "é ü 漢字",
    "emoji \U0001f600",
    "\u2028\u2029 separators",
    "\x00\x1f control",
    "</script><b>",
    "data: event: not a field\n\n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_delta_is_the_same_bytes_as_before(text: str) -> None:
    delta = DeltaEncoder(TAG)
    assert delta(text) == sse("delta", {**TAG, "text": text})
    # And a client reads the text back exactly.
    event, data = delta(text).decode().rstrip("\n").split("\n", 1)
    assert event == "event: delta"
    assert json.loads(data.removeprefix("data: ")) == {**TAG, "text": text}


async def test_piled_up_events_are_one_write_in_order() -> None:
    sink = EventSink()
    delta = DeltaEncoder(TAG)
    done = asyncio.get_running_loop().create_future()

    async def answer() -> None:
        sink.emit("start", {**TAG, "message_id": "m"})
        for text in ("a", "b", "c"):
            sink.emit_encoded(delta(text))
        sink.emit("done", {**TAG, "status": "complete"})
        await done

    task = asyncio.create_task(answer())
    sink.follow(task)
    writes: list[bytes] = []
    async for events in sink.drain():
        writes.append(encoded(events))
        if not done.done():
            done.set_result(None)  # let the answer end once its events were written
    expected = (
        sse("start", {**TAG, "message_id": "m"})
        + b"".join(sse("delta", {**TAG, "text": t}) for t in "abc")
        + sse("done", {**TAG, "status": "complete"})
    )
    assert writes == [expected]


def test_a_closed_sink_drops_encoded_events() -> None:
    sink = EventSink()
    sink.close()
    sink.emit_encoded(DeltaEncoder(TAG)("x"))
    assert sink.closed and not sink._events
