"""Discord's interaction signing: ``X-Signature-Ed25519`` is the hex Ed25519 signature of
``X-Signature-Timestamp`` followed by the raw body, under the application's private key;
checked against its public key (hex, from the Developer Portal) with ``cryptography``. A
timestamp more than five minutes from now is refused too, so a captured request cannot be
replayed later."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_AGE_SECONDS = 5 * 60


def verify(
    public_key: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: Callable[[], float] = time.time,
) -> bool:
    """Whether ``body`` was signed by the application's key less than five minutes ago."""
    timestamp = headers.get("X-Signature-Timestamp", "")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key))
        signature = bytes.fromhex(headers.get("X-Signature-Ed25519", ""))
        if not timestamp.isdigit() or abs(now() - int(timestamp)) > MAX_AGE_SECONDS:
            return False
        key.verify(signature, timestamp.encode() + body)
    except (ValueError, InvalidSignature):
        return False
    return True
