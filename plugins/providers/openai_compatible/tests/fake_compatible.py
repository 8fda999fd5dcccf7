"""A local fake of an OpenAI-compatible server (Ollama, vLLM, LM Studio, OpenRouter): the
chat protocol such servers speak, from ``multinotes.testing_openai``, with a local server's
model names. ``api_key=None`` is a local server that takes no key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from multinotes.testing_openai import FAILURES, FakeOpenAIWire, Recorded, tiny_png

__all__ = ["FAILURES", "FakeCompatible", "Recorded", "tiny_png"]


@dataclass
class FakeCompatible(FakeOpenAIWire):
    """State and behaviour of one fake OpenAI-compatible server."""

    models: list[str] = field(default_factory=lambda: ["llama3.2", "qwen2.5-coder"])
