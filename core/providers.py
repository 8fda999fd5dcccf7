"""The provider contract: what an LLM provider plugin registers.

A provider groups models that share a connection (base URL, key). A model declares what it is
(id, name, capabilities, limits, prices) and implements one streaming method. The core resolves
the plugin's settings (keys included) and passes them in: plugins never read the environment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Capability = Literal[
    "text", "code", "vision", "image_generation", "text_to_speech", "speech_to_text", "file_input"
]


@dataclass(frozen=True)
class Pricing:
    """Prices in credits: per million input/output tokens, per image, per audio minute."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0
    per_image: float = 0.0
    per_audio_minute: float = 0.0


class Options(BaseModel):
    """Per-request options every chat model accepts. Unknown options are rejected."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    system: str | None = Field(default=None, max_length=20_000)


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass
class Usage:
    """Filled in by the model while it streams; the core bills from it."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    audio_seconds: float = 0.0


class Model(ABC):
    """One model. Subclasses set the class attributes and implement ``stream``."""

    model_id: ClassVar[str]
    name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset({"text"})
    context_window: ClassVar[int] = 8192
    max_output: ClassVar[int] = 4096
    pricing: ClassVar[Pricing] = Pricing()
    Options: ClassVar[type[BaseModel]] = Options
    #: Name of the provider setting holding the key this model needs (None: no key needed).
    needs_key: ClassVar[str | None] = None
    #: Shown wherever the model name appears (the demo provider sets it).
    label: ClassVar[str | None] = None

    @abstractmethod
    def stream(
        self, messages: list[ChatMessage], options: BaseModel, usage: Usage, config: Any
    ) -> AsyncIterator[str]:
        """Yield text deltas; set ``usage`` as the provider reports it. ``config`` is the
        provider plugin's resolved settings (secrets decrypted)."""


@dataclass
class Provider:
    """A named group of models registered by a provider plugin."""

    provider_id: str
    name: str
    models: Iterable[Model] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.provider_id
