"""Background jobs of the core itself."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from sqlalchemy import delete, or_

from multinotes.db import rows_affected, utcnow
from multinotes.keys import DB
from multinotes.models import AuthSession, UserToken
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
    return rows_affected(result)


async def purge_user_tokens(app: web.Application) -> int:
    """Delete mailed links (verification, reset) a day after they expired or were used."""
    cutoff = utcnow() - timedelta(days=1)
    async with app[DB].transaction() as session:
        result = await session.execute(
            delete(UserToken).where(or_(UserToken.expires_at < cutoff, UserToken.used_at < cutoff))
        )
    return rows_affected(result)


def core_tasks() -> list[TaskDef]:
    from multinotes.analytics.rollup import analytics_tasks
    from multinotes.assist.notes import assist_tasks
    from multinotes.batches.runner import batch_tasks
    from multinotes.billing.tasks import billing_tasks
    from multinotes.chains.runner import chain_tasks
    from multinotes.chat.pipeline import settle_stale_generations
    from multinotes.events import DISPATCH_TASK, dispatch_event
    from multinotes.identity.account_mail import account_mail_tasks
    from multinotes.identity.profile import profile_tasks
    from multinotes.mail import mail_tasks
    from multinotes.note_exports.service import note_export_tasks
    from multinotes.notes.tasks import notes_tasks
    from multinotes.organisations.service import organisation_tasks
    from multinotes.privacy.deletion import deletion_tasks
    from multinotes.privacy.exports import export_tasks
    from multinotes.schedules.runner import schedule_tasks
    from multinotes.search.tasks import search_tasks
    from multinotes.sharing.tasks import sharing_tasks

    return [
        TaskDef("core", "core.purge_sessions", purge_sessions, "17 3 * * *"),
        TaskDef("core", "core.purge_user_tokens", purge_user_tokens, "27 3 * * *"),
        *mail_tasks(),
        *account_mail_tasks(),
        *profile_tasks(),
        TaskDef("core", "core.settle_stale_generations", settle_stale_generations, "* * * * *"),
        TaskDef("core", DISPATCH_TASK, dispatch_event, None),
        *export_tasks(),
        *note_export_tasks(),
        *deletion_tasks(),
        *notes_tasks(),
        *assist_tasks(),
        *sharing_tasks(),
        *search_tasks(),
        *billing_tasks(),
        *organisation_tasks(),
        *batch_tasks(),
        *chain_tasks(),
        *schedule_tasks(),
        *analytics_tasks(),
    ]
