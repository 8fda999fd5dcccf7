"""Account deletion: deactivated at once, deleted for good after a grace period.

``request_deletion`` (``DELETE /api/me``, with the password, or the typed email address for an
account without one) deactivates the account in the same transaction that schedules it: sessions
end, and API keys and streams stop on their next request because the user is inactive. A
background task mails a single-use cancel link (only its SHA-256 is stored, on the
``account_deletions`` row); opening it during ``account_deletion_grace_days`` re-activates the
account, API keys included (the person logs in again). A logged-in cancel is impossible by
design: nothing of a deactivated account works, not even logging in.

When the grace period is over, a scheduled task deletes the account for good: first what a
cascade cannot remove (``CONTENT_REMOVERS``: conversations one at a time, since message trees go
bottom-up, with their media files; avatar; exports), then the user row, which takes every other
row it owns with it (ON DELETE CASCADE). Ledger rows are not deleted: they move
to a tombstone user created for this one deletion (no email, no name, no password, inactive)
together with a wallet holding the same balance, so every wallet still equals the sum of its
ledger and totals across the install do not change. The audit log keeps its entries with the
account's id replaced by the tombstone's (and the account's own IPs and User-Agents erased);
the ``account_deletions`` row moves to the tombstone and says when the account went.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import cast

import structlog
from aiohttp import web
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes import audit
from multinotes.chat import service as chat
from multinotes.chat.models import Conversation
from multinotes.db import Database, new_id, rows_affected, utcnow
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.files import service as files
from multinotes.identity import profile
from multinotes.identity import service as identity
from multinotes.identity.account_mail import invalid_link, public_base_url
from multinotes.identity.models import AuthSession, User
from multinotes.identity.passwords import verify_password_async
from multinotes.identity.service import normalize_email, token_hash
from multinotes.keys import DB, SETTINGS, TASKS
from multinotes.mail import send_mail
from multinotes.note_exports.service import remove_user_note_exports
from multinotes.notes.models import Document, DocumentVersion, Folder
from multinotes.organisations.models import Organisation, OrganisationMember
from multinotes.plugin_host import TaskDef
from multinotes.privacy.exports import remove_user_export_files
from multinotes.privacy.models import AccountDeletion, DeletionStatus
from multinotes.storage import objects
from multinotes.wallet.models import LedgerEntry, Wallet

log = structlog.get_logger(__name__)

MAIL_TASK = "core.send_account_deletion_mail"
PURGE_TASK = "core.purge_deleted_accounts"
CANCEL_PATH = "/account/deletion/cancel"
TOMBSTONE_NAME = "Deleted account"
#: The reserved .invalid domain: no one can register or receive mail at a tombstone's address.
TOMBSTONE_DOMAIN = "deleted.invalid"


def tombstone_email(tombstone_id: str) -> str:
    return f"deleted-{tombstone_id}@{TOMBSTONE_DOMAIN}"


# -- asking -------------------------------------------------------------------------------------


async def request_deletion(
    request: web.Request, user_id: str, *, password: str | None, confirm_email: str | None
) -> AccountDeletion:
    """Check the confirmation, deactivate the account and schedule its deletion."""
    app = request.app
    db = app[DB]
    user = await identity.get_user(db, user_id)
    if user.password_hash is not None:
        if not await verify_password_async(user.password_hash, password or ""):
            raise Invalid(
                "The password is wrong.",
                code="wrong_password",
                fields={"password": "This is not your current password."},
            )
    elif normalize_email(confirm_email or "") != user.email:
        raise Invalid(
            "Type your email address to confirm.",
            code="confirmation_mismatch",
            fields={"confirm_email": f"Type {user.email} to confirm."},
        )
    now = utcnow()
    purge_after = now + timedelta(days=app[SETTINGS].account_deletion_grace_days)
    async with db.transaction() as session:
        if user.role == "admin":
            await _refuse_last_admin(session, user.id)
        await _refuse_organisation_owner(session, user.id)
        await session.execute(select(User.id).where(User.id == user.id).with_for_update())
        # A pending row from an earlier request an admin overrode by re-activating the account.
        await session.execute(delete(AccountDeletion).where(AccountDeletion.user_id == user.id))
        deletion = AccountDeletion(
            id=new_id(),
            user_id=user.id,
            status=DeletionStatus.PENDING,
            requested_at=now,
            purge_after=purge_after,
        )
        session.add(deletion)
        await session.execute(update(User).where(User.id == user.id).values(is_active=False))
        await session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    await audit.record(
        app,
        request,
        "privacy.account_deletion_requested",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
        details={"purge_after": purge_after.isoformat()},
    )
    await app[TASKS].enqueue(MAIL_TASK, deletion_id=deletion.id, base_url=public_base_url(request))
    log.info("account_deletion_requested", user_id=user.id)
    return deletion


async def _refuse_last_admin(session: AsyncSession, user_id: str) -> None:
    admins = list(
        await session.scalars(
            select(User.id)
            .where(User.role == "admin", User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
    )
    if admins == [user_id]:
        raise Conflict(
            "You are the only administrator. Make someone else an administrator first.",
            code="last_admin",
        )


async def _refuse_organisation_owner(session: AsyncSession, user_id: str) -> None:
    """Deleting the account would delete organisations it owns, with their members' shared
    wallet: the owner of one with other members transfers it first."""
    others = await session.scalar(
        select(OrganisationMember.organisation_id)
        .join(Organisation, Organisation.id == OrganisationMember.organisation_id)
        .where(Organisation.owner_id == user_id, OrganisationMember.user_id != user_id)
        .limit(1)
    )
    if others is not None:
        raise Conflict(
            "You own an organisation with other members. Transfer its ownership first.",
            code="organisation_owner",
        )


async def send_deletion_mail(app: web.Application, *, deletion_id: str, base_url: str) -> None:
    """The task: mail a fresh cancel link (the token is made here, never in task arguments)."""
    db = app[DB]
    async with db.read() as session:
        row = (
            await session.execute(
                select(AccountDeletion, User)
                .join(User, User.id == AccountDeletion.user_id)
                .where(
                    AccountDeletion.id == deletion_id,
                    AccountDeletion.status == DeletionStatus.PENDING,
                )
            )
        ).first()
    if row is None:
        log.info("account_deletion_mail_skipped", reason="not_pending")
        return
    deletion, user = row[0], row[1]
    token = secrets.token_urlsafe(32)
    async with db.transaction() as session:
        stored = await session.execute(
            update(AccountDeletion)
            .where(
                AccountDeletion.id == deletion.id, AccountDeletion.status == DeletionStatus.PENDING
            )
            .values(cancel_token_hash=token_hash(token))
        )
    if rows_affected(stored) != 1:
        return
    await send_mail(
        app,
        template="account_deletion",
        to=user.email,
        context={
            "name": user.name,
            "email": user.email,
            "link": f"{base_url}{CANCEL_PATH}?token={token}",
            "date": deletion.purge_after.strftime("%Y-%m-%d %H:%M"),
        },
    )


# -- cancelling ---------------------------------------------------------------------------------


async def pending_deletion(db: Database, token: str) -> tuple[AccountDeletion, User] | None:
    """The deletion a cancel link stands for, while it can still be cancelled."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(AccountDeletion, User)
                .join(User, User.id == AccountDeletion.user_id)
                .where(
                    AccountDeletion.cancel_token_hash == token_hash(token),
                    AccountDeletion.status == DeletionStatus.PENDING,
                )
            )
        ).first()
    if row is None or row[0].purge_after <= utcnow():
        return None
    return row[0], row[1]


async def cancel_deletion(request: web.Request, token: str) -> User:
    """Cancel with the mailed link: the account is active again. The link works once."""
    app = request.app
    db = app[DB]
    found = await pending_deletion(db, token) if token else None
    if found is None:
        raise invalid_link()
    deletion, user = found
    async with db.transaction() as session:
        removed = await session.execute(
            delete(AccountDeletion).where(
                AccountDeletion.id == deletion.id,
                AccountDeletion.cancel_token_hash == token_hash(token),
                AccountDeletion.status == DeletionStatus.PENDING,
                AccountDeletion.purge_after > utcnow(),
            )
        )
        if rows_affected(removed) != 1:
            raise invalid_link()
        await session.execute(update(User).where(User.id == user.id).values(is_active=True))
    user.is_active = True
    await audit.record(
        app,
        request,
        "privacy.account_deletion_cancelled",
        actor_id=user.id,
        target_type="user",
        target_id=user.id,
    )
    log.info("account_deletion_cancelled", user_id=user.id)
    return user


# -- deleting -----------------------------------------------------------------------------------


async def purge_deleted_accounts(app: web.Application) -> int:
    """The scheduled task: delete every account whose grace period is over."""
    async with app[DB].read() as session:
        due = list(
            await session.scalars(
                select(AccountDeletion.user_id).where(
                    AccountDeletion.status == DeletionStatus.PENDING,
                    AccountDeletion.purge_after <= utcnow(),
                )
            )
        )
    deleted = 0
    for user_id in due:
        try:
            if await hard_delete(app, user_id):
                deleted += 1
        except Exception:  # one account's failure must not keep the others
            log.exception("account_deletion_failed", user_id=user_id)
    return deleted


async def hard_delete(app: web.Application, user_id: str) -> str | None:
    """Delete the account and its content; returns the tombstone's id (None: nothing done).

    Safe to run twice at once or again after a crash: each step finds what is left."""
    db = app[DB]
    async with db.read() as session:
        user = await session.get(User, user_id)
    if user is None:
        return None
    if user.is_active:  # an admin re-activated it during the grace period: that cancels it
        async with db.transaction() as session:
            await session.execute(delete(AccountDeletion).where(AccountDeletion.user_id == user_id))
        log.info("account_deletion_dropped", user_id=user_id, reason="active")
        return None
    for remove in CONTENT_REMOVERS:
        await remove(app, user_id)
    tombstone_id = new_id()
    now = utcnow()
    async with db.transaction() as session:
        locked = await session.scalar(select(User).where(User.id == user_id).with_for_update())
        if locked is None:
            return None
        await _tombstone(session, user_id, tombstone_id, now)
        await session.execute(delete(User).where(User.id == user_id))
    await audit.record(
        app,
        None,
        "privacy.account_deleted",
        actor_id=None,
        target_type="user",
        target_id=tombstone_id,
    )
    log.info("account_deleted", tombstone_id=tombstone_id)
    return tombstone_id


async def remove_conversations(app: web.Application, user_id: str) -> None:
    """Every conversation, one transaction each (message trees go bottom-up, which a cascade
    from the user row would not do within MySQL's cascade depth), then their media files."""
    db = app[DB]
    paths: list[str] = []
    while True:
        async with db.read() as session:
            ids = list(
                await session.scalars(
                    select(Conversation.id).where(Conversation.user_id == user_id).limit(100)
                )
            )
        if not ids:
            break
        for conversation_id in ids:
            try:
                paths += await chat.delete_conversation(db, user_id, conversation_id)
            except NotFound:
                pass
    await objects.delete_all(objects.storage_of(app), paths)


async def remove_avatar(app: web.Application, user_id: str) -> None:
    async with app[DB].read() as session:
        avatar_id = await session.scalar(select(User.avatar_id).where(User.id == user_id))
    key = profile.avatar_key(avatar_id) if avatar_id else None
    if key is not None:
        await objects.storage_of(app).delete(key)


async def remove_notes(app: web.Application, user_id: str) -> None:
    """Notes, then folders flattened first: a folder tree deeper than MySQL's cascade depth
    (15) cannot go by ON DELETE CASCADE."""
    async with app[DB].transaction() as session:
        await session.execute(delete(DocumentVersion).where(DocumentVersion.user_id == user_id))
        await session.execute(delete(Document).where(Document.user_id == user_id))
        await session.execute(
            update(Folder).where(Folder.user_id == user_id).values(parent_id=None),
            execution_options={"synchronize_session": False},
        )
        await session.execute(delete(Folder).where(Folder.user_id == user_id))


async def remove_stored_files(app: web.Application, user_id: str) -> None:
    await files.delete_all_of(app, [user_id])


ContentRemover = Callable[[web.Application, str], Awaitable[None]]

#: Run before the user's row is deleted (their rows still exist): remove what the database's
#: ON DELETE CASCADE cannot, i.e. files on disk or in object storage, and trees to delete in
#: order. Each must be safe to run again (after a crash). A feature storing such things adds
#: its step here.
CONTENT_REMOVERS: list[ContentRemover] = [
    remove_conversations,
    remove_notes,
    remove_stored_files,
    remove_user_export_files,
    remove_user_note_exports,
    remove_avatar,
]


async def _tombstone(session: AsyncSession, user_id: str, tombstone_id: str, now: datetime) -> None:
    """Create the tombstone and move onto it what outlives the account."""
    session.add(
        User(
            id=tombstone_id,
            email=tombstone_email(tombstone_id),
            name=TOMBSTONE_NAME,
            password_hash=None,
            role="user",
            is_active=False,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    wallet = await session.scalar(select(Wallet).where(Wallet.user_id == user_id).with_for_update())
    if wallet is not None:
        session.add(Wallet(user_id=tombstone_id, balance=wallet.balance, reserved=0))
        await session.flush()
    # Ledger references such as "trial:<user id>" name the account: they follow the rows.
    await session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.user_id == user_id)
        .values(
            user_id=tombstone_id,
            reference=func.replace(LedgerEntry.reference, user_id, tombstone_id),
        ),
        execution_options={"synchronize_session": False},
    )
    await session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.created_by == user_id)
        .values(created_by=tombstone_id),
        execution_options={"synchronize_session": False},
    )
    await anonymise_audit_log(session, user_id, tombstone_id)
    await session.execute(
        update(AccountDeletion)
        .where(AccountDeletion.user_id == user_id)
        .values(
            user_id=tombstone_id,
            status=DeletionStatus.DELETED,
            deleted_at=now,
            cancel_token_hash=None,
        ),
        execution_options={"synchronize_session": False},
    )


async def anonymise_audit_log(session: AsyncSession, user_id: str, tombstone_id: str) -> None:
    """Entries stay (the log is append-only); the account's id in them becomes the tombstone's,
    and the IPs and User-Agents of what the account itself did are erased.

    The one sanctioned change to the audit log, so it goes through the table (Core), not the
    ORM, which refuses every UPDATE of an audit entry."""
    table = cast(Table, audit.AuditEntry.__table__)
    connection = await session.connection()
    await connection.execute(
        update(table)
        .where(table.c.actor_id == user_id)
        .values(actor_id=tombstone_id, ip=None, user_agent=None)
    )
    await connection.execute(
        update(table)
        .where(table.c.target_type == "user", table.c.target_id == user_id)
        .values(target_id=tombstone_id)
    )


def deletion_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", MAIL_TASK, send_deletion_mail, None),
        TaskDef("core", PURGE_TASK, purge_deleted_accounts, "37 * * * *"),
    ]


def deletion_message(pending: AccountDeletion) -> str:
    return (
        f"Your account is deactivated and will be deleted on {pending.purge_after:%Y-%m-%d} UTC. "
        "To cancel, open the link we mailed you before then."
    )
