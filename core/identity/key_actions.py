"""What a person does to their own API keys, together with its audit record.

The JSON API (``api/keys.py``) and the account page (``web/pages.py``) both call these, so the
audit trail of a key is written in one place and neither side can forget it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from aiohttp import web

from multinotes import audit
from multinotes.identity import service as identity
from multinotes.identity.models import ApiKey
from multinotes.keys import DB


async def create_key(
    request: web.Request,
    user_id: str,
    name: str,
    *,
    scopes: Iterable[str] | None,
    expires_at: datetime | None,
) -> tuple[ApiKey, str]:
    """A new key (the record, and the key itself, which is shown once)."""
    record, key = await identity.create_api_key(
        request.app[DB], user_id, name, scopes=scopes, expires_at=expires_at
    )
    await audit.record(
        request.app,
        request,
        "api_key.created",
        target_type="api_key",
        target_id=record.id,
        details={"name": record.name},
    )
    return record, key


async def narrow_key(
    request: web.Request, user_id: str, key_id: str, scopes: Iterable[str]
) -> ApiKey:
    """Take scopes away from a key (adding one is refused: make a new key)."""
    record = await identity.narrow_api_key(request.app[DB], user_id, key_id, scopes)
    await audit.record(
        request.app,
        request,
        "api_key.narrowed",
        target_type="api_key",
        target_id=record.id,
        details={"scopes": record.scopes},
    )
    return record


async def revoke_key(request: web.Request, user_id: str, key_id: str) -> None:
    """Revoke a key; it stops working at once."""
    await identity.revoke_api_key(request.app[DB], user_id, key_id)
    await audit.record(
        request.app, request, "api_key.revoked", target_type="api_key", target_id=key_id
    )
