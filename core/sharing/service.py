"""Shares: with a person (by email) as viewer or editor, or by public link; listing what one
shared and what was shared with one; changing and revoking; the public link's checks (expiry,
password, views); and "save a copy to my workspace".

Only an object's owner shares it, changes a share or revokes it. A share with an address that has
no account yet waits for that address (see ``multinotes.sharing.access``); its invitation mail
says to sign up with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.arena.models import ArenaComparison
from multinotes.chat.models import Conversation
from multinotes.db import Database, new_id, utcnow
from multinotes.domain_events import (
    FOLDER_CREATED,
    NOTE_SHARED,
    SHARE_CREATED,
    FolderCreated,
    NoteShared,
    ShareCreated,
    stage,
)
from multinotes.errors import AppError, Conflict, Invalid, NotFound
from multinotes.files.models import File
from multinotes.identity.actor import Actor
from multinotes.identity.models import User
from multinotes.identity.passwords import hash_password_async, verify_password_async
from multinotes.identity.service import normalize_email, token_hash
from multinotes.notes.models import Document, DocumentVersion, Folder
from multinotes.notes.service import clean_name, name_key, note_created
from multinotes.sharing import access
from multinotes.sharing.models import DocumentActivity, FolderActivity, Share

PUBLIC_PREFIX = "/s/"
MIN_LINK_PASSWORD = 6
MAX_LINK_PASSWORD = 256
#: Roles an object type can be shared with (files, conversations and comparisons are read-only).
ROLES_FOR = {
    "document": ("viewer", "editor"),
    "folder": ("viewer", "editor"),
    "file": ("viewer",),
    "conversation": ("viewer",),
    "comparison": ("viewer",),
}


class Gone(AppError):
    """A public link that was revoked or has expired."""

    status = 410
    code = "gone"
    default_message = "This link no longer works: it was revoked or has expired."


@dataclass(frozen=True)
class Created:
    share: Share
    #: The public link's token: shown once, never stored.
    token: str | None


# -- objects ------------------------------------------------------------------------------------


def object_path(object_type: str, object_id: str) -> str:
    """Where a person a thing is shared with opens it on this site."""
    return {
        "document": f"/notes/{object_id}",
        "folder": f"/shared/folders/{object_id}",
        "file": f"/shared/files/{object_id}",
        "conversation": f"/shared/conversations/{object_id}",
        "comparison": f"/comparisons/{object_id}",
    }[object_type]


def one_line(text: str) -> str:
    """Names and titles go into mails: no line breaks there."""
    return " ".join(text.split())


#: Anything a mail client would turn into a link: a URL, or a bare domain name.
_LINKISH = re.compile(
    r"(?i)\b(?:[a-z][a-z0-9+.-]*://|www\.)\S*|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b\S*"
)


def without_links(text: str) -> str:
    """User-chosen text (a display name, a title) as it may appear in a mail to a stranger:
    on one line, with links and domain names taken out, so an invitation cannot carry an
    advertisement's link."""
    return one_line(_LINKISH.sub("[link removed]", text))


#: A comparison is titled by its prompt, cut to this many characters.
COMPARISON_TITLE = 80


def comparison_title(prompt: str) -> str:
    line = one_line(prompt)
    return line if len(line) <= COMPARISON_TITLE else line[: COMPARISON_TITLE - 1] + "…"


def title_of(obj: Any) -> str:
    if isinstance(obj, ArenaComparison):
        return comparison_title(obj.prompt)
    if isinstance(obj, Document | Conversation):
        return obj.title
    if isinstance(obj, Folder | File):
        return obj.name
    return ""


async def _owned_object(
    session: AsyncSession, user_id: str, object_type: str, object_id: str
) -> Any:
    """The object, if ``user_id`` owns it (403 for someone it is only shared with)."""
    obj, rights = await access.object_in(session, user_id, object_type, object_id)
    rights.require("owner", "share it")
    return obj


async def titles(
    session: AsyncSession, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, str]]:
    """(type, id) → (title, owner id) for the live objects among ``pairs``."""
    found: dict[tuple[str, str], tuple[str, str]] = {}
    tables: dict[str, Any] = {
        "document": (Document, Document.title, Document.deleted_at.is_(None)),
        "folder": (Folder, Folder.name, Folder.deleted_at.is_(None)),
        "file": (File, File.name, None),
        "conversation": (Conversation, Conversation.title, None),
        "comparison": (ArenaComparison, ArenaComparison.prompt, None),
    }
    for object_type, (model, column, live) in tables.items():
        ids = sorted(i for t, i in pairs if t == object_type)
        for start in range(0, len(ids), 500):
            query = select(model.id, column, model.user_id).where(
                model.id.in_(ids[start : start + 500])
            )
            if live is not None:
                query = query.where(live)
            for oid, title, owner in (await session.execute(query)).all():
                if object_type == "comparison":
                    title = comparison_title(title)
                found[(object_type, oid)] = (title, owner)
    return found


# -- creating -----------------------------------------------------------------------------------


def _aware(moment: datetime | None, field: str) -> datetime | None:
    if moment is None:
        return None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # zone-less reads as UTC
    if moment <= utcnow():
        raise Invalid(fields={field: "must be in the future"})
    return moment


async def _link_password(password: str | None) -> str | None:
    if password is None:
        return None
    if not MIN_LINK_PASSWORD <= len(password) <= MAX_LINK_PASSWORD:
        raise Invalid(
            fields={
                "password": f"use {MIN_LINK_PASSWORD} to {MAX_LINK_PASSWORD} characters",
            }
        )
    return await hash_password_async(password)


#: Where a share event of each kind of object is recorded: the table and its object column.
ACTIVITY_LOGS: dict[str, tuple[type[DocumentActivity] | type[FolderActivity], str]] = {
    "document": (DocumentActivity, "document_id"),
    "folder": (FolderActivity, "folder_id"),
}


def _activity(session: AsyncSession, share: Share, actor_id: str, kind: str, **detail: Any) -> None:
    """Record a share event of a note in its feed, or of a folder in the folder's own log (the
    feeds of the notes inside read it from there: ``multinotes.sharing.activity``), at the time
    the share records for the change."""
    at = share.updated_at
    event = {
        "share_id": share.id,
        "public": share.is_public,
        "email": share.recipient_email,
        "role": share.role,
        **detail,
    }
    target = ACTIVITY_LOGS.get(share.object_type)
    if target is not None:  # files and conversations keep no feed
        model, object_column = target
        session.add(
            model(
                **{object_column: share.object_id},
                actor_id=actor_id,
                kind=kind,
                detail=event,
                created_at=at,
            )
        )


async def create_share(
    db: Database,
    owner: Actor,
    *,
    object_type: str,
    object_id: str,
    email: str | None,
    public: bool,
    role: str,
    expires_at: datetime | None,
    password: str | None,
) -> Created:
    """Share with a person (``email``) or by public link (``public``).

    Sharing again with the same person changes the role and expiry of the live share rather than
    adding another. A new share publishes ``share.created`` (and ``note.shared`` for a note or
    folder): the recipient's notification and mail react to it
    (``multinotes.sharing.notifier``)."""
    if public == (email is not None):
        raise Invalid(
            "Share either with a person (email) or by public link (public: true).",
            fields={"email": "give an email address, or public: true", "public": "or this"},
        )
    if role not in ROLES_FOR[object_type]:
        raise Invalid(fields={"role": f"a {object_type} can only be shared with viewers"})
    if public and role != "viewer":
        raise Invalid(fields={"role": "public links are read-only: use viewer"})
    if password is not None and not public:
        raise Invalid(fields={"password": "only public links take a password"})
    expires = _aware(expires_at, "expires_at")
    address = normalize_email(email) if email is not None else None
    if address is not None and address == normalize_email(owner.email):
        raise Invalid("You cannot share with yourself.", fields={"email": "this is you"})
    password_hash = await _link_password(password)  # slow: outside the transaction
    token = secrets.token_urlsafe(32) if public else None
    now = utcnow()
    try:
        async with db.transaction() as session:
            await _owned_object(session, owner.user_id, object_type, object_id)  # or 403/404
            recipient = (
                await session.scalar(select(User).where(User.email == address)) if address else None
            )
            share = None
            if address is not None:
                share = await session.scalar(
                    select(Share).where(
                        Share.object_type == object_type,
                        Share.object_id == object_id,
                        Share.recipient_email == address,
                        Share.live_key == "",
                    )
                )
            if share is not None:
                before = share.role
                changed = before != role or share.expires_at != expires
                share.role, share.expires_at, share.updated_at = role, expires, now
                if recipient is not None:
                    share.recipient_id = recipient.id
                if changed:
                    previous = {"previous_role": before} if before != role else {}
                    _activity(session, share, owner.user_id, "share_changed", **previous)
                return Created(share, None)
            share = Share(
                id=new_id(),
                owner_id=owner.user_id,
                object_type=object_type,
                object_id=object_id,
                recipient_id=recipient.id if recipient else None,
                recipient_email=address,
                role=role,
                token_hash=token_hash(token) if token else None,
                password_hash=password_hash,
                expires_at=expires,
                created_at=now,
                updated_at=now,
            )
            session.add(share)
            await session.flush()
            _activity(session, share, owner.user_id, "share")
            if object_type in ("document", "folder"):
                stage(
                    session,
                    NOTE_SHARED.of(
                        owner.user_id,
                        NoteShared(
                            share_id=share.id,
                            object_type="document" if object_type == "document" else "folder",
                            object_id=object_id,
                            role=role,
                            kind="link" if public else "user",
                            recipient_id=share.recipient_id,
                        ),
                    ),
                )
            stage(
                session,
                SHARE_CREATED.of(
                    owner.user_id,
                    ShareCreated(
                        share_id=share.id,
                        object_type=object_type,
                        object_id=object_id,
                        role=role,
                        kind="link" if public else "user",
                        recipient_id=share.recipient_id,
                    ),
                ),
            )
    except IntegrityError:
        raise Conflict(
            "This was shared with that address at the same moment; reload to see it.",
            code="already_shared",
        ) from None
    return Created(share, token)


# -- listing ------------------------------------------------------------------------------------


def share_status(share: Share, now: datetime | None = None) -> str:
    if share.revoked_at is not None:
        return "revoked"
    if share.expires_at is not None and share.expires_at <= (now or utcnow()):
        return "expired"
    if share.recipient_email is not None and share.recipient_id is None:
        return "pending"  # no account with this address yet
    return "active"


async def shares_by(
    db: Database,
    owner_id: str,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
) -> list[dict[str, Any]]:
    """The owner's live (not revoked) shares of live objects, newest first, with the object's
    title and the recipient's name."""
    query = select(Share).where(Share.owner_id == owner_id, Share.revoked_at.is_(None))
    if object_type is not None:
        query = query.where(Share.object_type == object_type)
    if object_id is not None:
        query = query.where(Share.object_id == object_id)
    async with db.read() as session:
        if object_type is not None and object_id is not None:
            await _owned_object(session, owner_id, object_type, object_id)
        rows = list(await session.scalars(query.order_by(Share.created_at.desc(), Share.id)))
        found = await titles(session, {(s.object_type, s.object_id) for s in rows})
        names = await _names(session, {s.recipient_id for s in rows if s.recipient_id})
        pending = {s.recipient_email for s in rows if s.recipient_id is None and s.recipient_email}
        registered = await _accounts_for(session, pending)
    out = []
    for share in rows:
        title_owner = found.get((share.object_type, share.object_id))
        if title_owner is None or title_owner[1] != owner_id:
            continue  # the object went to the trash or away: its shares wait or lapse with it
        out.append(
            share_out(
                share,
                title=title_owner[0],
                recipient_name=names.get(share.recipient_id or "")
                or registered.get(share.recipient_email or ""),
            )
        )
    return out


async def describe(db: Database, share: Share) -> dict[str, Any]:
    """One share as the API shows it (its object's title, the recipient's name)."""
    async with db.read() as session:
        found = await titles(session, {(share.object_type, share.object_id)})
        names = await _names(session, {share.recipient_id} if share.recipient_id else set())
        registered = await _accounts_for(session, {share.recipient_email})
    title = found.get((share.object_type, share.object_id), ("", ""))[0]
    name = names.get(share.recipient_id or "") or registered.get(share.recipient_email or "")
    return share_out(share, title=title, recipient_name=name)


async def _names(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(sorted(ids))))
    return {key: value for key, value in rows.all()}


async def _accounts_for(session: AsyncSession, emails: Iterable[str | None]) -> dict[str, str]:
    """Names of verified accounts holding these addresses (pending shares that reach them)."""
    wanted = sorted(e for e in emails if e)
    if not wanted:
        return {}
    rows = await session.execute(
        select(User.email, User.name).where(
            User.email.in_(wanted), User.email_verified_at.is_not(None)
        )
    )
    return {key: value for key, value in rows.all()}


def share_out(share: Share, *, title: str, recipient_name: str | None = None) -> dict[str, Any]:
    status = share_status(share)
    if status == "pending" and recipient_name:
        status = "active"  # the address now belongs to a verified account
    return {
        "id": share.id,
        "object_type": share.object_type,
        "object_id": share.object_id,
        "title": title,
        "public": share.is_public,
        "email": share.recipient_email,
        "recipient": (
            {"id": share.recipient_id, "name": recipient_name}
            if share.recipient_id
            else ({"id": None, "name": recipient_name} if recipient_name else None)
        ),
        "role": share.role,
        "status": status,
        "expires_at": share.expires_at.isoformat() if share.expires_at else None,
        "has_password": share.password_hash is not None,
        "view_count": share.view_count,
        "last_viewed_at": share.last_viewed_at.isoformat() if share.last_viewed_at else None,
        "created_at": share.created_at.isoformat(),
        "object_url": object_path(share.object_type, share.object_id),
    }


async def shared_with(db: Database, user_id: str) -> list[dict[str, Any]]:
    """What others shared with ``user_id`` directly (a folder stands for everything in it), one
    entry per object with the best role, newest share first."""
    async with db.read() as session:
        rows = list(
            await session.scalars(
                select(Share)
                .where(access.granted_to(user_id), access.live_share(), Share.owner_id != user_id)
                .order_by(Share.created_at.desc(), Share.id)
            )
        )
        found = await titles(session, {(s.object_type, s.object_id) for s in rows})
        owners = {
            uid: (name, email)
            for uid, name, email in (
                await session.execute(
                    select(User.id, User.name, User.email).where(
                        User.id.in_(sorted({s.owner_id for s in rows}) or [""])
                    )
                )
            ).all()
        }
    items: dict[tuple[str, str], dict[str, Any]] = {}
    for share in rows:
        key = (share.object_type, share.object_id)
        title_owner = found.get(key)
        if title_owner is None or title_owner[1] != share.owner_id:
            continue
        if key in items:
            if access.RANK[share.role] > access.RANK[items[key]["role"]]:
                items[key]["role"] = share.role
            continue
        name, email = owners.get(share.owner_id, ("", ""))
        items[key] = {
            "object_type": share.object_type,
            "object_id": share.object_id,
            "title": title_owner[0],
            "role": share.role,
            "owner": {"id": share.owner_id, "name": name, "email": email},
            "shared_at": share.created_at.isoformat(),
            "expires_at": share.expires_at.isoformat() if share.expires_at else None,
            "url": object_path(share.object_type, share.object_id),
        }
    return list(items.values())


# -- changing -----------------------------------------------------------------------------------


async def _own_live_share(session: AsyncSession, owner_id: str, share_id: str) -> Share:
    share = await session.scalar(
        select(Share)
        .where(Share.id == share_id, Share.owner_id == owner_id, Share.revoked_at.is_(None))
        .with_for_update()
    )
    if share is None:
        raise NotFound("No such share.")
    return share


async def own_share(db: Database, owner_id: str, share_id: str) -> Share:
    """One of the owner's live shares; NotFound for anyone else's (or a revoked one)."""
    async with db.read() as session:
        share = await session.scalar(
            select(Share).where(
                Share.id == share_id, Share.owner_id == owner_id, Share.revoked_at.is_(None)
            )
        )
    if share is None:
        raise NotFound("No such share.")
    return share


async def update_share(
    db: Database, owner_id: str, share_id: str, changes: dict[str, Any]
) -> Share:
    """Change a live share's role, expiry (null: never) or public link password (null: none)."""
    expires = _aware(changes["expires_at"], "expires_at") if changes.get("expires_at") else None
    new_password = changes.get("password")
    password_hash = await _link_password(new_password) if new_password else None
    async with db.transaction() as session:
        share = await _own_live_share(session, owner_id, share_id)
        before = share.role
        if "role" in changes:
            role = changes["role"]
            if role not in ROLES_FOR[share.object_type]:
                raise Invalid(
                    fields={"role": f"a {share.object_type} can only be shared with viewers"}
                )
            if share.is_public and role != "viewer":
                raise Invalid(fields={"role": "public links are read-only: use viewer"})
            share.role = role
        if "expires_at" in changes:
            share.expires_at = expires
        if "password" in changes:
            if not share.is_public:
                raise Invalid(fields={"password": "only public links take a password"})
            share.password_hash = password_hash
        share.updated_at = utcnow()
        if share.role != before:
            _activity(session, share, owner_id, "share_changed", previous_role=before)
    return share


async def revoke_share(db: Database, owner_id: str, share_id: str) -> None:
    """Revoke now: the very next request through it is refused (a public link answers 410)."""
    async with db.transaction() as session:
        share = await _own_live_share(session, owner_id, share_id)
        share.revoked_at = share.updated_at = utcnow()
        share.live_key = share.id
        _activity(session, share, owner_id, "unshare")


# -- public links -------------------------------------------------------------------------------


async def public_share(db: Database, token: str) -> tuple[Share, Any]:
    """The live public share behind a link's token and its object (as its owner has it).

    404 for a token that never existed or an object no longer there; 410 for a revoked or
    expired link."""
    if not token or len(token) > 100:
        raise NotFound("No such link.")
    async with db.read() as session:
        share = await session.scalar(select(Share).where(Share.token_hash == token_hash(token)))
        if share is None:
            raise NotFound("No such link.")
        if share_status(share) in ("revoked", "expired"):
            raise Gone()
        try:
            obj, rights = await access.object_in(
                session, share.owner_id, share.object_type, share.object_id
            )
        except NotFound:
            raise NotFound("What this link showed is no longer there.") from None
        if not rights.is_owner:
            raise NotFound("What this link showed is no longer there.")
    return share, obj


async def count_view(db: Database, share_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(Share)
            .where(Share.id == share_id)
            .values(view_count=Share.view_count + 1, last_viewed_at=utcnow())
        )


async def check_link_password(share: Share, password: str) -> bool:
    return share.password_hash is not None and await verify_password_async(
        share.password_hash, password
    )


def unlock_proof(master_key: str, share: Share) -> str:
    """What the unlock cookie of a password-protected link holds: bound to the share and its
    current password, so changing the password locks every visitor out again."""
    key = hashlib.sha256(b"multinotes-share-unlock:" + master_key.encode()).digest()
    message = f"{share.id}:{share.password_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def proof_matches(master_keys: list[str], share: Share, value: str | None) -> bool:
    if not value:
        return False
    return any(hmac.compare_digest(unlock_proof(k, share), value) for k in master_keys)


# -- what a public link or a share contains -------------------------------------------------------


async def folder_contents(
    db: Database, owner_id: str, folder_id: str
) -> tuple[list[Folder], list[Document], list[File]]:
    """The live subfolders, notes and files directly inside one of ``owner_id``'s folders."""
    async with db.read() as session:
        folders = list(
            await session.scalars(
                select(Folder)
                .where(
                    Folder.user_id == owner_id,
                    Folder.parent_id == folder_id,
                    Folder.deleted_at.is_(None),
                )
                .order_by(Folder.name_key, Folder.id)
            )
        )
        documents = list(
            await session.scalars(
                select(Document)
                .where(
                    Document.user_id == owner_id,
                    Document.folder_id == folder_id,
                    Document.deleted_at.is_(None),
                )
                .order_by(Document.title, Document.id)
            )
        )
        files = list(
            await session.scalars(
                select(File)
                .where(File.user_id == owner_id, File.folder_id == folder_id)
                .order_by(File.name, File.id)
            )
        )
    return folders, documents, files


async def within(db: Database, owner_id: str, root_folder_id: str, folder_id: str | None) -> bool:
    """Whether ``folder_id`` is ``root_folder_id`` or below it (live folders of one owner)."""
    if folder_id is None:
        return False
    async with db.read() as session:
        parents = dict(
            (
                await session.execute(
                    select(Folder.id, Folder.parent_id).where(
                        Folder.user_id == owner_id, Folder.deleted_at.is_(None)
                    )
                )
            ).all()
        )
    seen: set[str] = set()
    current: str | None = folder_id
    while current is not None and current in parents and current not in seen:
        if current == root_folder_id:
            return True
        seen.add(current)
        current = parents[current]
    return False


# -- save a copy --------------------------------------------------------------------------------


async def _free_root_name(session: AsyncSession, user_id: str, name: str) -> str:
    taken = set(
        await session.scalars(
            select(Folder.name_key).where(
                Folder.user_id == user_id, Folder.parent_key == "", Folder.live_key == ""
            )
        )
    )
    candidate, number = name, 1
    while name_key(candidate) in taken:
        number += 1
        suffix = " (copy)" if number == 2 else f" (copy {number - 1})"
        candidate = (name[: 200 - len(suffix)] + suffix).strip()
    return candidate


def _copy_document(source: Document, user_id: str, folder_id: str | None) -> list[Any]:
    now = utcnow()
    copy = Document(
        id=new_id(),
        user_id=user_id,
        folder_id=folder_id,
        title=source.title,
        content=source.content,
        version=1,
        created_at=now,
        updated_at=now,
    )
    version = DocumentVersion(
        document_id=copy.id,
        user_id=user_id,
        version=1,
        title=copy.title,
        content=copy.content,
        created_by=user_id,
        created_at=now,
    )
    return [copy, version]


async def save_copy(db: Database, user_id: str, share: Share, obj: Any) -> tuple[str, str]:
    """Copy a shared note into ``user_id``'s root (a fresh history, no provenance), or a shared
    folder with its subfolders and notes as a new folder there; one transaction, all or nothing.
    Returns the kind and id of what was created."""
    if isinstance(obj, Document):
        async with db.transaction() as session:
            rows = _copy_document(obj, user_id, None)
            session.add_all(rows)
            stage(session, note_created(rows[0], user_id, "shared_copy"))
        return "document", rows[0].id
    if not isinstance(obj, Folder):
        raise Invalid(
            "Only notes and folders can be copied to your workspace.",
            fields={"object_type": "not a note or folder"},
        )
    async with db.transaction() as session:
        folders = (
            await session.execute(
                select(Folder.id, Folder.parent_id, Folder.name).where(
                    Folder.user_id == share.owner_id, Folder.deleted_at.is_(None)
                )
            )
        ).all()
        children: dict[str | None, list[tuple[str, str]]] = {}
        for fid, parent, name in folders:
            children.setdefault(parent, []).append((fid, name))
        root_name = await _free_root_name(session, user_id, clean_name(obj.name))
        mapping: dict[str, str] = {}
        stack: list[tuple[str, str | None, str]] = [(obj.id, None, root_name)]
        while stack:
            source_id, new_parent, name = stack.pop()
            new_folder = Folder(
                id=new_id(),
                user_id=user_id,
                parent_id=new_parent,
                parent_key=new_parent or "",
                name=name,
                name_key=name_key(name),
            )
            session.add(new_folder)
            stage(
                session,
                FOLDER_CREATED.of(
                    user_id,
                    FolderCreated(folder_id=new_folder.id, name=name, parent_id=new_parent),
                ),
            )
            mapping[source_id] = new_folder.id
            stack.extend((cid, new_folder.id, cname) for cid, cname in children.get(source_id, []))
        await session.flush()
        source_ids = list(mapping)
        for start in range(0, len(source_ids), 500):
            documents = await session.scalars(
                select(Document).where(
                    Document.user_id == share.owner_id,
                    Document.folder_id.in_(source_ids[start : start + 500]),
                    Document.deleted_at.is_(None),
                )
            )
            for document in documents:
                rows = _copy_document(document, user_id, mapping[document.folder_id or ""])
                session.add_all(rows)
                stage(session, note_created(rows[0], user_id, "shared_copy"))
    return "folder", mapping[obj.id]
