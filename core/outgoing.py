"""The policy of every outgoing HTTP request (providers' SDK clients, sign-in providers, S3):
redirects are never followed.

A redirect names a new target the server chose, not the operator: an upstream (or anyone who
can answer in its place) could send a request that carries a provider key, a signed S3 request
or an OAuth code to another port, host or an internal address. Following one would need the
target checked like the original; refusing them all is simpler and stricter, and no API we call
needs one. A refused redirect surfaces as the 3xx answer itself, which each caller reports as a
clear error (``redirect_error`` for providers).

Build clients only with these arguments:
"""

from __future__ import annotations

from typing import Any, Final

from multinotes.errors import ProviderError

#: For httpx-based clients (``openai.DefaultAsyncHttpxClient``, ``together``'s, ``httpx``).
HTTPX_CLIENT_ARGS: Final[dict[str, Any]] = {"follow_redirects": False}
#: For each aiohttp request (``session.request(..., **AIOHTTP_REQUEST_ARGS)``), and for
#: google-genai's ``HttpOptions.async_client_args`` (passed to aiohttp per request).
AIOHTTP_REQUEST_ARGS: Final[dict[str, Any]] = {"allow_redirects": False}


def is_redirect(status: int | None) -> bool:
    return status is not None and 300 <= status < 400


def redirect_error(provider: str, status: int) -> ProviderError:
    """The error for a provider that answered with a redirect (which was not followed)."""
    return ProviderError(
        f"{provider} answered with a redirect (HTTP {status}), which is not followed. "
        "Check the provider's base URL in the Plugins console.",
        code="provider_redirect",
    )
