"""The OpenAI wire protocol, shared by every provider plugin whose server speaks it.

OpenAI itself, OpenAI-compatible servers (Ollama, vLLM, LM Studio, OpenRouter) and Together all
answer the same Chat Completions API. Plugins import only from ``multinotes``, so the code they
share lives here: build the client, turn a ``GenerationRequest`` into request parameters, stream
the answer while filling ``request.usage``, and map the SDK's exceptions onto the
``ProviderError`` family in exactly one place.

The SDK never retries (``max_retries=0``): the core owns retries, backoff and circuit breaking.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import math
import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pydantic

from multinotes import outgoing
from multinotes.errors import (
    NeedsKey,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.providers import ChatMessage, ClientCache, GenerationRequest, parse_retry_after

#: Longest provider message passed on to a user; the rest is noise (ids, docs links).
MESSAGE_LIMIT = 300


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (it only holds the system's CA certificates)."""
    return ssl.create_default_context()


def make_client(
    *,
    api_key: str,
    base_url: str,
    timeout: float,
    organization: str | None = None,
) -> openai.AsyncOpenAI:
    """A new client. Prefer ``client`` (shared clients); one made here is the caller's to close.

    ``api_key`` must not be empty: given nothing, the SDK falls back to ``OPENAI_API_KEY`` from
    the environment and would send that key to whatever server ``base_url`` names. Servers that
    need no key get a placeholder.
    """
    if not api_key:
        raise ValueError("api_key must not be empty (use a placeholder for keyless servers)")
    client = openai.AsyncOpenAI(
        api_key=api_key,
        base_url=base_url,
        organization=organization or None,
        max_retries=0,
        timeout=timeout,
        # Sharing the TLS context avoids re-reading the CA bundle for every client (~16 ms of
        # CPU and ~0.8 MB each).
        http_client=outgoing.guard_httpx_client(
            openai.DefaultAsyncHttpxClient(
                verify=tls_context(), timeout=timeout, **outgoing.HTTPX_CLIENT_ARGS
            )
        ),
    )
    # Same reason: the SDK fills these from OPENAI_* variables when they are not given.
    client.organization = organization or None
    client.project = None
    client.admin_api_key = None
    return client


@contextlib.asynccontextmanager
async def client(
    clients: ClientCache | None,
    *,
    api_key: str,
    base_url: str,
    default_timeout: float,
    organization: str | None = None,
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The app's long-lived client for this server and key (kept open: its connections are
    reused by the next call), or, without ``clients``, a client for this call alone.

    ``default_timeout`` is the timeout of a client made here; calls on a shared client pass
    their own (``stream_chat`` does). The key is hashed into the cache key so no secret sits
    in it.
    """
    if clients is None:
        async with make_client(
            api_key=api_key, base_url=base_url, timeout=default_timeout, organization=organization
        ) as own:
            yield own
        return
    digest = hashlib.sha256(api_key.encode()).hexdigest()
    key = ("openai_wire", base_url, digest, organization or "")
    yield clients.get(
        key,
        lambda: make_client(
            api_key=api_key, base_url=base_url, timeout=default_timeout, organization=organization
        ),
    )


def estimate_tokens(text: str) -> int:
    """Rough token count (4 characters a token) for servers that report no usage."""
    return math.ceil(len(text) / 4)


# -- errors -------------------------------------------------------------------------------------


def retry_after_seconds(headers: Any) -> float | None:
    """The server's hint from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    return parse_retry_after(headers.get("retry-after"))


def _short_message(exc: openai.APIError) -> str:
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = exc.message
    message = " ".join(message.split())
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def provider_error(exc: BaseException, provider: str) -> ProviderError:
    """Translate an SDK (or decoding) exception into the matching ``ProviderError``.

    :param provider: the provider's display name; every message names it.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return NeedsKey(
            f"{provider} rejected the API key ({_short_message(exc)}). "
            "An admin can set a valid key in the Plugins console."
        )
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":  # billing, not load: waiting will not help
            return ProviderError(f"{provider}: {_short_message(exc)}")
        return ProviderRateLimited(
            f"{provider} is rate limiting requests. Try again shortly.",
            retry_after=retry_after_seconds(exc.response.headers),
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProviderUnavailable(f"{provider} did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        refused = outgoing.refusal_in(exc)
        if refused is not None:
            return refused
        return ProviderUnavailable(f"Could not reach {provider}.")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderBadResponse(f"{provider} sent a response that could not be read.")
    if isinstance(exc, openai.APIStatusError):
        if outgoing.is_redirect(exc.status_code):
            return outgoing.redirect_error(provider, exc.status_code)
        if exc.status_code >= 500:
            return ProviderUnavailable(
                f"{provider} is unavailable right now (HTTP {exc.status_code})."
            )
        return ProviderError(f"{provider}: {_short_message(exc)}")
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return ProviderUnavailable(f"{provider} failed mid-answer: {_short_message(exc)}")
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError | ValueError):
        return ProviderBadResponse(f"{provider} sent a malformed response.")
    if isinstance(exc, openai.OpenAIError):
        return ProviderError(f"{provider}: {exc}")
    raise TypeError(f"not a provider failure: {exc!r}")


@contextlib.contextmanager
def translated_errors(provider: str) -> Iterator[None]:
    """Re-raise SDK and decoding failures inside the block as ``ProviderError`` (no chaining,
    so no SDK internals travel with the error)."""
    try:
        yield
    except ProviderError:
        raise
    except (openai.OpenAIError, json.JSONDecodeError, pydantic.ValidationError) as exc:
        raise provider_error(exc, provider) from None


async def model_ids(client: openai.AsyncOpenAI, provider: str) -> list[str]:
    """The ids ``GET /models`` lists, sorted."""
    with translated_errors(provider):
        page = await client.models.list()
        return sorted(model.id for model in page.data)


# -- chat ---------------------------------------------------------------------------------------


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _message(message: ChatMessage, vision: bool) -> dict[str, Any]:
    images = [a for a in message.attachments if a.media_type.startswith("image/")]
    # Only user turns may carry images on this API. Other attachments (audio, PDFs) are left
    # out rather than failing a whole conversation that once used another kind of model.
    if message.role != "user" or not vision or not images:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for image in images:
        url = data_url(image.media_type, image.data)
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": "user", "content": parts}


def chat_params(
    request: GenerationRequest,
    model: str,
    *,
    vision: bool = True,
    max_tokens_field: str = "max_completion_tokens",
) -> dict[str, Any]:
    """Streaming Chat Completions parameters for ``request``.

    :param model: the model name the server knows (without our ``provider/`` prefix).
    :param vision: send image attachments as ``image_url`` parts (data URLs).
    :param max_tokens_field: OpenAI wants ``max_completion_tokens``; many compatible servers
        still only read the older ``max_tokens``.
    """
    options = request.options
    messages: list[dict[str, Any]] = []
    system = getattr(options, "system", None)
    if system:
        messages.append({"role": "system", "content": system})
    messages.extend(_message(m, vision) for m in request.messages)
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    for name in ("temperature", "top_p"):
        value = getattr(options, name, None)
        if value is not None:
            params[name] = value
    max_tokens = getattr(options, "max_tokens", None)
    if max_tokens is not None:
        params[max_tokens_field] = max_tokens
    return params


async def stream_chat(
    client: openai.AsyncOpenAI,
    params: dict[str, Any],
    request: GenerationRequest,
    provider: str,
    *,
    call_timeout: float | None = None,
) -> AsyncIterator[str]:
    """Stream text deltas of one Chat Completions call and set ``request.usage``.

    :param call_timeout: seconds for the call (default ``request.timeout``).

    A stream that ends before a finish reason or usage chunk arrived, or breaks off, raises
    ``ProviderUnavailable`` (after the text already yielded). When the server reports no usage,
    it is estimated from the text (4 characters a token).

    The SDK sends the request, decodes the event stream and raises its errors (HTTP status,
    error events, timeouts) as usual, but hands over each chunk as the decoded JSON object:
    building its typed chunk object costs ~100 us of CPU per chunk, most of what a streamed
    answer costs, for three fields read here.
    """
    text: list[str] = []
    finished = False
    with translated_errors(provider):
        try:
            async with client.chat.completions.with_streaming_response.create(
                **params, timeout=call_timeout or request.timeout
            ) as response:
                stream = await response.parse(to=openai.AsyncStream[object])
                async for chunk in stream:
                    content, done = _read_chunk(chunk, request, provider)
                    finished = finished or done
                    for piece in content:
                        text.append(piece)
                        yield piece
        except openai.APIConnectionError as exc:
            if not text or isinstance(exc, openai.APITimeoutError):
                raise
            raise ProviderUnavailable(
                f"{provider}: the stream was cut off mid-answer (stream cut)."
            ) from None
    if not finished:
        raise ProviderUnavailable(f"{provider}: the stream ended before the answer (stream cut).")
    if not request.usage.output_tokens and text:
        request.usage.input_tokens = estimate_tokens(_prompt_text(params))
        request.usage.output_tokens = estimate_tokens("".join(text))


def _read_chunk(chunk: Any, request: GenerationRequest, provider: str) -> tuple[list[str], bool]:
    """One decoded ``chat.completion.chunk``: its text deltas, and whether it ends the answer
    (a finish reason or the usage report). Updates ``request.usage`` from a usage report."""
    if not isinstance(chunk, dict):
        raise ProviderBadResponse(f"{provider} sent a malformed response.")
    finished = False
    usage = chunk.get("usage")
    if usage is not None:
        # Some compatible servers send nulls in here.
        if not isinstance(usage, dict):
            raise ProviderBadResponse(f"{provider} sent a malformed response.")
        request.usage.input_tokens = _count(usage.get("prompt_tokens"), provider)
        request.usage.output_tokens = _count(usage.get("completion_tokens"), provider)
        finished = True
    texts: list[str] = []
    choices = chunk.get("choices") or []
    if not isinstance(choices, list):
        raise ProviderBadResponse(f"{provider} sent a malformed response.")
    for choice in choices:
        if not isinstance(choice, dict):
            raise ProviderBadResponse(f"{provider} sent a malformed response.")
        if choice.get("finish_reason") is not None:
            finished = True
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if content:
            if not isinstance(content, str):
                raise ProviderBadResponse(f"{provider} sent a malformed response.")
            texts.append(content)
    return texts, finished


def _count(value: Any, provider: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderBadResponse(f"{provider} sent a malformed usage report.")
    return max(0, int(value))


def _prompt_text(params: dict[str, Any]) -> str:
    """Every text of the request's messages, for estimating input tokens."""
    texts: list[str] = []
    for message in params["messages"]:
        content = message["content"]
        if isinstance(content, str):
            texts.append(content)
        else:
            texts.extend(part["text"] for part in content if part.get("type") == "text")
    return "\n".join(texts)
