"""The SSE events of a blind comparison: the pipeline's events with everything that would name
a model taken out.

The pipeline tags each event with ``generation_id`` and ``model``; its ``done`` carries the cost
(which differs per model) and its ``error`` the provider's own words. A blind stream keeps only
the answer's label, its text, its status and its final HTML, and says a failed answer failed
without saying whose it was.
"""

from __future__ import annotations

import json
from typing import Any

from multinotes.chat.pipeline import EventSink

#: Per event, the fields of the pipeline's event that may reach the client (besides the label).
KEPT = {
    "start": (),
    "delta": ("text",),
    "done": ("status", "html"),
    "error": (),
    "media": ("media_type", "url"),
}


class BlindSink(EventSink):
    """An ``EventSink`` that relabels: ``labels`` maps a generation id to its letter."""

    def __init__(self, labels: dict[str, str]) -> None:
        super().__init__()
        self._labels = labels

    def emit(self, event: str, data: dict[str, Any]) -> None:
        label = self._labels.get(str(data.get("generation_id")))
        if label is None or event not in KEPT:
            return  # nothing unlabelled (or of a kind not vetted) goes out
        blind = {"label": label, **{k: data[k] for k in KEPT[event] if k in data}}
        if event == "error":
            blind["message"] = f"Answer {label} failed."
        super().emit(event, blind)

    def emit_encoded(self, event: bytes) -> None:
        # The per-chunk fast path encodes the model's tag into the bytes: decode and relabel.
        head, _, payload = event.decode().partition("data: ")
        name = head.removeprefix("event: ").strip()
        self.emit(name, json.loads(payload))
