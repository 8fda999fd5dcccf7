"""Together chat and image models, called through the official ``together`` SDK."""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, NoReturn

import certifi

from multinotes.plugin import (
    ChatMessage,
    Chunk,
    ClientCache,
    ContentFiltered,
    GenerationRequest,
    ImageOptions,
    MediaOutput,
    Model,
    ModelInfo,
    ProviderBadResponse,
    ProviderError,
    ProviderUnavailable,
    Usage,
    outgoing,
)
from multinotes.plugins.providers.together.errors import FILTER_CODES, api_key, map_error

if TYPE_CHECKING:
    import together
    from together.types.chat import ChatCompletionMessageParam
    from together.types.chat.chat_completion_chunk import ChatCompletionChunk


def warm() -> None:
    """Import the SDK (~6 MB), which the functions below import where they call it: a process
    where this provider is switched off never loads it, and the core calls this when the
    provider is switched on (at startup too), so no answer pays for the import."""
    try:
        import together  # noqa: F401
    except ImportError as exc:  # the optional SDK of this plugin is not installed
        raise ImportError(
            "the Together plugin needs the together package: pip install 'multinotes[together]'"
        ) from exc


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One CA-loaded TLS context shared by every client: loading the CA bundle blocks the event
    loop for ~15 ms, which a client per call would repeat. Same trust store as httpx's default
    (``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi)."""
    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()),
        capath=os.environ.get("SSL_CERT_DIR"),
    )


def _new_client(config: Any, key: str, base_url: str) -> together.AsyncTogether:
    import together

    return together.AsyncTogether(
        api_key=key,
        base_url=base_url,
        timeout=config.timeout,
        max_retries=0,
        http_client=outgoing.guard_httpx_client(
            together.DefaultAsyncHttpxClient(verify=tls_context(), **outgoing.HTTPX_CLIENT_ARGS)
        ),
    )


@contextlib.asynccontextmanager
async def together_client(
    config: Any, key: str, clients: ClientCache | None = None, base_url: str | None = None
) -> AsyncIterator[together.AsyncTogether]:
    """The app's long-lived client for these settings (its connections stay open between
    calls: no new TLS handshake per answer), or without ``clients`` one for this call alone.
    Settings are part of the cache key, so a changed key, URL or timeout gets a new client.
    SDK retries are off: the core owns retries, backoff and the circuit breaker. httpx applies
    ``timeout`` to each phase, so it bounds the wait for the first byte and between chunks.
    ``key`` and ``base_url`` are what the core read from the settings."""
    url = base_url or config.base_url
    if clients is not None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        cache_key = ("together", url, digest, config.timeout)
        yield clients.get(cache_key, lambda: _new_client(config, key, url))
        return
    client = _new_client(config, key, url)
    try:
        yield client
    finally:
        await client.close()


def raise_mapped(exc: Exception, timeout: float) -> NoReturn:
    """Re-raise ``exc`` as its ``ProviderError``; unknown exceptions (bugs) stay as they are."""
    mapped = map_error(exc, timeout=timeout)
    if mapped is None or mapped is exc:
        raise exc
    raise mapped from exc


def to_messages(
    messages: list[ChatMessage], system: str | None
) -> list[ChatCompletionMessageParam]:
    """OpenAI-style messages; ``Options.system`` goes first as a system message."""
    if any(m.attachments for m in messages):
        raise ProviderError("This Together AI model reads text only; remove the attachment.")
    out: list[ChatCompletionMessageParam] = []
    if system:
        out.append({"role": "system", "content": system})
    for m in messages:
        if m.role == "system":
            out.append({"role": "system", "content": m.content})
        elif m.role == "user":
            out.append({"role": "user", "content": m.content})
        else:
            out.append({"role": "assistant", "content": m.content})
    return out


def read_chunk(chunk: ChatCompletionChunk, usage: Usage) -> tuple[str, bool]:
    """Text of one chunk and whether it finished the answer. Together reports usage on the
    final chunk only, so ``usage`` changes once. A ``content_filter`` finish reason (the
    moderation cut the answer off) is ``ContentFiltered``: a refusal, not an answer."""
    try:
        if chunk.usage is not None:
            usage.input_tokens = int(chunk.usage.prompt_tokens or 0)
            usage.output_tokens = int(chunk.usage.completion_tokens or 0)
        text, finished = "", False
        for choice in chunk.choices or []:
            if choice.index == 0 and choice.delta is not None and choice.delta.content:
                text += choice.delta.content
            if choice.finish_reason in FILTER_CODES:
                raise ContentFiltered("Together AI's content filter stopped this answer.")
            finished = finished or choice.finish_reason is not None
    except (AttributeError, TypeError, ValueError) as exc:
        # The SDK builds chunks without validation; a wrong shape shows up on access.
        raise ProviderBadResponse(
            "Together AI sent a chunk that is not a chat completion."
        ) from exc
    return text, finished


class TogetherModel(Model):
    """Built from its record; ``model_id`` is ``together/<org>/<model>``."""

    api_name: str

    def __init__(self, info: ModelInfo) -> None:
        super().__init__(info)
        #: Inference steps for image models (FLUX.1-schnell is distilled for 1-4 steps).
        self.steps: int | None = info.extra.get("steps")


class TogetherChatModel(TogetherModel):
    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        config = request.config
        key = api_key(request.key)
        options = request.options
        messages = to_messages(request.messages, getattr(options, "system", None))
        temperature = getattr(options, "temperature", None)
        top_p = getattr(options, "top_p", None)
        max_tokens = getattr(options, "max_tokens", None)
        from together import omit

        async with together_client(config, key, request.clients, request.base_url) as client:
            try:
                chunks = await client.chat.completions.create(
                    model=self.api_name,
                    messages=messages,
                    stream=True,
                    temperature=omit if temperature is None else temperature,
                    top_p=omit if top_p is None else top_p,
                    max_tokens=omit if max_tokens is None else max_tokens,
                )
                finished = False
                async for chunk in chunks:
                    text, done = read_chunk(chunk, request.usage)
                    finished = finished or done
                    if text:
                        yield text
                if not finished:
                    raise ProviderUnavailable(
                        "Together AI's answer stopped before it was complete."
                    )
            except Exception as exc:
                raise_mapped(exc, config.timeout)


def sniff_image(data: bytes) -> tuple[str, str]:
    """Media type and extension from the bytes themselves, not from what was asked for."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", "webp"
    raise ProviderBadResponse("Together AI sent something that is not an image.")


class TogetherImageModel(TogetherModel):
    Options = ImageOptions

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        config = request.config
        key = api_key(request.key)
        prompt = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        if not prompt.strip():
            raise ProviderError("Describe the image to generate.")
        options = request.options
        width, height = (int(n) for n in getattr(options, "size", "1024x1024").split("x"))
        from together import omit

        async with together_client(config, key, request.clients, request.base_url) as client:
            try:
                result = await client.images.generate(
                    model=self.api_name,
                    prompt=prompt,
                    width=width,
                    height=height,
                    n=getattr(options, "n", 1),
                    response_format="base64",
                    output_format="png",
                    steps=self.steps or omit,
                )
            except Exception as exc:
                raise_mapped(exc, config.timeout)
        images = decode_images(result)
        for index, data in enumerate(images):
            media_type, ext = sniff_image(data)
            request.usage.images = index + 1
            yield MediaOutput(media_type, data, f"image-{index + 1}.{ext}")


def decode_images(result: Any) -> list[bytes]:
    """The bytes of every image in an ``ImageFile`` answer asked for with ``b64_json``."""
    images = []
    for item in getattr(result, "data", None) or []:
        encoded = getattr(item, "b64_json", None)
        if not isinstance(encoded, str) or not encoded:
            raise ProviderBadResponse("Together AI sent an image link instead of image data.")
        try:
            images.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ProviderBadResponse("Together AI sent image data that is not base64.") from exc
    if not images:
        raise ProviderBadResponse("Together AI answered without any image.")
    return images
