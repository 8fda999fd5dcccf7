"""One place that turns what google-genai raises into the ``ProviderError`` family.

The core decides about retries, backoff and the circuit breaker from the error type alone, so
every failure has to land in the right class: a bad key is ``NeedsKey`` (never retried), a 429 is
``ProviderRateLimited`` with Google's hint, 5xx/timeouts/dropped connections are
``ProviderUnavailable``, and data that is not Gemini's format is ``ProviderBadResponse``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
import pydantic

from multinotes.plugin import (
    NeedsKey,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    outgoing,
    parse_retry_after,
)

if TYPE_CHECKING:  # imported where it is used: the plugin loads without it (chat.warm)
    from google.genai import errors as genai_errors

CONSOLE_HINT = "An admin can set it in the Plugins console (Gemini → API key)."


def api_key(key: str | None) -> str:
    """The key the core passed in, or ``NeedsKey`` before anything goes over the network."""
    if not key:
        raise NeedsKey(f"Gemini needs an API key from Google AI Studio. {CONSOLE_HINT}")
    return key


def _error_payload(exc: genai_errors.APIError) -> dict[str, Any]:
    details = exc.details
    if isinstance(details, dict):
        inner = details.get("error", details)
        return inner if isinstance(inner, dict) else {}
    return {}


def _details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    found = _error_payload(exc).get("details")
    return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []


def _retry_after(exc: genai_errors.APIError) -> float | None:
    """The ``Retry-After`` header if present, else the ``google.rpc.RetryInfo`` delay ("12s")."""
    headers = getattr(exc.response, "headers", None)
    from_header = parse_retry_after(headers.get("Retry-After")) if headers is not None else None
    if from_header is not None:
        return from_header
    for detail in _details(exc):
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", "")).removesuffix("s")
            try:
                return max(0.0, float(delay))
            except ValueError:
                return None
    return None


def _is_bad_key(exc: genai_errors.APIError) -> bool:
    """Gemini answers a wrong key with 400 INVALID_ARGUMENT, not 401; the reason says why."""
    if exc.code != 400:
        return False
    reasons = {detail.get("reason") for detail in _details(exc)}
    return "API_KEY_INVALID" in reasons or "API key not valid" in (exc.message or "")


def _short(text: str | None, limit: int = 300) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def map_error(exc: BaseException, *, timeout: float) -> ProviderError | None:
    """The ``ProviderError`` for ``exc``, or ``None`` when it is not a provider failure (a bug,
    which the caller re-raises so the core reports it against the plugin)."""
    from google.genai import errors as genai_errors

    if isinstance(exc, ProviderError):
        return exc
    refused = outgoing.refusal_in(exc)
    if refused is not None:
        return refused
    if isinstance(exc, genai_errors.APIError):
        code = exc.code or 0
        if outgoing.is_redirect(code):
            return outgoing.redirect_error("Gemini", code)
        if code in (401, 403) or _is_bad_key(exc):
            return NeedsKey(f"Gemini rejected the API key ({code} {exc.status}). {CONSOLE_HINT}")
        if code == 429:
            return ProviderRateLimited(
                "Gemini is rate limiting requests (quota exhausted). Try again shortly.",
                retry_after=_retry_after(exc),
            )
        if code >= 500 or code == 408:
            return ProviderUnavailable(f"Gemini is unavailable right now ({code} {exc.status}).")
        return ProviderError(f"Gemini refused the request ({code}): {_short(exc.message)}")
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return ProviderUnavailable(f"Gemini did not answer within {timeout:g} s.")
    if isinstance(exc, aiohttp.ClientError | httpx.TransportError | ConnectionError):
        # Includes aiohttp.ClientPayloadError: the connection dropped in the middle of a stream.
        return ProviderUnavailable("The connection to Gemini failed or dropped mid-answer.")
    if isinstance(
        exc, genai_errors.UnknownApiResponseError | json.JSONDecodeError | pydantic.ValidationError
    ):
        return ProviderBadResponse("Gemini sent data that is not in its documented format.")
    return None
