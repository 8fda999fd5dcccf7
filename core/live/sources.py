"""What goes on the live channel: a wallet's new balance, a new notification, a share made to
or taken from someone (their "Shared with me" list reads itself again), and a re-check of
everyone's presence when access may have shrunk (a share revoked, changed or expiring sooner; a
note or folder moved or trashed; an object deleted).

All are noticed inside the transaction that made them and sent only after it committed
(``Database.on_commit``), so a rolled-back charge or share shows nothing. The wallet marks the
users whose wallet it changed (``wallet.service.CHANGED``); a notification is noticed as a new
row when the session flushes, whoever wrote it (sharing, mentions, low balance, a plugin).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from multinotes.chat.models import Conversation
from multinotes.db import Database
from multinotes.identity.models import User
from multinotes.live.hub import Hub
from multinotes.live.presence import Presence
from multinotes.notes.models import Document, Folder
from multinotes.sharing import notifications
from multinotes.sharing.models import Notification, Share
from multinotes.wallet import service as wallet

log = structlog.get_logger(__name__)

#: ``session.info`` key: the notifications the transaction added.
NEW_NOTIFICATIONS = "live_new_notifications"
#: ``session.info`` key: the transaction may have taken someone's access to something away.
ACCESS_SHRANK = "live_access_shrank"
#: Changes of these columns can take access away (a share's end; where a note or folder is).
NARROWING = {
    Share: ("revoked_at", "expires_at", "role"),
    Document: ("deleted_at", "folder_id", "user_id"),
    Folder: ("deleted_at", "parent_id", "user_id"),
}

#: ``session.info`` key: person-to-person shares the transaction made or ended, with the change.
SHARES_CHANGED = "live_shares_changed"

WALLET_CHANGED = "wallet.changed"
#: The name of the task that sends a hold's new balance.
HELD_TASK = "live.wallet_held"
NOTIFICATION_CREATED = "notification.created"
SHARED_CHANGED = "shared.changed"


def _on_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    added = [row for row in session.new if isinstance(row, Notification)]
    if added:
        session.info.setdefault(NEW_NOTIFICATIONS, []).extend(added)
    if not session.info.get(ACCESS_SHRANK) and _narrows(session):
        session.info[ACCESS_SHRANK] = True
    shares = [(row, "added") for row in session.new if _personal(row)]
    for row in session.dirty:
        if _personal(row):
            state = inspect(row)
            if state.attrs["revoked_at"].history.has_changes() and row.revoked_at is not None:
                shares.append((row, "removed"))
            elif any(state.attrs[n].history.has_changes() for n in ("role", "expires_at")):
                shares.append((row, "changed"))
    if shares:
        session.info.setdefault(SHARES_CHANGED, []).extend(shares)


def _personal(row: Any) -> bool:
    return isinstance(row, Share) and row.token_hash is None


def _narrows(session: Session) -> bool:
    if any(isinstance(row, (Share, Document, Folder, Conversation)) for row in session.deleted):
        return True
    for row in session.dirty:
        columns = NARROWING.get(type(row))
        if columns is None:
            continue
        state = inspect(row)
        if any(state.attrs[name].history.has_changes() for name in columns):
            return True
    return False


def _on_execute(state: ORMExecuteState) -> None:
    # Bulk UPDATE/DELETE (trashing a folder with its notes, deleting an account) skip the flush.
    if (state.is_update or state.is_delete) and not state.session.info.get(ACCESS_SHRANK):
        mapper = state.bind_mapper
        if mapper is not None and mapper.class_ in (Share, Document, Folder, Conversation):
            state.session.info[ACCESS_SHRANK] = True


def install(db: Database, hub: Hub, presence: Presence | None = None) -> None:
    """Watch ``db``'s transactions and publish what changed once each commits."""
    event.listen(db.session_class, "before_flush", _on_flush)
    event.listen(db.session_class, "do_orm_execute", _on_execute)
    # A hold's new balance (``wallet.HELD``) is read and sent after the committing code went
    # on: the hold before an answer must not wait for that read to call the provider (issue
    # #17). One at a time, in commit order (the lock is fair), each reading the balance as it
    # is then. Other wallet changes are sent before the committing code goes on, as before.
    in_order = asyncio.Lock()
    sending: set[asyncio.Task[None]] = set()

    async def send_balances(users: list[str]) -> None:
        async with in_order:
            try:
                for user_id in users:
                    await hub.publish(user_id, WALLET_CHANGED, await wallet.summary(db, user_id))
            except Exception:  # a live update is a nicety
                log.exception("live_source_failed")

    async def committed(info: dict[str, Any]) -> None:
        users: set[str] = info.get(wallet.CHANGED) or set()
        held: set[str] = (info.get(wallet.HELD) or set()) - users
        added: list[Notification] = info.get(NEW_NOTIFICATIONS) or []
        shares: list[tuple[Share, str]] = info.get(SHARES_CHANGED) or []
        if presence is not None and info.get(ACCESS_SHRANK):
            await presence.recheck_all()
        if held:
            task = asyncio.create_task(send_balances(sorted(held)), name=HELD_TASK)
            sending.add(task)
            task.add_done_callback(sending.discard)
        if users:
            await send_balances(sorted(users))
        if not added and not shares:
            return
        try:
            for row in added:
                await hub.publish(row.user_id, NOTIFICATION_CREATED, await notification(db, row))
            for share, change in shares:
                recipient = await recipient_of(db, share)
                if recipient is not None:
                    await hub.publish(recipient, SHARED_CHANGED, shared_change(share, change))
        except Exception:  # a live update is a nicety: never fail the committed work for it
            log.exception("live_source_failed")

    db.on_commit.append(committed)


async def recipient_of(db: Database, share: Share) -> str | None:
    """The account a person-to-person share reaches: its recipient, or the account holding its
    address once that address is verified (as ``sharing.access.granted_to``)."""
    if share.recipient_id is not None:
        return share.recipient_id
    if share.recipient_email is None:
        return None
    async with db.read() as session:
        found = await session.scalar(
            select(User.id).where(
                User.email == share.recipient_email, User.email_verified_at.is_not(None)
            )
        )
    return str(found) if found is not None else None


def shared_change(share: Share, change: str) -> dict[str, Any]:
    """What "Shared with me" needs to know to read its list again: which object, and whether it
    was shared with them (``added``), changed (``changed``: role or expiry) or stopped
    (``removed``). Nothing the recipient could not read already."""
    return {"object_type": share.object_type, "object_id": share.object_id, "change": change}


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
