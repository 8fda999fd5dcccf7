"""The OpenAI wire protocol, shared by every provider plugin whose server speaks it.

OpenAI itself, OpenAI-compatible servers (Ollama, vLLM, LM Studio, OpenRouter) and Together all
answer the same Chat Completions API. Plugins import only from ``multinotes``, so the code they
share lives here: build the client, turn a ``GenerationRequest`` into request parameters, stream
the answer while filling ``request.usage``, and map the SDK's exceptions onto the
``ProviderError`` family in exactly one place.

The SDK never retries (``max_retries=0``): the core owns retries, backoff and circuit breaking.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import importlib
import ipaddress
import json
import math
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pydantic
import yarl

from multinotes import outgoing
from multinotes.errors import (
    ContentFiltered,
    NeedsKey,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.providers import ChatMessage, ClientCache, GenerationRequest, parse_retry_after

if TYPE_CHECKING:
    import openai

# The SDK (~14 MB) is imported by the functions that use it, not with this module: every plugin
# imports ``multinotes.plugin``, which exports this module, and a process whose OpenAI-speaking
# providers are all switched off should not carry it. ``warm()`` imports it ahead of the first
# call for the providers that are switched on.


def warm() -> None:
    """Import the OpenAI SDK now (the core calls a provider's ``warm`` when it is switched on,
    so the first answer does not pay for the import)."""
    import openai  # noqa: F401


#: Longest provider message passed on to a user; the rest is noise (ids, docs links).
MESSAGE_LIMIT = 300
#: Error codes of a prompt refused by moderation: Azure OpenAI's and OpenAI's.
FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (it only holds the system's CA certificates)."""
    return ssl.create_default_context()


async def sdk_ready() -> None:
    """Import the openai SDK in a thread, once, before a call that needs it (images, speech,
    transcription). Its first import takes ~0.3 s, seconds on a busy machine: on the event
    loop it would stall every request of the process. Chat never needs it."""
    if "openai" not in sys.modules:
        await asyncio.to_thread(importlib.import_module, "openai")


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
    import openai

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
    await sdk_ready()
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
    return _short(exc.body, exc.message)


def _short(body: object, fallback: str) -> str:
    """The ``message`` of an error object, else ``fallback``, on one line and shortened."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str) or not message:
        message = fallback
    message = " ".join(message.split())
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "…"


def provider_error(exc: BaseException, provider: str) -> ProviderError:
    """Translate an SDK (or decoding) exception into the matching ``ProviderError``.

    :param provider: the provider's display name; every message names it.
    """
    import openai

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
        if exc.code in FILTER_CODES:
            return ContentFiltered(f"{provider}'s content filter refused the prompt.")
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
    import openai

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
    import openai

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
        if choice.get("finish_reason") == "content_filter":
            # The answer was cut off by the provider's moderation: a refusal, not an answer.
            raise ContentFiltered(f"{provider}'s content filter stopped this answer.")
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


# -- the wire without the SDK -------------------------------------------------------------------
# A plugin may read the stream itself (issue #17): the SDK's transport and event decoder cost
# ~55-70 us of CPU per chunk on top of this reader, more than the rest of the pipeline's work
# per chunk (bench/README.md, tenth round). What follows speaks the same protocol through an
# aiohttp session of ``outgoing.client_session`` (the address guard on every connection, no
# redirect followed) and raises exactly the errors ``provider_error`` makes of the SDK's.

#: Connections one shared session keeps open at most (the SDK's httpx default is 1,000): every
#: streaming answer holds one.
HTTP_CONNECTIONS = 1000
#: Bytes of an error response read for its message.
ERROR_BODY_LIMIT = 64 * 1024


def new_http_session() -> aiohttp.ClientSession:
    """A guarded aiohttp session for OpenAI-wire calls (the caller's to close; prefer
    ``http_session``). Timeouts are per call."""
    return outgoing.client_session(
        connector=outgoing.connector(limit=HTTP_CONNECTIONS, ssl=tls_context()),
        timeout=aiohttp.ClientTimeout(total=None),
    )


@contextlib.asynccontextmanager
async def http_session(clients: ClientCache | None) -> AsyncIterator[aiohttp.ClientSession]:
    """The app's one long-lived session for OpenAI-wire servers (its connections are reused by
    the next call; the key travels per request), or, without ``clients``, a session for this
    call alone."""
    if clients is None:
        async with new_http_session() as own:
            yield own
        return
    yield clients.get(("openai_wire.http",), new_http_session)


def _call_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """What the SDK's ``timeout=seconds`` means: for connecting, and between two reads."""
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)


@functools.lru_cache(maxsize=256)
def _endpoint(base_url: str, path: str) -> str:
    """``path`` under ``base_url``. An IPv4 address written in a short, decimal, octal or hex
    form (``0177.1``, ``2130706433``) is written out as the address it names, as the system's
    resolver reads it for the SDK's client (aiohttp refuses such a URL); the address guard then
    checks that address."""
    url = yarl.URL(f"{base_url.rstrip('/')}/{path}")
    host = url.raw_host or ""
    if host and not host.startswith("[") and ":" not in host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            with contextlib.suppress(OSError):
                url = url.with_host(socket.inet_ntoa(socket.inet_aton(host)))
    return str(url)


async def _status_error(response: aiohttp.ClientResponse, provider: str) -> ProviderError:
    """The ``ProviderError`` for a non-2xx answer, as ``provider_error`` maps the SDK's."""
    status = response.status
    if outgoing.is_redirect(status):
        return outgoing.redirect_error(provider, status)
    raw = await response.content.read(ERROR_BODY_LIMIT)
    body: Any
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error = body.get("error", body) if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    message = _short(error, f"Error code: {status}")
    if status in (401, 403):
        return NeedsKey(
            f"{provider} rejected the API key ({message}). "
            "An admin can set a valid key in the Plugins console."
        )
    if status == 429:
        if code == "insufficient_quota":  # billing, not load: waiting will not help
            return ProviderError(f"{provider}: {message}")
        return ProviderRateLimited(
            f"{provider} is rate limiting requests. Try again shortly.",
            retry_after=retry_after_seconds(response.headers),
        )
    if status >= 500:
        return ProviderUnavailable(f"{provider} is unavailable right now (HTTP {status}).")
    if code in FILTER_CODES:
        return ContentFiltered(f"{provider}'s content filter refused the prompt.")
    return ProviderError(f"{provider}: {message}")


def _transport_error(exc: BaseException, provider: str, mid_answer: bool) -> ProviderError:
    """A failure of the connection (no HTTP answer, or the answer broke off), as the SDK's."""
    refused = outgoing.refusal_in(exc)
    if refused is not None:
        return refused
    if isinstance(exc, TimeoutError):
        return ProviderUnavailable(f"{provider} did not answer in time.")
    if mid_answer:
        return ProviderUnavailable(f"{provider}: the stream was cut off mid-answer (stream cut).")
    return ProviderUnavailable(f"Could not reach {provider}.")


def _headers(api_key: str, organization: str | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {api_key}"}
    if organization:  # as the SDK's ``organization=`` (nothing is read from the environment)
        headers["OpenAI-Organization"] = organization
    return headers


async def model_ids_http(
    session: aiohttp.ClientSession,
    base_url: str,
    api_key: str,
    provider: str,
    seconds: float,
    *,
    organization: str | None = None,
) -> list[str]:
    """The ids ``GET /models`` lists, sorted (``model_ids`` without the SDK); ``seconds`` as
    the SDK client's timeout, ``organization`` as its ``organization=``."""
    try:
        async with session.get(
            _endpoint(base_url, "models"),
            headers=_headers(api_key, organization),
            timeout=_call_timeout(seconds),
            **outgoing.AIOHTTP_REQUEST_ARGS,
        ) as response:
            if not 200 <= response.status < 300:
                raise (await _status_error(response, provider)) from None
            page = json.loads(await response.read())
    except ProviderError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _transport_error(exc, provider, mid_answer=False) from None
    except ValueError:
        raise ProviderBadResponse(f"{provider} sent a response that could not be read.") from None
    data = page.get("data") if isinstance(page, dict) else None
    if not isinstance(data, list) or not all(
        isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
    ):
        raise ProviderBadResponse(f"{provider} sent a response that could not be read.")
    return sorted(m["id"] for m in data)


async def stream_chat_http(
    session: aiohttp.ClientSession,
    base_url: str,
    api_key: str,
    params: dict[str, Any],
    request: GenerationRequest,
    provider: str,
    *,
    call_timeout: float | None = None,
    organization: str | None = None,
) -> AsyncIterator[str]:
    """``stream_chat`` without the SDK: the same request, text, usage and errors
    (``organization`` as the SDK client's ``organization=``).

    The event stream is read as SSE defines it (``data:`` lines of one event joined, ``\\r\\n``
    or ``\\r`` line ends, comments, ``id:`` and ``retry:`` ignored) up to ``[DONE]``. Per chunk
    this costs one ``json.loads`` and a few dict look-ups: no objects, no copies of the text.
    """
    seconds = call_timeout or request.timeout
    headers = _headers(api_key, organization)
    headers["Content-Type"] = "application/json"
    chars = 0  # of text yielded: the usage estimate when the server reports none
    finished = False
    try:
        async with session.post(
            _endpoint(base_url, "chat/completions"),
            data=json.dumps(params).encode(),
            headers=headers,
            timeout=_call_timeout(seconds),
            **outgoing.AIOHTTP_REQUEST_ARGS,
        ) as response:
            if not 200 <= response.status < 300:
                raise (await _status_error(response, provider)) from None
            tail = b""
            data: list[bytes] = []
            named = False  # the event being read has an ``event:`` line
            async for block in response.content.iter_any():
                if tail:
                    block = tail + block
                if b"\r" in block:
                    # A lone CR ends a line too; one at the very end may be half of a CRLF.
                    held = block.endswith(b"\r")
                    block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                    if held:
                        block = block[:-1] + b"\r"
                lines = block.split(b"\n")
                tail = lines.pop()
                for line in lines:
                    if line:
                        if line.startswith(b"data:"):
                            data.append(line[6:] if line[5:6] == b" " else line[5:])
                        elif line.startswith(b"event:"):
                            named = True
                        continue
                    if not data and not named:
                        continue  # a blank line between events
                    payload = data[0] if len(data) == 1 else b"\n".join(data)
                    data = []
                    named = False
                    if payload.startswith(b"[DONE]"):
                        break
                    chunk = json.loads(payload)
                    # The common chunk, one text delta, read in place; anything else (usage,
                    # a finish reason, an error, several choices) the general way.
                    if type(chunk) is dict and "error" not in chunk and chunk.get("usage") is None:
                        choices = chunk.get("choices")
                        if type(choices) is list and len(choices) == 1:
                            choice = choices[0]
                            if type(choice) is dict and choice.get("finish_reason") is None:
                                delta = choice.get("delta")
                                piece = delta.get("content") if type(delta) is dict else None
                                if type(piece) is str:
                                    if piece:
                                        chars += len(piece)
                                        yield piece
                                    continue
                                if piece is None:
                                    continue
                    if isinstance(chunk, dict) and chunk.get("error"):
                        error = chunk["error"]
                        fallback = "An error occurred during streaming"
                        raise ProviderUnavailable(
                            f"{provider} failed mid-answer: {_short(error, fallback)}"
                        )
                    texts, done = _read_chunk(chunk, request, provider)
                    finished = finished or done
                    for piece in texts:
                        chars += len(piece)
                        yield piece
                else:
                    continue
                break  # [DONE]
    except ProviderError:
        raise
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise _transport_error(exc, provider, mid_answer=chars > 0) from None
    except ValueError:  # JSON (or its UTF-8) that does not decode
        raise ProviderBadResponse(f"{provider} sent a malformed response.") from None
    if not finished:
        raise ProviderUnavailable(f"{provider}: the stream ended before the answer (stream cut).")
    if not request.usage.output_tokens and chars:
        request.usage.input_tokens = estimate_tokens(_prompt_text(params))
        request.usage.output_tokens = math.ceil(chars / 4)
