"""Who may see and change what: the one module that decides access to shared objects.

An object's owner may do everything. Someone it is shared with (directly, or through a shared
folder above it) is a *viewer* (reads the note, its versions and rendered HTML, a folder's
listing, a file's content, a conversation) or an *editor* (a viewer who may also edit a note's
title and content). Nobody but the owner deletes, restores, moves, re-runs or shares. Everyone
else gets ``NotFound``, exactly as for an id that does not exist, so ids leak nothing.

Grants are read from the database on every call: nothing is cached across requests, so a revoke
or an expiry holds on the very next request. A folder share covers everything inside the folder,
present and future, because a note's or folder's ancestors are walked at access time.

A share with an address that had no account when it was shared reaches the account that holds
that address once the address is verified (so nobody gets it by registering someone else's
address); a share made to an existing account reaches that account directly.

A folder or note in an organisation's space (its ``organisation_id``, or that of a folder above
it) is open to the organisation's members as *editors*, the way a team space works in Notion:
every member reads and edits what the team keeps, while deleting, sharing and moving stay with
the person who made it. Moving an item between spaces is an explicit action
(``multinotes.organisations.spaces``). Membership is read on every call like the grants, so a
removed member loses access at their next request.

A conversation in an organisation's space is open to the organisation's members as *viewers*
(they read it; only the person who made it writes in it, and their generations there draw from
the organisation's wallet). Members find the space's notes and conversations in search and the
palette (``visible_scope``) and its conversations in their chat sidebar
(``multinotes.organisations.spaces.member_conversations``), on the same membership read. A
prompt template in an organisation's space is seen and used by its members, and changed by the
person who made it and the organisation's owner and admins (``in_member_space`` /
``manages_space``, used by ``multinotes.prompts``).

Endpoints call ``document`` / ``folder`` / ``file`` / ``conversation`` (load an object as seen
by a user, with the user's role) and wrap owner-only operations in ``owner_only``; search calls
``visible_scope``; a note's activity feed calls ``folders_above`` (whose folders' shares it
shows).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.arena.models import ArenaComparison
from multinotes.chat.models import Conversation, open_to_chat
from multinotes.db import Database, utcnow
from multinotes.errors import Forbidden, NotFound
from multinotes.files.models import File
from multinotes.identity.models import User
from multinotes.notes.models import Document, Folder
from multinotes.sharing.models import Share

Role = Literal["viewer", "editor", "owner"]
ObjectType = Literal["document", "folder", "file", "conversation", "comparison"]
RANK: dict[str, int] = {"viewer": 1, "editor": 2, "owner": 3}
NOT_FOUND = {
    "document": "No such document.",
    "folder": "No such folder.",
    "file": "No such file.",
    "conversation": "No such conversation.",
    "comparison": "No such comparison.",
}
CHUNK = 500


@dataclass(frozen=True)
class Access:
    """A user's rights on one object."""

    role: Role
    owner_id: str

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def can_edit(self) -> bool:
        return RANK[self.role] >= RANK["editor"]

    def require(self, role: Role, action: str = "do this") -> None:
        """Refuse (403) someone who can see the object but lacks ``role`` on it."""
        if RANK[self.role] < RANK[role]:
            who = "the owner" if role == "owner" else "editors"
            raise Forbidden(f"Only {who} can {action}.", code=f"{role}_only")


@dataclass(frozen=True)
class VisibleScope:
    """What other people shared with a user or keep in an organisation's space the user belongs
    to (their own items are not listed: callers add ``user_id == me``). Every id here is live
    and still owned by the person who shared it; the memberships are read with the grants."""

    user_id: str
    document_ids: frozenset[str]  # documents shared with the user directly
    #: folders shared with the user, and other people's folders in the spaces of
    #: ``organisation_ids``, AND all their descendants
    folder_ids: frozenset[str]
    conversation_ids: frozenset[str]  # conversations shared with the user
    file_ids: frozenset[str]  # files shared directly or inside a shared folder
    #: the organisations the user belongs to: notes and conversations marked with one of them
    #: (``organisation_id``) are in a space the user sees
    organisation_ids: frozenset[str] = frozenset()


# -- grants -------------------------------------------------------------------------------------


def live_share() -> ColumnElement[bool]:
    """A share that grants something right now: not revoked, not expired."""
    return and_(
        Share.revoked_at.is_(None), or_(Share.expires_at.is_(None), Share.expires_at > utcnow())
    )


def granted_to(user_id: str) -> ColumnElement[bool]:
    """User shares reaching ``user_id``: made to the account, or to its address once verified."""
    verified_email = (
        select(User.email)
        .where(User.id == user_id, User.email_verified_at.is_not(None))
        .scalar_subquery()
    )
    return and_(
        Share.token_hash.is_(None),
        or_(
            Share.recipient_id == user_id,
            and_(Share.recipient_id.is_(None), Share.recipient_email == verified_email),
        ),
    )


def _best(roles: Iterable[str]) -> Role | None:
    best: Role | None = None
    for role in roles:
        if role in ("viewer", "editor") and (best is None or RANK[role] > RANK[best]):
            best = role  # type: ignore[assignment]
    return best


async def _grants_from(
    session: AsyncSession, user_id: str, owner_id: str, types: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(object_type, object_id, role) of the live shares ``owner_id`` made to ``user_id``."""
    rows = await session.execute(
        select(Share.object_type, Share.object_id, Share.role).where(
            Share.owner_id == owner_id,
            Share.object_type.in_(types),
            granted_to(user_id),
            live_share(),
        )
    )
    return [(t, i, r) for t, i, r in rows.all()]


async def _live_parents(session: AsyncSession, owner_id: str) -> dict[str, str | None]:
    rows = await session.execute(
        select(Folder.id, Folder.parent_id).where(
            Folder.user_id == owner_id, Folder.deleted_at.is_(None)
        )
    )
    return {key: value for key, value in rows.all()}


def _chain(parents: dict[str, str | None], folder_id: str | None) -> list[str]:
    """``folder_id`` and the live folders above it."""
    chain: list[str] = []
    current = folder_id
    while current is not None and current in parents and current not in chain:
        chain.append(current)
        current = parents[current]
    return chain


async def _role_within(
    session: AsyncSession,
    user_id: str,
    owner_id: str,
    direct: tuple[str, str] | None,
    folder_id: str | None,
) -> Role | None:
    """The best role ``user_id`` holds on an object of ``owner_id``'s: from a share of the
    object itself (``direct``: type and id) or of a folder at or above ``folder_id``."""
    types = ["folder"] + ([direct[0]] if direct else [])
    grants = await _grants_from(session, user_id, owner_id, types)
    if not grants:
        return None
    roles = [r for t, i, r in grants if direct is not None and (t, i) == direct]
    folder_grants = {i: r for t, i, r in grants if t == "folder"}
    if folder_grants and folder_id is not None:
        for fid in _chain(await _live_parents(session, owner_id), folder_id):
            if fid in folder_grants:
                roles.append(folder_grants[fid])
    return _best(roles)


# -- organisation spaces -------------------------------------------------------------------------


async def space_of(
    session: AsyncSession, owner_id: str, organisation_id: str | None, folder_id: str | None
) -> str | None:
    """The organisation whose space an item is in: its own mark, else the nearest live folder
    above it (``folder_id`` included) that carries one."""
    if organisation_id is not None:
        return organisation_id
    if folder_id is None:
        return None
    chain = _chain(await _live_parents(session, owner_id), folder_id)
    if not chain:
        return None
    marks = dict(
        (
            await session.execute(
                select(Folder.id, Folder.organisation_id).where(
                    Folder.id.in_(chain), Folder.organisation_id.is_not(None)
                )
            )
        ).all()
    )
    return next((marks[fid] for fid in chain if fid in marks), None)


async def _space_role(
    session: AsyncSession,
    user_id: str,
    owner_id: str,
    organisation_id: str | None,
    folder_id: str | None,
) -> Role | None:
    """Editor for a member of the organisation whose space the item is in."""
    space = await space_of(session, owner_id, organisation_id, folder_id)
    if space is None:
        return None
    from multinotes.organisations.models import OrganisationMember

    member = await session.scalar(
        select(OrganisationMember.id).where(
            OrganisationMember.organisation_id == space, OrganisationMember.user_id == user_id
        )
    )
    return "editor" if member is not None else None


def member_organisations(user_id: str, *, managers_only: bool = False) -> Select[Any]:
    """SQL: the ids of the organisations ``user_id`` belongs to (``managers_only``: as owner or
    admin). A subquery, so the membership is read by the query that uses it, on this request."""
    from multinotes.organisations.models import OrganisationMember

    query = select(OrganisationMember.organisation_id).where(OrganisationMember.user_id == user_id)
    if managers_only:
        query = query.where(OrganisationMember.role.in_(("owner", "admin")))
    return query


def in_member_space(column: Any, user_id: str, *, managers_only: bool = False) -> Any:
    """SQL: ``column`` (an ``organisation_id``) names an organisation ``user_id`` belongs to."""
    return column.in_(member_organisations(user_id, managers_only=managers_only))


async def in_space(
    session: AsyncSession,
    user_id: str,
    organisation_id: str | None,
    *,
    managers_only: bool = False,
) -> bool:
    """Whether ``user_id`` is a member (with ``managers_only``: an owner or admin) of
    ``organisation_id`` (None: no space, so no)."""
    if organisation_id is None:
        return False
    from multinotes.organisations.models import OrganisationMember

    query = select(OrganisationMember.id).where(
        OrganisationMember.organisation_id == organisation_id,
        OrganisationMember.user_id == user_id,
    )
    if managers_only:
        query = query.where(OrganisationMember.role.in_(("owner", "admin")))
    return await session.scalar(query) is not None


async def manages_space(session: AsyncSession, user_id: str, organisation_id: str | None) -> bool:
    """Whether ``user_id`` is an owner or admin of ``organisation_id`` (None: no space)."""
    return await in_space(session, user_id, organisation_id, managers_only=True)


# -- objects as seen by a user -------------------------------------------------------------------


async def document_in(
    session: AsyncSession, user_id: str, document_id: str
) -> tuple[Document, Access]:
    """A live note and the user's rights on it; NotFound if they have none."""
    document = await session.scalar(
        select(Document).where(Document.id == document_id, Document.deleted_at.is_(None))
    )
    if document is not None:
        if document.user_id == user_id:
            return document, Access("owner", user_id)
        role = _best(
            [
                await _role_within(
                    session,
                    user_id,
                    document.user_id,
                    ("document", document.id),
                    document.folder_id,
                )
                or "",
                await _space_role(
                    session,
                    user_id,
                    document.user_id,
                    document.organisation_id,
                    document.folder_id,
                )
                or "",
            ]
        )
        if role is not None:
            return document, Access(role, document.user_id)
    raise NotFound(NOT_FOUND["document"])


async def folder_in(session: AsyncSession, user_id: str, folder_id: str) -> tuple[Folder, Access]:
    folder = await session.scalar(
        select(Folder).where(Folder.id == folder_id, Folder.deleted_at.is_(None))
    )
    if folder is not None:
        if folder.user_id == user_id:
            return folder, Access("owner", user_id)
        role = _best(
            [
                await _role_within(session, user_id, folder.user_id, None, folder.id) or "",
                await _space_role(
                    session, user_id, folder.user_id, folder.organisation_id, folder.id
                )
                or "",
            ]
        )
        if role is not None:
            return folder, Access(role, folder.user_id)
    raise NotFound(NOT_FOUND["folder"])


async def file_in(session: AsyncSession, user_id: str, file_id: str) -> tuple[File, Access]:
    row = await session.scalar(select(File).where(File.id == file_id))
    if row is not None:
        if row.user_id == user_id:
            return row, Access("owner", user_id)
        role = await _role_within(session, user_id, row.user_id, ("file", row.id), row.folder_id)
        if role is not None:
            return row, Access("viewer", row.user_id)  # files are shared read-only
    raise NotFound(NOT_FOUND["file"])


async def conversation_in(
    session: AsyncSession, user_id: str, conversation_id: str
) -> tuple[Conversation, Access]:
    # A sealed conversation (a blind comparison) is nobody's to read through chat or shares.
    conversation = await session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, open_to_chat())
    )
    if conversation is not None:
        if conversation.user_id == user_id:
            return conversation, Access("owner", user_id)
        role = await _role_within(
            session, user_id, conversation.user_id, ("conversation", conversation.id), None
        )
        if role is None and await in_space(session, user_id, conversation.organisation_id):
            role = "viewer"
        if role is not None:
            return conversation, Access("viewer", conversation.user_id)  # read-only
    raise NotFound(NOT_FOUND["conversation"])


async def comparison_in(
    session: AsyncSession, user_id: str, comparison_id: str
) -> tuple[ArenaComparison, Access]:
    """A blind comparison and the user's rights on it: its owner, or a viewer it is shared
    with (read-only). What a viewer sees of it (no model before the vote) is the arena's."""
    comparison = await session.scalar(
        select(ArenaComparison).where(ArenaComparison.id == comparison_id)
    )
    if comparison is not None:
        if comparison.user_id == user_id:
            return comparison, Access("owner", user_id)
        role = await _role_within(
            session, user_id, comparison.user_id, ("comparison", comparison.id), None
        )
        if role is not None:
            return comparison, Access("viewer", comparison.user_id)
    raise NotFound(NOT_FOUND["comparison"])


async def object_in(
    session: AsyncSession, user_id: str, object_type: str, object_id: str
) -> tuple[Any, Access]:
    if object_type == "document":
        return await document_in(session, user_id, object_id)
    if object_type == "folder":
        return await folder_in(session, user_id, object_id)
    if object_type == "file":
        return await file_in(session, user_id, object_id)
    if object_type == "conversation":
        return await conversation_in(session, user_id, object_id)
    if object_type == "comparison":
        return await comparison_in(session, user_id, object_id)
    raise NotFound()


async def document(
    db: Database, user_id: str, document_id: str, need: Role = "viewer", action: str = "do this"
) -> tuple[Document, Access]:
    """The note as ``user_id`` sees it, refused (403) when they see it without ``need``."""
    async with db.read() as session:
        found, access = await document_in(session, user_id, document_id)
    access.require(need, action)
    return found, access


async def folder(
    db: Database, user_id: str, folder_id: str, need: Role = "viewer", action: str = "do this"
) -> tuple[Folder, Access]:
    async with db.read() as session:
        found, access = await folder_in(session, user_id, folder_id)
    access.require(need, action)
    return found, access


async def file(db: Database, user_id: str, file_id: str) -> tuple[File, Access]:
    async with db.read() as session:
        return await file_in(session, user_id, file_id)


async def conversation(
    db: Database, user_id: str, conversation_id: str
) -> tuple[Conversation, Access]:
    async with db.read() as session:
        return await conversation_in(session, user_id, conversation_id)


async def comparison(
    db: Database, user_id: str, comparison_id: str
) -> tuple[ArenaComparison, Access]:
    async with db.read() as session:
        return await comparison_in(session, user_id, comparison_id)


async def role_of(db: Database, user_id: str, object_type: str, object_id: str) -> Role | None:
    """The user's role on an object, or None when they cannot see it."""
    try:
        async with db.read() as session:
            _, access = await object_in(session, user_id, object_type, object_id)
    except NotFound:
        return None
    return access.role


@asynccontextmanager
async def owner_only(
    db: Database, user_id: str, object_type: str, object_id: str, action: str = "do this"
) -> AsyncIterator[None]:
    """Run an owner-only operation (its service filters on the owner): when it finds nothing
    but the user can see the object through a share, refuse with 403 instead of 404."""
    try:
        yield
    except NotFound:
        role = await role_of(db, user_id, object_type, object_id)
        if role is not None and role != "owner":
            raise Forbidden(f"Only the owner can {action}.", code="owner_only") from None
        raise


# -- who sees a note ----------------------------------------------------------------------------


async def document_audience(session: AsyncSession, document: Document) -> dict[str, Role]:
    """Everyone who can see a live note right now, with their role (the owner included)."""
    audience: dict[str, Role] = {document.user_id: "owner"}
    chain = (
        _chain(await _live_parents(session, document.user_id), document.folder_id)
        if document.folder_id
        else []
    )
    targets = [and_(Share.object_type == "document", Share.object_id == document.id)]
    if chain:
        targets.append(and_(Share.object_type == "folder", Share.object_id.in_(chain)))
    rows = await session.execute(
        select(Share.recipient_id, Share.recipient_email, Share.role).where(
            Share.owner_id == document.user_id,
            Share.token_hash.is_(None),
            or_(*targets),
            live_share(),
        )
    )
    pending: dict[str, list[str]] = defaultdict(list)
    for recipient_id, email, role in rows.all():
        if recipient_id is not None:
            best = _best([audience.get(recipient_id, "viewer"), role])
            audience[recipient_id] = best or cast(Role, role)  # a share's role column
        elif email:
            pending[email].append(role)
    if pending:
        verified = await session.execute(
            select(User.id, User.email).where(
                User.email.in_(list(pending)), User.email_verified_at.is_not(None)
            )
        )
        for uid, email in verified.all():
            if uid not in audience or audience[uid] != "owner":
                audience[uid] = _best([audience.get(uid, "viewer"), *pending[email]]) or "viewer"
    return audience


async def folders_above(session: AsyncSession, user_id: str, document: Document) -> list[str]:
    """The live folders at and above a note (innermost first) that ``user_id`` may open: all of
    them for the owner; for anyone else, those at or below the outermost one shared with them
    (a folder shared with someone is open to them, and so is everything inside it). Someone who
    sees the note only through a share of the note itself opens none of them."""
    if document.folder_id is None:
        return []
    chain = _chain(await _live_parents(session, document.user_id), document.folder_id)
    if document.user_id == user_id:
        return chain
    granted = {i for _, i, _ in await _grants_from(session, user_id, document.user_id, ["folder"])}
    reach = max((n for n, folder_id in enumerate(chain) if folder_id in granted), default=-1)
    return chain[: reach + 1]


# -- everything shared with a user ---------------------------------------------------------------


def _chunks(ids: Sequence[str]) -> list[Sequence[str]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


async def visible_scope(session: AsyncSession, user_id: str) -> VisibleScope:
    """Everything shared with ``user_id`` right now, and the organisation spaces they are a
    member of now (live objects only; search and the palette build on it). Documents inside
    ``folder_ids`` are visible too, and notes and conversations in ``organisation_ids``."""
    rows = (
        await session.execute(
            select(Share.object_type, Share.object_id, Share.owner_id).where(
                granted_to(user_id), live_share(), Share.owner_id != user_id
            )
        )
    ).all()
    wanted: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for object_type, object_id, owner_id in rows:
        wanted[object_type][object_id].add(owner_id)

    async def owned(model: Any, ids: dict[str, set[str]], *live: Any) -> set[str]:
        found: set[str] = set()
        keys = list(ids)
        for chunk in _chunks(keys):
            result = await session.execute(
                select(model.id, model.user_id).where(model.id.in_(chunk), *live)
            )
            found.update(i for i, owner in result.all() if owner in ids[i])
        return found

    document_ids = await owned(Document, wanted["document"], Document.deleted_at.is_(None))
    conversation_ids = await owned(Conversation, wanted["conversation"])
    folder_ids: set[str] = set()
    by_owner: dict[str, set[str]] = defaultdict(set)
    for fid, owners in wanted["folder"].items():
        for owner in owners:
            by_owner[owner].add(fid)
    folder_owner: dict[str, str] = {}
    for owner, roots in by_owner.items():
        parents = await _live_parents(session, owner)
        children: dict[str | None, list[str]] = defaultdict(list)
        for fid, parent in parents.items():
            children[parent].append(fid)
        stack = [r for r in roots if r in parents]
        while stack:
            current = stack.pop()
            if current in folder_ids:
                continue
            folder_ids.add(current)
            folder_owner[current] = owner
            stack.extend(children.get(current, []))
    file_ids = await owned(File, wanted["file"])
    in_folders = sorted(folder_ids)
    for chunk in _chunks(in_folders):
        result = await session.execute(
            select(File.id, File.user_id, File.folder_id).where(File.folder_id.in_(chunk))
        )
        file_ids.update(i for i, owner, fid in result.all() if folder_owner.get(fid or "") == owner)
    # After the files: a member sees the notes in a space's folders, not its files (file_in).
    organisation_ids = frozenset(await session.scalars(member_organisations(user_id)))
    folder_ids |= await _space_folders(session, user_id, organisation_ids)
    return VisibleScope(
        user_id=user_id,
        document_ids=frozenset(document_ids),
        folder_ids=frozenset(folder_ids),
        conversation_ids=frozenset(conversation_ids),
        file_ids=frozenset(file_ids),
        organisation_ids=organisation_ids,
    )


async def _space_folders(
    session: AsyncSession, user_id: str, organisation_ids: frozenset[str]
) -> set[str]:
    """Other people's live folders in the spaces of ``organisation_ids``: those marked with
    one, and every folder below them that no mark puts in another space (``space_of``)."""
    if not organisation_ids:
        return set()
    marked = await session.execute(
        select(Folder.id, Folder.user_id).where(
            Folder.organisation_id.in_(sorted(organisation_ids)),
            Folder.deleted_at.is_(None),
            Folder.user_id != user_id,
        )
    )
    roots: dict[str, set[str]] = defaultdict(set)
    for fid, owner in marked.all():
        roots[owner].add(fid)
    found: set[str] = set()
    for owner, tops in roots.items():
        rows = await session.execute(
            select(Folder.id, Folder.parent_id, Folder.organisation_id).where(
                Folder.user_id == owner, Folder.deleted_at.is_(None)
            )
        )
        children: dict[str | None, list[str]] = defaultdict(list)
        mark: dict[str, str | None] = {}
        for fid, parent, space in rows.all():
            children[parent].append(fid)
            mark[fid] = space
        stack = list(tops)
        while stack:
            current = stack.pop()
            if current in found:
                continue
            found.add(current)
            stack.extend(
                child
                for child in children.get(current, [])
                if mark[child] is None or mark[child] in organisation_ids
            )
    return found


# -- organisations --------------------------------------------------------------------------------

OrganisationRole = Literal["member", "admin", "owner"]
ORGANISATION_RANK: dict[str, int] = {"member": 1, "admin": 2, "owner": 3}
NO_ORGANISATION = "No such organisation."


@dataclass(frozen=True)
class OrganisationAccess:
    """A user's membership of one organisation, read on this request."""

    organisation_id: str
    user_id: str
    role: OrganisationRole
    monthly_limit: int | None

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def can_manage(self) -> bool:
        """Owners and admins invite, remove, set limits and see usage per member."""
        return ORGANISATION_RANK[self.role] >= ORGANISATION_RANK["admin"]

    def require(self, role: OrganisationRole, action: str = "do this") -> None:
        """Refuse (403) a member who lacks ``role``: they may see the organisation exists."""
        if ORGANISATION_RANK[self.role] < ORGANISATION_RANK[role]:
            who = "the owner" if role == "owner" else "the owner and admins"
            raise Forbidden(f"Only {who} can {action}.", code=f"organisation_{role}_only")


async def organisation(db: Database, user_id: str, organisation_id: str) -> OrganisationAccess:
    """``user_id``'s membership of the organisation, read from the database now (a removed
    member is refused at the very next request), or ``NotFound`` for a non-member, exactly as
    for an organisation that does not exist."""
    from multinotes.organisations.models import OrganisationMember

    async with db.read() as session:
        row = (
            await session.execute(
                select(OrganisationMember.role, OrganisationMember.monthly_limit).where(
                    OrganisationMember.organisation_id == organisation_id,
                    OrganisationMember.user_id == user_id,
                )
            )
        ).one_or_none()
    if row is None:
        raise NotFound(NO_ORGANISATION)
    return OrganisationAccess(
        organisation_id, user_id, cast(OrganisationRole, row.role), row.monthly_limit
    )
