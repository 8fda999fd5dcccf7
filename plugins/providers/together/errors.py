"""One place that turns what the ``together`` SDK raises into the ``ProviderError`` family.

The core decides about retries, backoff and the circuit breaker from the error type alone. The
SDK wraps failures before the response in its own classes, but errors while a stream is being
read surface as raw httpx exceptions or ``json.JSONDecodeError``, so both kinds are mapped.
"""

from __future__ import annotations

import binascii
import json
from typing import TYPE_CHECKING

import httpx
import pydantic

from multinotes.plugin import (
    ContentFiltered,
    NeedsKey,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    outgoing,
    parse_retry_after,
)

if TYPE_CHECKING:  # imported where it is used: the plugin loads without it (chat.warm)
    import together

CONSOLE_HINT = "An admin can set it in the Plugins console (Together AI → API key)."
#: What a moderation refusal says in an error's ``code`` or ``type``, or a choice's
#: ``finish_reason``. Together documents none of its own; its OpenAI-compatible API uses
#: OpenAI's (as the OpenAI-speaking providers read them, ``multinotes.openai_wire``).
FILTER_CODES = frozenset({"content_filter", "content_policy_violation"})


def api_key(key: str | None) -> str:
    """The key the core passed in, or ``NeedsKey`` before anything goes over the network."""
    if not key:
        raise NeedsKey(f"Together AI needs an API key. {CONSOLE_HINT}")
    return key


def _filtered(exc: together.APIError) -> bool:
    """Does the error's body name a moderation refusal (``code`` or ``type``)?"""
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        return False
    return any(inner.get(field) in FILTER_CODES for field in ("code", "type"))


def _message(exc: together.APIError) -> str:
    """Together's own wording (``{"error": {"message": ...}}``), not the SDK's dict dump."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        found = inner.get("message") if isinstance(inner, dict) else inner
        if isinstance(found, str) and found.strip():
            text = " ".join(found.split())
            return text if len(text) <= 300 else text[:299] + "…"
    return "no details"


def map_error(exc: BaseException, *, timeout: float) -> ProviderError | None:
    """The ``ProviderError`` for ``exc``, or ``None`` when it is not a provider failure (a bug,
    which the caller re-raises so the core reports it against the plugin)."""
    import together

    if isinstance(exc, ProviderError):
        return exc
    refused = outgoing.refusal_in(exc)
    if refused is not None:
        return refused
    if isinstance(exc, together.AuthenticationError | together.PermissionDeniedError):
        return NeedsKey(f"Together AI rejected the API key ({exc.status_code}). {CONSOLE_HINT}")
    if isinstance(exc, together.RateLimitError):
        return ProviderRateLimited(
            "Together AI is rate limiting requests. Try again shortly.",
            retry_after=parse_retry_after(exc.response.headers.get("Retry-After")),
        )
    if isinstance(exc, together.InternalServerError):
        return ProviderUnavailable(f"Together AI is unavailable right now ({exc.status_code}).")
    if isinstance(exc, together.APIStatusError):
        if outgoing.is_redirect(exc.status_code):
            return outgoing.redirect_error("Together AI", exc.status_code)
        if _filtered(exc):
            # Not retried: the same prompt would be refused again.
            return ContentFiltered(
                f"Together AI's content filter refused this prompt: {_message(exc)}"
            )
        return ProviderError(
            f"Together AI refused the request ({exc.status_code}): {_message(exc)}"
        )
    if isinstance(exc, together.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return ProviderUnavailable(f"Together AI did not answer within {timeout:g} s.")
    if isinstance(exc, together.APIConnectionError | httpx.TransportError | ConnectionError):
        # httpx.RemoteProtocolError / ReadError: the connection dropped in the middle of a stream.
        return ProviderUnavailable("The connection to Together AI failed or dropped mid-answer.")
    if isinstance(exc, together.APIResponseValidationError):
        return ProviderBadResponse("Together AI sent data that is not in its documented format.")
    if isinstance(exc, together.APIError):
        # An ``{"error": ...}`` event after the stream had started: the server gave up mid-answer.
        return ProviderUnavailable(f"Together AI failed mid-answer: {_message(exc)}")
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError | binascii.Error):
        return ProviderBadResponse("Together AI sent data that is not in its documented format.")
    return None
