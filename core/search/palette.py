"""The command palette (Ctrl/Cmd+K): quick matches by title over the conversations, notes and
folders a user can see, and the app's actions, each with where it goes.

Titles only, matched by prefix or substring (prefix first, then the most recently changed):
no full-text index and no embeddings, so it answers while the user types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, or_, select

from multinotes.chat.models import Conversation, open_to_chat
from multinotes.db import Database
from multinotes.notes.models import Document, Folder
from multinotes.sharing.access import visible_scope
from multinotes.sharing.service import object_path

PER_KIND = 6


@dataclass(frozen=True)
class Action:
    title: str
    url: str
    keywords: str = ""
    method: str = "get"
    admin: bool = False


#: Shown when the app serves their path (a page another part of the app may not have yet).
ACTIONS = (
    Action("New chat", "/chat", "conversation prompt ask"),
    Action("New note", "/notes/new", "create document write", method="post"),
    Action("Go to notes", "/notes", "folders documents"),
    Action("Search", "/search", "find"),
    Action("Go to files", "/files", "uploads storage"),
    Action("Shared with me", "/shared", "sharing"),
    Action("Go to trash", "/trash", "deleted restore"),
    Action("Go to usage", "/usage", "credits wallet balance billing"),
    Action("Compare models blind", "/comparisons", "arena vote comparison"),
    Action("Leaderboard", "/leaderboard", "ratings models ranking arena"),
    Action("Chains", "/chains", "steps workflow pipeline document pdf run prompts"),
    Action("Organisations", "/organisations", "team members invite shared wallet workspace"),
    Action("Account settings", "/account", "profile password keys sessions"),
    Action("API documentation", "/api/docs", "openapi developers"),
    Action("Plugins console", "/admin/plugins", "admin providers", admin=True),
    Action("Models console", "/admin/models", "admin prices", admin=True),
    Action("Users", "/admin/users", "admin accounts", admin=True),
)


def _pattern(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def actions_for(q: str, *, is_admin: bool, served: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The actions matching ``q`` whose route exists (``served``: (method, path) pairs)."""
    wanted = q.casefold().split()
    out = []
    for action in ACTIONS:
        if action.admin and not is_admin:
            continue
        if (action.method.upper(), action.url) not in served:
            continue
        words = f"{action.title} {action.keywords}".casefold().split()
        # Every word typed starts a word of the action ("new no" finds "New note").
        if not all(any(w.startswith(typed) for w in words) for typed in wanted):
            continue
        item: dict[str, Any] = {"kind": "action", "id": None, "title": action.title}
        item.update(url=action.url, hint="Action", method=action.method)
        out.append(item)
    return out


async def palette(db: Database, user_id: str, q: str) -> list[dict[str, Any]]:
    """Conversations, notes and folders whose title holds ``q`` (the most recent of each
    when ``q`` is empty), best first."""
    q = " ".join(q.split())[:100]
    lowered = q.lower()
    items: list[dict[str, Any]] = []
    async with db.read() as session:
        scope = await visible_scope(session, user_id)

        def ordered(query: Any, title: Any, updated: Any) -> Any:
            if not q:
                return query.order_by(updated.desc()).limit(PER_KIND)
            prefix = lowered.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            starts = case((func.lower(title).like(prefix, escape="\\"), 0), else_=1)
            return (
                query.where(func.lower(title).like(_pattern(lowered), escape="\\"))
                .order_by(starts, updated.desc())
                .limit(PER_KIND)
            )

        conversations = await session.execute(
            ordered(
                select(Conversation.id, Conversation.title, Conversation.user_id).where(
                    or_(
                        Conversation.user_id == user_id,
                        Conversation.id.in_(scope.conversation_ids),
                        Conversation.organisation_id.in_(scope.organisation_ids),
                    ),
                    open_to_chat(),
                ),
                Conversation.title,
                Conversation.updated_at,
            )
        )
        notes = await session.execute(
            ordered(
                select(Document.id, Document.title, Document.user_id).where(
                    Document.deleted_at.is_(None),
                    or_(
                        Document.user_id == user_id,
                        Document.id.in_(scope.document_ids),
                        Document.folder_id.in_(scope.folder_ids),
                        Document.organisation_id.in_(scope.organisation_ids),
                    ),
                ),
                Document.title,
                Document.updated_at,
            )
        )
        folders = await session.execute(
            ordered(
                select(Folder.id, Folder.name, Folder.user_id).where(
                    Folder.deleted_at.is_(None),
                    or_(Folder.user_id == user_id, Folder.id.in_(scope.folder_ids)),
                ),
                Folder.name,
                Folder.updated_at,
            )
        )
        for did, title, owner in notes.all():
            url = f"/notes/{did}" if owner == user_id else object_path("document", did)
            items.append(_item("note", did, title, url, "Note", owner != user_id))
        for cid, title, owner in conversations.all():
            url = f"/chat/{cid}" if owner == user_id else object_path("conversation", cid)
            items.append(_item("conversation", cid, title, url, "Chat", owner != user_id))
        for fid, name, owner in folders.all():
            url = f"/notes?folder={fid}" if owner == user_id else object_path("folder", fid)
            items.append(_item("folder", fid, name, url, "Folder", owner != user_id))
    if q:
        # Prefix matches of every kind before substring matches of any.
        items.sort(key=lambda i: not i["title"].lower().startswith(lowered))
    return items


def _item(kind: str, item_id: str, title: str, url: str, hint: str, shared: bool) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": item_id,
        "title": title,
        "url": url,
        "hint": f"{hint} · shared" if shared else hint,
        "method": "get",
    }
