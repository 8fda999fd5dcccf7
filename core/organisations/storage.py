"""An organisation's storage: the files its members uploaded in its space count against its
quota (``multinotes.files.quota`` checks it at upload), which an instance administrator sets;
members see how much is used."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import update

from multinotes.errors import NotFound
from multinotes.files.quota import organisation_quota_in, organisation_used_in
from multinotes.keys import DB
from multinotes.organisations.models import Organisation


async def summary(app: web.Application, organisation_id: str) -> dict[str, int]:
    """``{"used", "quota", "available"}`` in bytes."""
    async with app[DB].read() as session:
        quota = await organisation_quota_in(session, app, organisation_id)
        used = await organisation_used_in(session, organisation_id)
    return {"used": used, "quota": quota, "available": max(0, quota - used)}


async def set_quota(app: web.Application, organisation_id: str, quota: int | None) -> None:
    """Set the organisation's quota in bytes (None: back to the install's default). A quota
    below what is stored refuses new uploads; nothing stored is removed."""
    async with app[DB].transaction() as session:
        if await session.get(Organisation, organisation_id) is None:
            raise NotFound("No such organisation.")
        await session.execute(
            update(Organisation)
            .where(Organisation.id == organisation_id)
            .values(storage_quota_bytes=quota)
        )
