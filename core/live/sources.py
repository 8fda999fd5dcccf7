"""What goes on the live channel: a wallet's new balance, a new notification.

Both are noticed inside the transaction that made them and sent only after it committed
(``Database.on_commit``), so a rolled-back charge or share shows nothing. The wallet marks the
users whose wallet it changed (``wallet.service.CHANGED``); a notification is noticed as a new
row when the session flushes, whoever wrote it (sharing, mentions, low balance, a plugin).
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

from multinotes.db import Database
from multinotes.live.hub import Hub
from multinotes.sharing import notifications
from multinotes.sharing.models import Notification
from multinotes.wallet import service as wallet

log = structlog.get_logger(__name__)

#: ``session.info`` key: the notifications the transaction added.
NEW_NOTIFICATIONS = "live_new_notifications"

WALLET_CHANGED = "wallet.changed"
NOTIFICATION_CREATED = "notification.created"


def _on_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    added = [row for row in session.new if isinstance(row, Notification)]
    if added:
        session.info.setdefault(NEW_NOTIFICATIONS, []).extend(added)


def install(db: Database, hub: Hub) -> None:
    """Watch ``db``'s transactions and publish what changed once each commits."""
    event.listen(db.session_class, "before_flush", _on_flush)

    async def committed(info: dict[str, Any]) -> None:
        users: set[str] = info.get(wallet.CHANGED) or set()
        added: list[Notification] = info.get(NEW_NOTIFICATIONS) or []
        if not users and not added:
            return
        try:
            for user_id in sorted(users):
                await hub.publish(user_id, WALLET_CHANGED, await wallet.summary(db, user_id))
            for row in added:
                await hub.publish(row.user_id, NOTIFICATION_CREATED, await notification(db, row))
        except Exception:  # a live update is a nicety: never fail the committed work for it
            log.exception("live_source_failed")

    db.on_commit.append(committed)


async def notification(db: Database, row: Notification) -> dict[str, Any]:
    """A notification as the bell and its toast show it: only what its owner reads on
    ``/notifications`` anyway, and the unread count after it."""
    return {
        "id": row.id,
        "kind": row.kind,
        "title": row.title,
        "excerpt": row.excerpt,
        "url": row.url,
        "unread": await notifications.unread_count(db, row.user_id),
    }
