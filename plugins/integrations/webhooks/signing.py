"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec v1).

A secret is ``whsec_`` + base64 of 24 random bytes; the signature of a message is
``v1,`` + base64(HMAC-SHA256(key = the secret's decoded bytes, "{id}.{timestamp}.{body}")), and
``webhook-signature`` carries one per secret, space-separated (two while a rotated secret's grace
period runs), so a receiver with either secret verifies it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One ``v1,<base64>`` signature of ``body`` sent as message ``msg_id`` at ``timestamp``."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secrets_: list[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers of a delivery, signed with every secret in ``secrets_``."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in secrets_),
    }
