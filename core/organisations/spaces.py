"""Organisation spaces: folders, notes, conversations and prompt templates that belong to an
organisation (``multinotes.sharing.access`` decides, on every request): its members edit the
folders and notes, read the conversations, see and use the templates (the organisation's owner
and admins change them too).

Moving an item between a person's own space and an organisation's is an explicit action:

- into an organisation: the item's owner (who made it), being a member of it;
- out of one (to their own space, or another organisation they belong to): the owner, or the
  organisation's owner and admins (the item goes back to the space of the person who made it).

A folder moves with everything inside it. An item whose folder is in another space leaves that
folder (it moves to the top level), so a space never holds half a folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from multinotes.chat.models import Conversation, open_to_chat
from multinotes.db import Database
from multinotes.errors import Conflict, Forbidden, NotFound
from multinotes.identity.models import User
from multinotes.notes import service as notes
from multinotes.notes.models import Document, Folder
from multinotes.organisations.models import Organisation
from multinotes.prompts.models import PromptTemplate
from multinotes.prompts.service import visible_to as template_visible_to
from multinotes.sharing import access


@dataclass(frozen=True)
class Moved:
    kind: str  # "document", "folder", "conversation" or "template"
    id: str
    title: str
    before: str | None
    after: str | None


async def _may_move(
    db: Database, user_id: str, owner_id: str, current: str | None, target: str | None
) -> None:
    if target is not None:
        await access.organisation(db, user_id, target)  # 404 for a non-member
        if owner_id != user_id:
            raise Forbidden(
                "Only the person who made it can move it into an organisation.",
                code="owner_only",
            )
    if current is not None and owner_id != user_id:
        try:
            manager = await access.organisation(db, user_id, current)
        except NotFound:
            manager = None
        if manager is None or not manager.can_manage:
            raise Forbidden(
                "Only its owner, or the organisation's owner and admins, can move it out of "
                "the organisation.",
                code="organisation_admin_only",
            )


async def move_document(db: Database, user_id: str, document_id: str, target: str | None) -> Moved:
    """Move a note to ``target``'s space (None: its owner's own)."""
    async with db.read() as session:
        document, _ = await access.document_in(session, user_id, document_id)
        current = await access.space_of(
            session, document.user_id, document.organisation_id, document.folder_id
        )
        folder_space = (
            await access.space_of(session, document.user_id, None, document.folder_id)
            if document.folder_id
            else None
        )
    await _may_move(db, user_id, document.user_id, current, target)
    if document.folder_id is not None and folder_space != target:
        await notes.move_items(
            db, document.user_id, folder_ids=[], document_ids=[document.id], target_id=None
        )
    async with db.transaction() as session:
        await session.execute(
            update(Document).where(Document.id == document.id).values(organisation_id=target)
        )
    return Moved("document", document.id, document.title, current, target)


async def _subtree(db: Database, owner_id: str, folder_id: str) -> list[str]:
    async with db.read() as session:
        rows = (
            await session.execute(
                select(Folder.id, Folder.parent_id).where(Folder.user_id == owner_id)
            )
        ).all()
    children: dict[str | None, list[str]] = {}
    for fid, parent in rows:
        children.setdefault(parent, []).append(fid)
    found, stack = [], [folder_id]
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.append(current)
        stack.extend(children.get(current, []))
    return found


async def move_folder(db: Database, user_id: str, folder_id: str, target: str | None) -> Moved:
    """Move a folder, with every folder and note inside it, to ``target``'s space."""
    async with db.read() as session:
        folder, _ = await access.folder_in(session, user_id, folder_id)
        current = await access.space_of(session, folder.user_id, None, folder.id)
        parent_space = (
            await access.space_of(session, folder.user_id, None, folder.parent_id)
            if folder.parent_id
            else None
        )
    await _may_move(db, user_id, folder.user_id, current, target)
    if folder.parent_id is not None and parent_space != target:
        await notes.move_items(
            db, folder.user_id, folder_ids=[folder.id], document_ids=[], target_id=None
        )
    inside = await _subtree(db, folder.user_id, folder.id)
    async with db.transaction() as session:
        await session.execute(
            update(Folder)
            .where(Folder.user_id == folder.user_id, Folder.id.in_(inside))
            .values(organisation_id=target)
        )
        await session.execute(
            update(Document)
            .where(Document.user_id == folder.user_id, Document.folder_id.in_(inside))
            .values(organisation_id=target)
        )
    return Moved("folder", folder.id, folder.name, current, target)


async def move_conversation(
    db: Database, user_id: str, conversation_id: str, target: str | None
) -> Moved:
    """Move a conversation to ``target``'s space (None: its owner's own): the organisation's
    members then read it, and its owner's generations in it draw from that wallet."""
    async with db.read() as session:
        conversation, _ = await access.conversation_in(session, user_id, conversation_id)
    current = conversation.organisation_id
    await _may_move(db, user_id, conversation.user_id, current, target)
    async with db.transaction() as session:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(organisation_id=target)
        )
    return Moved("conversation", conversation.id, conversation.title, current, target)


async def paying_organisation(
    db: Database, user_id: str, conversation_id: str, org_id: str | None
) -> str | None:
    """Which organisation's wallet pays for ``user_id``'s prompt in their conversation: the
    one whose space the conversation is in (a request need not name it), else the request's
    ``org_id`` (absent: their own wallet). Naming another organisation than the space's is a
    409 (``conversation_in_other_space``): the wallet follows the space."""
    async with db.read() as session:
        space = await session.scalar(
            select(Conversation.organisation_id).where(
                Conversation.id == conversation_id, Conversation.user_id == user_id
            )
        )
    return payer_of(space, org_id)


def payer_of(space: str | None, org_id: str | None) -> str | None:
    """``paying_organisation`` for a conversation already read: ``space`` is its
    ``organisation_id``."""
    if space is None:
        return org_id
    if org_id is not None and org_id != space:
        raise Conflict(
            "This conversation is in another organisation's space: its wallet pays for it. "
            "Leave out org_id, or move the conversation first.",
            code="conversation_in_other_space",
            fields={"org_id": "must be the organisation whose space the conversation is in"},
        )
    return space


async def move_template(db: Database, user_id: str, template_id: str, target: str | None) -> Moved:
    """Move a prompt template to ``target``'s space (None: its owner's own library)."""
    async with db.read() as session:
        template = await session.scalar(
            select(PromptTemplate).where(
                PromptTemplate.id == template_id, template_visible_to(user_id)
            )
        )
    if template is None:
        raise NotFound("No such template.", code="template_not_found")
    if template.owner_id is None:
        raise Forbidden(
            "A built-in template belongs to everyone: it does not move into a space.",
            code="builtin_template",
        )
    current = template.organisation_id
    await _may_move(db, user_id, template.owner_id, current, target)
    async with db.transaction() as session:
        await session.execute(
            update(PromptTemplate)
            .where(PromptTemplate.id == template.id)
            .values(organisation_id=target)
        )
    return Moved("template", template.id, template.title, current, target)


async def contents(db: Database, organisation_id: str) -> tuple[list[Folder], list[Document]]:
    """The live folders and notes marked as the organisation's (the caller checked the
    membership), newest first."""
    async with db.read() as session:
        folders = list(
            await session.scalars(
                select(Folder)
                .where(Folder.organisation_id == organisation_id, Folder.deleted_at.is_(None))
                .order_by(Folder.name, Folder.id)
            )
        )
        documents = list(
            await session.scalars(
                select(Document)
                .where(Document.organisation_id == organisation_id, Document.deleted_at.is_(None))
                .order_by(Document.updated_at.desc(), Document.id)
            )
        )
    return folders, documents


async def shared_work(
    db: Database, organisation_id: str
) -> tuple[list[Conversation], list[PromptTemplate]]:
    """The conversations (not archived) and prompt templates in the organisation's space (the
    caller checked the membership), the latest first."""
    async with db.read() as session:
        conversations = list(
            await session.scalars(
                select(Conversation)
                .where(
                    Conversation.organisation_id == organisation_id,
                    Conversation.archived_at.is_(None),
                    open_to_chat(),
                )
                .order_by(Conversation.updated_at.desc(), Conversation.id)
                .limit(200)
            )
        )
        templates = list(
            await session.scalars(
                select(PromptTemplate)
                .where(PromptTemplate.organisation_id == organisation_id)
                .order_by(PromptTemplate.updated_at.desc(), PromptTemplate.id)
                .limit(200)
            )
        )
    return conversations, templates


#: How many of a space's conversations the chat sidebar lists (the organisation's page has all).
SIDEBAR_PER_SPACE = 5


@dataclass(frozen=True)
class SpaceConversation:
    id: str
    title: str
    updated_at: datetime
    owner_name: str
    organisation_id: str
    organisation_name: str


async def member_conversations(
    db: Database, user_id: str, *, q: str | None = None, per_space: int = SIDEBAR_PER_SPACE
) -> list[SpaceConversation]:
    """The conversations other members keep in the spaces of the organisations ``user_id``
    belongs to now (not archived; ``q``: titles holding it), for the chat sidebar: grouped by
    organisation (by name), the latest ``per_space`` of each, the latest first. The membership
    is read by this query (``access.in_member_space``): a removed member's next page has none."""
    ranked = select(
        Conversation.id,
        func.row_number()
        .over(
            partition_by=Conversation.organisation_id,
            order_by=(Conversation.updated_at.desc(), Conversation.id.desc()),
        )
        .label("place"),
    ).where(
        access.in_member_space(Conversation.organisation_id, user_id),
        Conversation.user_id != user_id,
        Conversation.archived_at.is_(None),
        open_to_chat(),
    )
    if q:
        escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        ranked = ranked.where(Conversation.title.ilike(f"%{escaped}%", escape="\\"))
    latest = ranked.subquery()
    query = (
        select(
            Conversation.id,
            Conversation.title,
            Conversation.updated_at,
            User.name.label("owner_name"),
            Organisation.id.label("organisation_id"),
            Organisation.name.label("organisation_name"),
        )
        .join(latest, latest.c.id == Conversation.id)
        .join(Organisation, Organisation.id == Conversation.organisation_id)
        .join(User, User.id == Conversation.user_id)
        .where(latest.c.place <= per_space)
        .order_by(
            Organisation.name, Organisation.id, Conversation.updated_at.desc(), Conversation.id
        )
    )
    async with db.read() as session:
        rows = (await session.execute(query)).all()
    return [SpaceConversation(**row._mapping) for row in rows]


async def own_personal_work(
    db: Database, user_id: str, limit: int = 50
) -> tuple[list[Conversation], list[PromptTemplate]]:
    """The user's latest conversations and templates in their own space (what they may bring
    into an organisation)."""
    async with db.read() as session:
        conversations = list(
            await session.scalars(
                select(Conversation)
                .where(
                    Conversation.user_id == user_id,
                    Conversation.organisation_id.is_(None),
                    Conversation.archived_at.is_(None),
                    open_to_chat(),
                )
                .order_by(Conversation.updated_at.desc(), Conversation.id)
                .limit(limit)
            )
        )
        templates = list(
            await session.scalars(
                select(PromptTemplate)
                .where(PromptTemplate.owner_id == user_id, PromptTemplate.organisation_id.is_(None))
                .order_by(PromptTemplate.updated_at.desc(), PromptTemplate.id)
                .limit(limit)
            )
        )
    return conversations, templates


async def own_personal_notes(db: Database, user_id: str, limit: int = 50) -> list[Document]:
    """The user's latest notes in their own space (what they may bring into an organisation)."""
    async with db.read() as session:
        return list(
            await session.scalars(
                select(Document)
                .where(
                    Document.user_id == user_id,
                    Document.organisation_id.is_(None),
                    Document.deleted_at.is_(None),
                )
                .order_by(Document.updated_at.desc(), Document.id)
                .limit(limit)
            )
        )
