"""The official ``razorpay`` SDK, built per call and run off the event loop.

The SDK is synchronous (``requests``), so every call runs in a worker thread. Its session is
``outgoing.requests_session()``: the operator's address policy applies to it, redirects are not
followed and a call cannot hang forever. Retries are left off (the SDK's own would sleep in the
thread; core and the buyer retry instead). Its errors become the contract's: a refused key is
``NeedsKey``, a refused request ``ProviderBadResponse``, anything else ``ProviderUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from multinotes.plugin import NeedsKey, ProviderBadResponse, ProviderUnavailable, outgoing
from multinotes.plugins.billing.razorpay.settings import DEFAULT_API_BASE, secret

if TYPE_CHECKING:  # the SDK is imported where used, on first use (a few MB idle)
    import razorpay

T = TypeVar("T")


def build(config: Any) -> razorpay.Client:
    import razorpay

    key_id = getattr(config, "key_id", None)
    key_secret = secret(config, "key_secret")
    if not key_id or not key_secret:
        raise NeedsKey(
            "Razorpay is not configured: set its key id and key secret in the Plugins console."
        )
    base = str(getattr(config, "api_base", "") or DEFAULT_API_BASE).rstrip("/")
    client = razorpay.Client(
        session=outgoing.requests_session(timeout=30.0), auth=(key_id, key_secret), base_url=base
    )
    client.set_app_details({"title": "MultinotesAI"})
    return client


async def call(config: Any, what: str, action: Callable[[razorpay.Client], T]) -> T:
    """``action(client)`` in a thread, with the SDK's errors translated; ``what`` names the
    request in messages ("the order", "the refund")."""
    import requests
    from razorpay.errors import BadRequestError, GatewayError, ServerError

    client = build(config)

    def run() -> T:
        try:
            return action(client)
        finally:
            client.session.close()

    try:
        return await asyncio.to_thread(run)
    except BadRequestError as exc:
        message = str(exc) or "bad request"
        if "authentication" in message.lower():
            raise NeedsKey(f"Razorpay refused the key: {message}") from None
        raise ProviderBadResponse(f"Razorpay refused {what}: {message}") from None
    except (GatewayError, ServerError, requests.RequestException) as exc:
        if refused := outgoing.refusal_in(exc):
            raise refused from None
        raise ProviderUnavailable(f"Razorpay could not be reached for {what}: {exc}") from None
    except ValueError as exc:  # not JSON: a redirect (not followed) or a proxy's error page
        raise ProviderBadResponse(f"Razorpay answered {what} with something else: {exc}") from None
