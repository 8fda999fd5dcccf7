"""Slack's request signing: ``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{timestamp}:{body}">``
under the app's signing secret, with ``X-Slack-Request-Timestamp`` within five minutes of now.
Checked with slack-sdk's own ``SignatureVerifier`` on the raw body, before anything is parsed."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def verify(
    signing_secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: Callable[[], float] = time.time,
) -> bool:
    """Whether ``body`` was signed by Slack with ``signing_secret`` less than five minutes ago."""
    if not signing_secret:
        return False
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not timestamp.isdigit() or not signature:
        return False
    # slack-sdk on first use: a process that never hears from Slack does not load it.
    from slack_sdk.signature import Clock, SignatureVerifier

    class _Clock(Clock):
        def now(self) -> float:
            return now()

    verifier = SignatureVerifier(signing_secret, clock=_Clock())
    return bool(verifier.is_valid(body=body, timestamp=timestamp, signature=signature))


def sign(signing_secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Slack-Signature`` Slack sends with ``body`` (for tests and the fake)."""
    from slack_sdk.signature import SignatureVerifier

    signature = SignatureVerifier(signing_secret).generate_signature(
        timestamp=str(timestamp), body=body
    )
    assert signature is not None
    return signature
