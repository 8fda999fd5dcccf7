"""Gemini chat models: core messages → google-genai contents, streamed back as text deltas."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp
import certifi

from multinotes.plugin import (
    Attachment,
    ChatMessage,
    Chunk,
    ClientCache,
    ContentFiltered,
    GenerationRequest,
    Model,
    ModelInfo,
    ProviderUnavailable,
    Usage,
    outgoing,
)
from multinotes.plugins.providers.gemini.errors import api_key, map_error

if TYPE_CHECKING:
    from google import genai
    from google.genai import types


def warm() -> None:
    """Import the SDK (~15 MB), which the functions below import where they call it: a process
    where this provider is switched off never loads it, and the core calls this when the
    provider is switched on (at startup too), so no answer pays for the import."""
    try:
        from google.genai import errors, types  # noqa: F401
    except ImportError as exc:  # the optional SDK of this plugin is not installed
        raise ImportError(
            "the Gemini plugin needs the google-genai package: pip install 'multinotes[gemini]'"
        ) from exc


T = TypeVar("T")

#: Gemini's role names: an assistant turn is "model"; system text goes to system_instruction.
ROLES = {"user": "user", "assistant": "model"}
#: google-genai's own read buffer (4 MiB): a streamed image arrives as one long line.
GENAI_READ_BUFFER = 2**22


#: What every curated Gemini model can do.
GEMINI_CAPABILITIES = frozenset({"text", "code", "vision", "file_input"})


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One CA-loaded TLS context shared by every client. Loading the CA bundle blocks the event
    loop for ~15 ms and google-genai does it three times per client; the trust store is the
    SDK's default (``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi)."""
    return ssl.create_default_context(
        cafile=os.environ.get("SSL_CERT_FILE", certifi.where()),
        capath=os.environ.get("SSL_CERT_DIR"),
    )


def _new_client(config: Any, key: str, base_url: str, budget: float) -> genai.Client:
    # Our own aiohttp session, so its connector applies the outgoing address policy (the SDK's
    # own session would connect anywhere); the SDK leaves a supplied session open: ``_close``.
    from google import genai
    from google.genai import types

    session = aiohttp.ClientSession(
        connector=outgoing.connector(limit=0), read_bufsize=GENAI_READ_BUFFER
    )
    return genai.Client(
        api_key=key,
        vertexai=False,
        http_options=types.HttpOptions(
            base_url=base_url,
            api_version=config.api_version,
            timeout=int(max(budget, config.timeout) * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
            client_args={"verify": tls_context()},
            async_client_args={"ssl": tls_context(), **outgoing.AIOHTTP_REQUEST_ARGS},
            aiohttp_client=session,
        ),
    )


async def _close(client: genai.Client) -> None:
    await client.aio.aclose()
    client.close()
    session = client._api_client._http_options.aiohttp_client
    if session is not None:
        await session.close()


class KeptClient:
    """A client the app keeps (``ClientCache`` closes what it keeps with ``close()``)."""

    def __init__(self, client: genai.Client) -> None:
        self.client = client

    async def close(self) -> None:
        await _close(self.client)


@contextlib.asynccontextmanager
async def gemini_client(
    config: Any,
    key: str,
    budget: float,
    clients: ClientCache | None = None,
    base_url: str | None = None,
) -> AsyncIterator[genai.client.AsyncClient]:
    """The app's long-lived client for these settings (its aiohttp session, made in the app's
    event loop, keeps connections open between calls: no new TLS handshake per answer), or
    without ``clients`` one for this call alone. Settings and ``budget`` are part of the cache
    key, so a changed key, URL or timeout gets a new client. SDK retries are off (one
    attempt, no silent reconnect) because the core owns retries, backoff and the circuit
    breaker. ``budget`` bounds the whole call; the caller enforces ``config.timeout`` per
    stream step. ``key`` and ``base_url`` are what the core read from the settings."""
    url = base_url or config.base_url
    if clients is not None:
        digest = hashlib.sha256(key.encode()).hexdigest()
        cache_key = ("gemini", url, config.api_version, digest, config.timeout, budget)
        kept = clients.get(cache_key, lambda: KeptClient(_new_client(config, key, url, budget)))
        yield kept.client.aio
        return
    client = _new_client(config, key, url, budget)
    try:
        yield client.aio
    finally:
        await _close(client)


async def within(stream: AsyncIterator[T], seconds: float) -> AsyncIterator[T]:
    """Each item must arrive within ``seconds``. The SDK's own timeout covers the whole stream,
    which would cut long answers; a stalled stream is what must fail."""
    iterator = aiter(stream)
    while True:
        try:
            async with asyncio.timeout(seconds):
                item = await anext(iterator)
        except StopAsyncIteration:
            return
        yield item


def to_contents(
    messages: list[ChatMessage], system: str | None
) -> tuple[str | None, list[types.Content]]:
    """System text (``Options.system`` first, then system messages) and the conversation.
    Attachments go before the text of their message, as Google recommends for media prompts."""
    from google.genai import types

    instructions = [system] if system else []
    contents: list[types.Content] = []
    for message in messages:
        if message.role == "system":
            if message.content:
                instructions.append(message.content)
            continue
        parts = [inline_part(a) for a in message.attachments]
        if message.content:
            parts.append(types.Part.from_text(text=message.content))
        if parts:
            contents.append(types.Content(role=ROLES[message.role], parts=parts))
    return ("\n\n".join(instructions) or None), contents


def inline_part(attachment: Attachment) -> types.Part:
    """Images, audio, video and PDFs travel inline (base64 ``inline_data``), so no upload step
    and nothing left behind in the Files API."""
    from google.genai import types

    return types.Part.from_bytes(data=attachment.data, mime_type=attachment.media_type)


#: Finish reasons of an answer Gemini's safety filters cut off.
FILTER_REASONS = frozenset({"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY"})


def read_response(response: types.GenerateContentResponse, usage: Usage) -> tuple[str, bool]:
    """Text of one streamed response and whether it finished the answer; updates ``usage``.
    Thinking tokens of the 2.5 models are billed as output, so they count as output here."""
    meta = response.usage_metadata
    if meta is not None and meta.prompt_token_count is not None:
        usage.input_tokens = meta.prompt_token_count
        usage.output_tokens = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason:
        reason = getattr(feedback.block_reason, "value", feedback.block_reason)
        raise ContentFiltered(f"Gemini declined to answer this prompt ({reason}).")
    if not response.candidates:
        return "", False
    candidate = response.candidates[0]
    finish = getattr(candidate.finish_reason, "value", candidate.finish_reason)
    if finish in FILTER_REASONS:
        raise ContentFiltered(f"Gemini stopped this answer ({finish}).")
    parts = (candidate.content.parts if candidate.content else None) or []
    text = "".join(part.text for part in parts if part.text and not part.thought)
    return text, candidate.finish_reason is not None


class GeminiModel(Model):
    """A Gemini model behind the Gemini API (``generateContent`` / ``streamGenerateContent``),
    built from its record (``gemini/<api name>``)."""

    api_name: str

    def __init__(self, info: ModelInfo) -> None:
        super().__init__(info)

    def generation_config(
        self, request: GenerationRequest, system: str | None
    ) -> types.GenerateContentConfig:
        from google.genai import types

        options = request.options
        return types.GenerateContentConfig(
            system_instruction=system,
            temperature=getattr(options, "temperature", None),
            top_p=getattr(options, "top_p", None),
            max_output_tokens=getattr(options, "max_tokens", None),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        config = request.config
        key = api_key(request.key)
        system, contents = to_contents(request.messages, getattr(request.options, "system", None))
        settings = self.generation_config(request, system)
        async with gemini_client(
            config, key, request.timeout, request.clients, request.base_url
        ) as client:
            responses: AsyncIterator[types.GenerateContentResponse] | None = None
            try:
                async with asyncio.timeout(config.timeout):
                    responses = await client.models.generate_content_stream(
                        model=self.api_name, contents=contents, config=settings
                    )
                finished = False
                async for response in within(responses, config.timeout):
                    text, done = read_response(response, request.usage)
                    finished = finished or done
                    if text:
                        yield text
                if not finished:
                    raise ProviderUnavailable("Gemini's answer stopped before it was complete.")
            except Exception as exc:
                mapped = map_error(exc, timeout=config.timeout)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc
            finally:
                close = getattr(responses, "aclose", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        await close()
