"""Signed file links: a public, expiring address for one of a user's files, for a service that
cannot sign in (Notion fetches the images of an exported page from such a link).

``/files/signed/<id>?exp=<unix time>&sig=<hex>``: ``sig`` is HMAC-SHA256, under a key derived
from the instance's master key, of the file id and the expiry. Whoever holds the link may read
that one file until it expires; changing the id or the expiry breaks the signature. A link
signed with an old master key (``old_secret_keys``) is still accepted until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from aiohttp import web

from multinotes.keys import SETTINGS
from multinotes.links import base_url

#: How long an exported page's image links work unless the caller says otherwise: 30 days.
DEFAULT_TTL = 30 * 24 * 3600
#: The longest a link may live: a year.
MAX_TTL = 365 * 24 * 3600


def signature(master_key: str, file_id: str, expires: int) -> str:
    key = hashlib.sha256(b"multinotes-signed-file:" + master_key.encode()).digest()
    return hmac.new(key, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def signed_path(master_key: str, file_id: str, expires: int) -> str:
    sig = signature(master_key, file_id, expires)
    return f"/files/signed/{file_id}?exp={expires}&sig={sig}"


def valid(master_keys: list[str], file_id: str, expires: int, sig: str, now: float) -> bool:
    """Whether ``sig`` signs ``file_id`` until ``expires`` and that time has not passed."""
    if expires <= now:
        return False
    return any(hmac.compare_digest(signature(k, file_id, expires), sig) for k in master_keys)


def signed_file_url(app: web.Application, file_id: str, ttl: int = DEFAULT_TTL) -> str:
    """An absolute link to ``file_id``'s bytes that works without signing in for ``ttl``
    seconds (1 second to a year)."""
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL} seconds")
    expires = int(time.time()) + ttl
    return base_url(app) + signed_path(app[SETTINGS].master_keys()[0], file_id, expires)
