"""The provider contract: what an LLM provider plugin registers.

A ``Provider`` groups models that share a connection (base URL, key). A ``Model`` declares what it
is (id, name, capabilities, limits, prices, its ``Options``) and implements one method,
``stream(request)``, an async generator of chunks: ``str`` text deltas, or ``MediaOutput`` for
images and audio. It fills ``request.usage`` as the provider reports it; the core bills from that.

The core resolves the plugin's settings (keys decrypted) and passes them in as
``request.config``: plugins never read the environment. Like ``llm``'s ``needs_key``, a provider
names the settings field that holds its key (``Provider.key_field``) and the one that holds its
server's URL (``Provider.base_url_field``); the core reads both, refuses the call with ``NeedsKey``
when a needed key is missing (before the plugin runs), and passes them in as ``request.key`` and
``request.base_url`` (and as ``key=`` / ``base_url=`` to ``Provider.check`` and
``Provider.list_models`` when those accept them). Models are declared as data: a list of
``ModelInfo`` records (id, name, context window, prices, capabilities, ...) that a model class
is built from. ``request.clients`` is the app's
``ClientCache``, where a plugin keeps its SDK clients between calls. Failures are raised as the
``ProviderError`` family from ``multinotes.errors``: ``NeedsKey`` (no or bad key),
``ProviderRateLimited`` (429, with ``retry_after``), ``ProviderUnavailable`` (5xx, timeouts,
refused connections), ``ProviderBadResponse`` (malformed data) or plain ``ProviderError``. The
core retries the retryable ones before the first chunk, times calls out, and trips a circuit
breaker per provider.
"""

from __future__ import annotations

import contextlib
import email.utils
import inspect
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from multinotes.errors import NeedsKey

#: What a model can do; tools on the home screen pick models by these.
CAPABILITIES = (
    "text",  # chat / completion
    "code",  # good at code (a hint for the "code" tool)
    "vision",  # images as input
    "file_input",  # audio, video or PDF as input
    "image_generation",
    "text_to_speech",
    "speech_to_text",
)


#: What one US dollar buys: 1 credit = US$0.00001.
CREDITS_PER_USD = 100_000


def credits_from_usd(usd: float) -> float:
    """A price in US dollars as credits (rounded to 1/10,000 of a credit, so ``0.15`` dollars
    per million tokens is exactly 15,000 credits, not 15,000.000000000002)."""
    return round(usd * CREDITS_PER_USD, 4)


@dataclass(frozen=True)
class Pricing:
    """Prices in credits: per million input/output tokens, per image, per audio minute.
    Providers publish prices in dollars: build those with ``Pricing.from_usd``."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0
    per_image: float = 0.0
    per_audio_minute: float = 0.0

    @classmethod
    def from_usd(
        cls,
        *,
        input_per_million: float = 0.0,
        output_per_million: float = 0.0,
        per_image: float = 0.0,
        per_audio_minute: float = 0.0,
    ) -> Pricing:
        """Pricing from a provider's list prices in US dollars (per million input and output
        tokens, per image, per audio minute), converted to credits."""
        return cls(
            input_per_million=credits_from_usd(input_per_million),
            output_per_million=credits_from_usd(output_per_million),
            per_image=credits_from_usd(per_image),
            per_audio_minute=credits_from_usd(per_audio_minute),
        )


class Options(BaseModel):
    """Per-request options of a chat model. Unknown options are rejected."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    system: str | None = Field(default=None, max_length=20_000)


class ImageOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: Literal["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792"] = "1024x1024"
    n: int = Field(default=1, ge=1, le=4)


class SpeechOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voice: str = Field(default="alloy", max_length=40)
    format: Literal["mp3", "wav", "opus", "aac", "flac"] = "mp3"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)


class TranscriptionOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(default=None, max_length=10)
    prompt: str | None = Field(default=None, max_length=2000)


@dataclass(frozen=True)
class Attachment:
    """A file sent to the model (an image for vision, audio for transcription, a PDF, ...)."""

    media_type: str
    data: bytes
    name: str = ""


#: Who says a message.
ChatRole = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: ChatRole
    content: str
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class MediaOutput:
    """A generated image or audio clip. ``data`` is the file's bytes."""

    media_type: str
    data: bytes
    name: str = ""


Chunk = str | MediaOutput


@dataclass
class Usage:
    """Filled in by the model while it streams; the core bills from it."""

    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    audio_seconds: float = 0.0


class Closable(Protocol):
    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=Closable)
T = TypeVar("T")


class ClientCache:
    """SDK clients an app keeps for its lifetime, one per key (what the client is built from:
    base URL, API key, ...). A long-lived client is built once instead of per call (building
    one costs about as much CPU as a whole streamed answer) and keeps its upstream connections
    alive between calls. Settings are part of the key, so a changed key or URL gets a new
    client on the next call; the old one idles until the app stops, which closes them all."""

    def __init__(self) -> None:
        self._clients: dict[Hashable, Closable] = {}

    def get(self, key: Hashable, build: Callable[[], ClientT]) -> ClientT:
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = build()
        return client  # type: ignore[return-value]  # the key names the kind of client

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            with contextlib.suppress(Exception):  # one broken client must not keep others open
                await client.close()


@dataclass
class GenerationRequest:
    messages: list[ChatMessage]
    options: BaseModel
    #: The provider plugin's settings model instance, secrets decrypted.
    config: Any
    usage: Usage = field(default_factory=Usage)
    #: Seconds the core allows for the whole call (connect + stream).
    timeout: float = 120.0
    #: The app's long-lived SDK clients; None outside an app (a plugin then builds a client for
    #: the call and closes it afterwards).
    clients: ClientCache | None = None
    #: The API key the core read from the settings field ``Provider.key_field`` names (stripped);
    #: None when the provider needs none. The core never calls a model whose key is missing.
    key: str | None = None
    #: The server URL from the settings field ``Provider.base_url_field`` names (stripped, no
    #: trailing slash); None when the provider has no such setting.
    base_url: str | None = None

    def require_key(self, provider_name: str) -> str:
        """``key``, or ``NeedsKey`` before anything is sent when the caller passed none (the core
        never does; a test or script that builds requests by hand might)."""
        if not self.key:
            raise NeedsKey(
                f"{provider_name} needs an API key. An admin can set it in the Plugins console."
            )
        return self.key


#: The fields of ``Pricing``, in order.
PRICE_FIELDS = ("input_per_million", "output_per_million", "per_image", "per_audio_minute")


@dataclass(frozen=True)
class ModelInfo:
    """A model declared as data: what the catalog shows and bills. A provider lists its models
    as records and builds each from one (``ChatModel(info)``), so adding a model or changing a
    price is a line of data, not a class."""

    model_id: str  # globally unique; convention "<provider>/<model>"
    name: str
    pricing: Pricing = Pricing()
    capabilities: frozenset[str] = frozenset({"text"})
    context_window: int = 8192
    max_output: int = 4096
    description: str = ""
    #: Shown next to the name wherever it appears (e.g. "Demo").
    label: str | None = None
    #: The per-request options model; None: the model class's own ``Options``.
    options: type[BaseModel] | None = None
    #: The name the provider's API knows the model by; "": ``model_id`` after the first "/".
    api_name: str = ""
    #: Whatever else this provider needs to know about the model (e.g. inference steps).
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"{self.model_id}: unknown capabilities {', '.join(unknown)}")
        if "/" not in self.model_id:
            raise ValueError(f"{self.model_id}: a model id is '<provider>/<model>'")
        if self.context_window < 0 or self.max_output < 0:
            raise ValueError(f"{self.model_id}: limits cannot be negative")
        if any(getattr(self.pricing, name) < 0 for name in PRICE_FIELDS):
            raise ValueError(f"{self.model_id}: prices cannot be negative")

    @property
    def remote_name(self) -> str:
        return self.api_name or self.model_id.split("/", 1)[1]


class Model(ABC):
    """One model. Build it from a ``ModelInfo`` record (``Model(info)``), or set the attributes
    on a subclass (or per instance, for models a provider discovers at run time); then implement
    ``stream``."""

    model_id: str  # globally unique; convention "<provider>/<model>"
    name: str
    capabilities: frozenset[str] = frozenset({"text"})
    context_window: int = 8192
    max_output: int = 4096
    pricing: Pricing = Pricing()
    Options: ClassVar[type[BaseModel]] = Options
    #: Shown next to the name wherever it appears (e.g. "Demo").
    label: str | None = None
    description: str = ""

    def __init__(self, info: ModelInfo | None = None) -> None:
        if info is None:
            return
        self.model_id = info.model_id
        self.name = info.name
        self.capabilities = frozenset(info.capabilities)
        self.context_window = info.context_window
        self.max_output = info.max_output
        self.pricing = info.pricing
        self.label = info.label if info.label is not None else type(self).label
        self.description = info.description
        self.api_name = info.remote_name
        self.extra = dict(info.extra)
        if info.options is not None:
            self.Options = info.options  # type: ignore[misc]  # per instance, by design

    @property
    def info(self) -> ModelInfo:
        """This model as a record (what the catalog lists)."""
        return ModelInfo(
            model_id=self.model_id,
            name=self.name,
            pricing=self.pricing,
            capabilities=frozenset(self.capabilities),
            context_window=self.context_window,
            max_output=self.max_output,
            description=self.description,
            label=self.label,
            options=self.Options,
            api_name=getattr(self, "api_name", "") or "",
            extra=dict(getattr(self, "extra", {}) or {}),
        )

    @property
    def id(self) -> str:
        return self.model_id

    @abstractmethod
    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Yield text deltas (``str``) and/or ``MediaOutput``; set ``request.usage``."""


class Provider(ABC):
    """A named group of models registered by a provider plugin."""

    provider_id: str
    name: str
    #: Name of the settings field that holds the API key; None when no key is needed. The core
    #: reads it and passes it in (``request.key``); a missing key never reaches the plugin.
    key_field: str | None = "api_key"
    #: Name of the settings field that holds the server's URL (``request.base_url``); None, or a
    #: field the settings do not have, when the provider has no such setting.
    base_url_field: str | None = "base_url"

    @property
    def id(self) -> str:
        return self.provider_id

    @abstractmethod
    async def list_models(self, config: Any) -> list[Model]:
        """The models this provider offers with these settings. Static providers return a fixed
        list; others may ask their server (the core caches the answer). An implementation that
        declares keyword parameters ``key`` and/or ``base_url`` gets them from the core (the
        key may be None here: the catalog lists models before an admin sets a key)."""

    async def check(self, config: Any) -> str:
        """Test the connection (admin console's "Test connection"). Returns a short description
        of what worked; raises a ``ProviderError`` saying what did not. An implementation that
        declares keyword parameters ``key`` and/or ``base_url`` gets them from the core, which
        has already refused a missing key with ``NeedsKey``."""
        models = await self.list_models(config)
        return f"{len(models)} model(s) available"

    def warm(self) -> None:
        """Import what this provider's calls need (its SDK) ahead of the first call. A provider
        plugin imports its SDK where it calls it, not when the plugin loads, so a process where
        the provider is switched off never carries it; the core calls ``warm`` in a worker
        thread at startup for every enabled provider and when one is switched on, so no answer
        pays for the import. Default: nothing to load."""
        return None


class StaticProvider(Provider):
    """A provider whose models are fixed at registration time."""

    def __init__(
        self, provider_id: str, name: str, models: list[Model], key_field: str | None = "api_key"
    ) -> None:
        self.provider_id = provider_id
        self.name = name
        self._models = list(models)
        self.key_field = key_field

    async def list_models(self, config: Any) -> list[Model]:
        return list(self._models)


# -- helpers for provider plugins -----------------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds: either a number or an HTTP date (None if neither)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def configured_key(config: Any, field_name: str = "api_key") -> str:
    """The plain, stripped value of a key setting ("" when unset)."""
    value = getattr(config, field_name, None)
    plain = value.get_secret_value() if isinstance(value, SecretStr) else (value or "")
    return str(plain).strip()


# -- what the core resolves and passes in ---------------------------------------------------------


def provider_key(provider: Provider, config: Any, *, required: bool = True) -> str | None:
    """The API key the core passes to ``provider`` with these settings: None when the provider
    needs none; ``NeedsKey`` (or None when not ``required``) when the key is not set."""
    if not provider.key_field:
        return None
    key = configured_key(config, provider.key_field)
    if key:
        return key
    if not required:
        return None
    raise NeedsKey(f"{provider.name} needs an API key. An admin can set it in the Plugins console.")


def provider_base_url(provider: Provider, config: Any) -> str | None:
    """The server URL the core passes to ``provider``: its ``base_url_field`` setting, stripped
    and without a trailing slash (None when the provider has no such setting or it is empty)."""
    if not provider.base_url_field:
        return None
    value = getattr(config, provider.base_url_field, None)
    text = str(value).strip().rstrip("/") if value else ""
    return text or None


def _accepted(method: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def call_with_credentials(
    method: Callable[..., Awaitable[T]], config: Any, *, key: str | None, base_url: str | None
) -> Awaitable[T]:
    """Call ``Provider.check`` or ``Provider.list_models`` the way the core does: with the
    settings, plus ``key=`` and ``base_url=`` when the method declares them (by name, as pluggy
    passes hook arguments), so a provider written for ``check(config)`` keeps working."""
    extra: dict[str, Any] = {}
    if _accepted(method, "key"):
        extra["key"] = key
    if _accepted(method, "base_url"):
        extra["base_url"] = base_url
    return method(config, **extra)


def generation_request(
    provider: Provider,
    messages: list[ChatMessage],
    options: BaseModel,
    config: Any,
    **kwargs: Any,
) -> GenerationRequest:
    """A ``GenerationRequest`` as the core builds it: the settings, plus the key and base URL
    read from them (``NeedsKey`` before any call when a needed key is missing)."""
    return GenerationRequest(
        messages=messages,
        options=options,
        config=config,
        key=provider_key(provider, config),
        base_url=provider_base_url(provider, config),
        **kwargs,
    )
