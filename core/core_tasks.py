"""Background jobs of the core itself."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import delete, or_

from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.models import AuthSession
from multinotes.plugin_host import TaskDef


async def purge_sessions(app: web.Application) -> int:
    """Delete sessions that expired or were revoked more than a day ago."""
    cutoff = utcnow() - timedelta(days=1)
    async with app[DB].transaction() as session:
        result = await session.execute(
            delete(AuthSession).where(
                or_(AuthSession.expires_at < cutoff, AuthSession.revoked_at < cutoff)
            )
        )
    return int(result.rowcount or 0)


def core_tasks() -> list[TaskDef]:
    return [TaskDef("core", "core.purge_sessions", purge_sessions, "17 3 * * *")]
