"""The notes pages: ``/notes`` (the folder tree, the current folder's subfolders and notes as a
list or a grid, sorting, filtering, bulk moves and deletes), ``/notes/{id}`` (the editor),
``/notes/{id}/history`` (versions, diff, restore) and ``/trash``.

Pages are rendered on the server and call the notes service directly. Every change made with a
form is a POST that redirects back with a flash message, so it works without JavaScript;
``static/js/notes.js`` adds the folder drawer, drag and drop (it submits the same move form), the
"Move to…" dialog, bulk selection and the remembered view. ``static/js/note-editor.js`` drives
the JSON API from the editor: autosave (``PATCH /api/documents/{id}`` with the version the edit
is based on; a 409 shows the conflict banner) and re-runs (``POST /api/documents/{id}/rerun``,
streamed); the live preview is ``POST /notes/preview`` (sanitised Markdown, for htmx).

Who may open a note and whether they may change it is decided in one place, ``note_access``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from multinotes.assist import notes as assist_notes
from multinotes.collab import EditingLive, refuse_while_editing
from multinotes.db import utcnow
from multinotes.errors import AppError, Invalid, NotFound
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render, safe_next
from multinotes.identity.actor import require_user
from multinotes.keys import CATALOG, DB
from multinotes.markdown import render_markdown
from multinotes.notes import service as notes
from multinotes.notes.models import Document, Folder
from multinotes.sharing import access as sharing_access
from multinotes.web.files_pages import problem_text, storage_usage
from multinotes.web.workspace_pages import duration_text

routes = web.RouteTableDef()

NOTES_PAGE = 50
UNTITLED = "Untitled note"
VIEW_COOKIE = "mn_notes_view"
VIEWS = ("list", "grid")
SORTS = {
    "-updated": "Last edited",
    "updated": "Least recently edited",
    "-created": "Newest first",
    "created": "Oldest first",
    "title": "Title, A to Z",
    "-title": "Title, Z to A",
}
ID = re.compile(r"^[0-9a-f]{32}$")
ITEM = re.compile(r"^(folder|document):([0-9a-f]{32})$")
EXCERPT = 180
MAX_PREVIEW = 1_000_000


# -- the folder tree ----------------------------------------------------------------------------


@dataclass
class FolderNode:
    folder: Folder
    depth: int = 0
    children: list[FolderNode] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.folder.id

    @property
    def name(self) -> str:
        return self.folder.name


@dataclass
class Tree:
    roots: list[FolderNode]
    nodes: dict[str, FolderNode]

    def chain(self, folder_id: str | None) -> list[FolderNode]:
        """The folder and every folder above it, outermost first."""
        found: list[FolderNode] = []
        node = self.nodes.get(folder_id or "")
        while node is not None and node not in found:
            found.insert(0, node)
            node = self.nodes.get(node.folder.parent_id or "")
        return found

    def flat(self) -> list[FolderNode]:
        """Depth first, as the tree shows them (for "Move to…" choices)."""
        out: list[FolderNode] = []

        def walk(nodes: Iterable[FolderNode]) -> None:
            for node in nodes:
                out.append(node)
                walk(node.children)

        walk(self.roots)
        return out


def build_tree(folders: list[Folder]) -> Tree:
    """Nest the flat, name-sorted folder list; a folder whose parent is missing sits at the root."""
    nodes = {f.id: FolderNode(f) for f in folders}
    roots: list[FolderNode] = []
    for node in nodes.values():
        parent = nodes.get(node.folder.parent_id or "")
        (parent.children if parent is not None else roots).append(node)

    def set_depth(items: list[FolderNode], depth: int) -> None:
        for item in items:
            item.depth = depth
            set_depth(item.children, depth + 1)

    set_depth(roots, 0)
    return Tree(roots, nodes)


async def folder_tree(request: web.Request, user_id: str) -> Tree:
    return build_tree(await notes.list_folders(request.app[DB], user_id))


# -- rows ---------------------------------------------------------------------------------------


_MARKUP = re.compile(r"[#>*_`~|\[\]]+|!\[|\]\([^)]*\)|^-{3,}$|^\s*[-+]\s+", re.MULTILINE)


def excerpt(content: str, limit: int = EXCERPT) -> str:
    """The start of a note as plain text (Markdown punctuation dropped), cut at a word."""
    text = " ".join(_MARKUP.sub(" ", content).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return (cut or text[:limit]).rstrip(" ,.;:") + "…"


def when(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M")) + " UTC"


def note_row(document: Document) -> dict[str, Any]:
    return {
        "kind": "document",
        "id": document.id,
        "title": document.title,
        "excerpt": excerpt(document.content),
        "saved_answer": bool(document.provenance),
        "updated_at": document.updated_at,
        "updated_text": when(document.updated_at),
        "version": document.version,
        "url": f"/notes/{document.id}",
    }


def folder_row(node: FolderNode) -> dict[str, Any]:
    return {
        "kind": "folder",
        "id": node.id,
        "title": node.name,
        "subfolders": len(node.children),
        "updated_text": when(node.folder.updated_at),
        "url": f"/notes?folder={node.id}",
    }


def notes_url(**params: str | None) -> str:
    query = {k: v for k, v in params.items() if v}
    return "/notes" + ("?" + urlencode(query) if query else "")


# -- /notes -------------------------------------------------------------------------------------


def _view(request: web.Request) -> tuple[str, bool]:
    """The list/grid choice: ``?view=`` (remembered in a cookie), else the cookie."""
    asked = request.query.get("view")
    if asked in VIEWS:
        return asked, True
    remembered = request.cookies.get(VIEW_COOKIE)
    return (remembered if remembered in VIEWS else "list"), False


@routes.get("/notes", name="notes")
@page(access="user")
async def notes_index(request: web.Request) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    query = request.query
    tree = await folder_tree(request, actor.user_id)
    folder_id = query.get("folder") or None
    current = tree.nodes.get(folder_id or "") if folder_id else None
    if folder_id and current is None:
        raise NotFound("No such folder.")
    q = " ".join(query.get("q", "").split())[:200]
    sort = query.get("sort", "-updated")
    sort = sort if sort in SORTS else "-updated"
    cursor = query.get("cursor", "")[:500] or None
    view, asked = _view(request)
    try:
        documents, next_cursor = await notes.list_documents(
            db,
            actor.user_id,
            folder_id=folder_id or "root",
            q=q or None,
            sort=sort,
            cursor=cursor,
            limit=NOTES_PAGE,
        )
    except Invalid:  # a cursor from an older link: start from the top
        cursor = None
        documents, next_cursor = await notes.list_documents(
            db, actor.user_id, folder_id=folder_id or "root", q=q or None, sort=sort
        )
    # Accepted tags and one-line summaries (multinotes.assist), shown under each title.
    described = await assist_notes.details_for(db, actor.user_id, [d.id for d in documents])
    children = current.children if current is not None else tree.roots
    subfolders = [] if cursor else [n for n in children if q.casefold() in n.name.casefold()]
    if sort == "-title":
        subfolders = subfolders[::-1]
    params = {"folder": folder_id, "q": q, "sort": sort if sort != "-updated" else None}
    here = notes_url(**params)
    response = render(
        request,
        "notes/index.html",
        {
            "nav": "notes",
            "tree": tree,
            "current": current,
            "crumbs": tree.chain(folder_id),
            "expanded": {n.id for n in tree.chain(folder_id)},
            "folders": [folder_row(n) for n in subfolders],
            "documents": [{**note_row(d), **described.get(d.id, {})} for d in documents],
            "q": q,
            "sort": sort,
            "sorts": SORTS,
            "view": view,
            "view_urls": {v: notes_url(**params, view=v) for v in VIEWS},
            "here": here,
            "more_url": notes_url(**params, cursor=next_cursor) if next_cursor else None,
            "first_url": here if cursor else None,
            "usage": await storage_usage(request, actor.user_id),
            "share_enabled": True,  # the tree lists the person's own items
            "move_choices": tree.flat(),
        },
    )
    if asked:
        response.set_cookie(
            VIEW_COOKIE, view, max_age=365 * 24 * 3600, path="/", samesite="Lax", httponly=False
        )
    return response


# -- forms on /notes ----------------------------------------------------------------------------


def back(form: MultiDictProxy[Any], default: str = "/notes") -> str:
    target = safe_next(str(form.get("next", "")))
    return target if target != "/" else default


def chosen_items(form: MultiDictProxy[Any]) -> tuple[list[str], list[str]]:
    """The ``item`` fields ("folder:<id>" or "document:<id>") as folder ids and note ids."""
    folders: list[str] = []
    documents: list[str] = []
    for value in form.getall("item", []):
        match = ITEM.match(str(value))
        if match is None:
            raise Invalid("That selection names no folder or note.", fields={"item": "malformed"})
        (folders if match[1] == "folder" else documents).append(match[2])
    if not folders and not documents:
        raise Invalid("Select at least one folder or note first.", fields={"item": "required"})
    return folders, documents


def count_text(folders: int, documents: int) -> str:
    parts = []
    if folders:
        parts.append(f"{folders} folder{'s' if folders != 1 else ''}")
    if documents:
        parts.append(f"{documents} note{'s' if documents != 1 else ''}")
    return " and ".join(parts)


async def _folder_target(form: MultiDictProxy[Any]) -> str | None:
    target = str(form.get("target", "")).strip()
    if target in ("", "root"):
        return None
    if not ID.match(target):
        raise NotFound("No such folder.")
    return target


@routes.post("/notes/folders", name="notes_folder_create")
@page(access="user", rate="api")
async def folder_create(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    parent = str(form.get("parent", "")).strip() or None
    try:
        folder = await notes.create_folder(
            request.app[DB], actor.user_id, str(form.get("name", ""))[:200], parent
        )
    except NotFound:
        raise
    except AppError as exc:
        return redirect(back(form), problem_text(exc), "error")
    return redirect(back(form), f"Folder “{folder.name}” created.")


@routes.post("/notes/folders/{id}/rename", name="notes_folder_rename")
@page(access="user", rate="api")
async def folder_rename(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    try:
        folder = await notes.update_folder(
            request.app[DB],
            actor.user_id,
            request.match_info["id"],
            {"name": str(form.get("name", ""))[:200]},
        )
    except NotFound:
        raise
    except AppError as exc:
        return redirect(back(form), problem_text(exc), "error")
    return redirect(back(form), f"Folder renamed to “{folder.name}”.")


@routes.post("/notes/move", name="notes_move")
@page(access="user", rate="api")
async def move(request: web.Request) -> web.Response:
    """Move the chosen folders and notes (``item`` fields) into ``target`` ("" for the top)."""
    actor = require_user(request)
    form = await request.post()
    try:
        folders, documents = chosen_items(form)
        target = await _folder_target(form)
        await notes.move_items(
            request.app[DB],
            actor.user_id,
            folder_ids=folders,
            document_ids=documents,
            target_id=target,
        )
    except NotFound:
        raise
    except AppError as exc:
        return redirect(back(form), problem_text(exc), "error")
    where = "the top level"
    if target is not None:
        tree = await folder_tree(request, actor.user_id)
        where = f"“{tree.nodes[target].name}”" if target in tree.nodes else "the folder"
    return redirect(back(form), f"Moved {count_text(len(folders), len(documents))} to {where}.")


@routes.post("/notes/delete", name="notes_delete")
@page(access="user", rate="api")
async def delete(request: web.Request) -> web.Response:
    """Move the chosen folders and notes to the trash."""
    actor = require_user(request)
    form = await request.post()
    try:
        folders, documents = chosen_items(form)
        await notes.trash_items(
            request.app[DB], actor.user_id, folder_ids=folders, document_ids=documents
        )
    except NotFound:
        raise
    except AppError as exc:
        return redirect(back(form), problem_text(exc), "error")
    return redirect(
        back(form),
        f"Moved {count_text(len(folders), len(documents))} to the trash. "
        f"You can restore from the trash for {notes.TRASH_DAYS} days.",
    )


@routes.post("/notes/share", name="notes_share")
@page(access="user", rate="api")
async def share(request: web.Request) -> web.Response:
    """Share the chosen folders and notes with one person (``email``, ``role``).

    Every item is checked to be the sharer's before any is shared, so a selection that names
    someone else's item shares nothing."""
    from multinotes.sharing import actions as share_actions  # pulls in mail and tasks

    actor = require_user(request)
    form = await request.post()
    email = str(form.get("email", "")).strip()
    role = str(form.get("role", "viewer"))
    try:
        folders, documents = chosen_items(form)
        if not email:
            raise Invalid("Enter the email address to share with.", fields={"email": "required"})
        items = [("folder", i) for i in folders] + [("document", i) for i in documents]
        async with request.app[DB].read() as session:
            for object_type, object_id in items:
                _, rights = await sharing_access.object_in(
                    session, actor.user_id, object_type, object_id
                )
                rights.require("owner", "share it")
        for object_type, object_id in items:
            body = validate(
                share_actions.ShareIn,
                {
                    "object_type": object_type,
                    "object_id": object_id,
                    "email": email,
                    "role": role,
                },
            )
            await share_actions.create(request, body)
    except NotFound:
        raise
    except AppError as exc:
        return redirect(back(form), problem_text(exc), "error")
    return redirect(
        back(form), f"Shared {count_text(len(folders), len(documents))} with {email} ({role})."
    )


@routes.post("/notes/new", name="notes_new")
@page(access="user", rate="api")
async def new_note(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    folder = str(form.get("folder", "")).strip() or None
    if folder is not None and not ID.match(folder):
        raise NotFound("No such folder.")
    document = await notes.create_document(
        request.app[DB], actor.user_id, title=UNTITLED, content="", folder_id=folder
    )
    return redirect(f"/notes/{document.id}?new=1")


# -- /notes/{id} --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoteAccess:
    """A note as the person asking may use it."""

    document: Document
    #: Change the title and the text (autosave), restore versions, re-run the prompt.
    can_edit: bool
    #: Move, duplicate, delete and share it.
    is_owner: bool


async def note_access(request: web.Request, document_id: str) -> NoteAccess:
    """The one place that decides who may open a note and whether they may edit it: its owner,
    and the people it is shared with (``multinotes.sharing.access``: editors edit, viewers
    read); anyone else gets 404."""
    actor = require_user(request)
    document, rights = await sharing_access.document(request.app[DB], actor.user_id, document_id)
    return NoteAccess(document=document, can_edit=rights.can_edit, is_owner=rights.is_owner)


async def _model_names(request: web.Request) -> dict[str, dict[str, Any]]:
    entries = await request.app[CATALOG].entries(include_disabled=True)
    return {
        e.id: {"name": e.model.name, "provider": e.provider.name, "label": e.model.label}
        for e in entries
    }


def provenance_view(
    provenance: dict[str, Any] | None,
    names: dict[str, dict[str, Any]],
    conversation_role: str | None = "owner",
) -> dict[str, Any] | None:
    """Where a saved answer came from, ready to show: prompt, models, cost, time, links.

    Links go where the reader can open the conversation: the chat for its owner, the shared
    view (the whole thread, no single answer) for someone it is shared with, nowhere else."""
    if not provenance:
        return None
    conversation_id = provenance.get("conversation_id")
    conversation = conversation_id if conversation_role == "owner" else None
    if conversation_role is None or not conversation_id:
        conversation_url = None
    elif conversation_role == "owner":
        conversation_url = f"/chat/{conversation_id}"
    else:
        conversation_url = f"/shared/conversations/{conversation_id}"
    sources = []
    for source in provenance.get("sources", []):
        model = source.get("model") or ""
        known = names.get(model, {})
        cost = int(source.get("cost") or 0)
        sources.append(
            {
                "model": model,
                "name": known.get("name") or model or "Unknown model",
                "label": known.get("label"),
                "provider": known.get("provider") or source.get("provider") or "",
                "tokens": f"{int(source.get('input_tokens') or 0):,} in / "
                f"{int(source.get('output_tokens') or 0):,} out",
                "cost": f"{cost:,} credit{'s' if cost != 1 else ''}",
                "latency": duration_text(source.get("latency_ms")),
                "duration": duration_text(source.get("duration_ms")),
                "answered": _iso_text(source.get("created_at")),
                "answered_iso": _iso(source.get("created_at")),
                "options": {
                    k: v for k, v in (source.get("options") or {}).items() if v is not None
                },
                "url": f"/chat/{conversation}?leaf={source['message_id']}"
                if conversation and source.get("message_id")
                else None,
            }
        )
    reruns = []
    for rerun in reversed(provenance.get("reruns", [])):
        reruns.append(
            {
                "at": _iso_text(rerun.get("at")),
                "at_iso": _iso(rerun.get("at")),
                "answers": [
                    {
                        "name": names.get(a.get("model", ""), {}).get("name") or a.get("model"),
                        "url": f"/chat/{conversation}?leaf={a['message_id']}"
                        if conversation and a.get("message_id")
                        else None,
                    }
                    for a in rerun.get("answers", [])
                ],
            }
        )
    return {
        "kind": provenance.get("kind", "answer"),
        "prompt": provenance.get("prompt") or "",
        "saved": _iso_text(provenance.get("saved_at")),
        "saved_iso": _iso(provenance.get("saved_at")),
        "conversation_url": conversation_url,
        "sources": sources,
        "reruns": reruns,
        "models": [s["model"] for s in sources if s["model"]],
    }


def _iso(value: Any) -> str:
    """The moment as ISO 8601 for a <time datetime> ("" when it is not one)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value)).isoformat()
    except (TypeError, ValueError):
        return ""


def _iso_text(value: Any) -> str:
    from datetime import datetime

    try:
        return when(datetime.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return ""


async def rerun_models(request: web.Request, wanted: list[str]) -> list[dict[str, Any]]:
    """The text models a re-run may use, the saved answer's own ones first and ticked."""
    entries = [e for e in await request.app[CATALOG].entries() if e.available]
    choices = [
        {
            "id": e.id,
            "name": e.model.name,
            "label": e.model.label,
            "provider": e.provider.name,
            "checked": e.id in wanted,
        }
        for e in entries
        if "text" in e.model.capabilities or e.id in wanted
    ]
    choices.sort(key=lambda c: not c["checked"])
    return choices


@routes.get("/notes/{id}", name="note")
@page(access="user")
async def note_page(request: web.Request) -> web.Response:
    access = await note_access(request, request.match_info["id"])
    document = access.document
    tree = await folder_tree(request, document.user_id) if access.is_owner else None
    names = await _model_names(request)
    conversation_id = (document.provenance or {}).get("conversation_id")
    conversation_role = (
        await sharing_access.role_of(
            request.app[DB], require_user(request).user_id, "conversation", str(conversation_id)
        )
        if conversation_id
        else None
    )
    provenance = provenance_view(document.provenance, names, conversation_role)
    return render(
        request,
        "notes/note.html",
        {
            "nav": "notes",
            "document": document,
            "html": render_markdown(document.content),
            "can_edit": access.can_edit,
            "is_owner": access.is_owner,
            "crumbs": tree.chain(document.folder_id) if tree else [],
            "move_choices": tree.flat() if tree else [],
            "provenance": provenance,
            "rerun_models": await rerun_models(request, provenance["models"])
            if provenance and access.is_owner  # charged to, and asked in, the owner's chat
            else [],
            "new": request.query.get("new") == "1",
            "updated_text": when(document.updated_at),
            "share_enabled": access.is_owner,
            "collab_enabled": True,
        },
    )


@routes.post("/notes/preview", name="notes_preview")
@page(access="user", rate="api")
async def preview(request: web.Request) -> web.Response:
    """The Markdown in ``content`` rendered and sanitised (the editor's live preview)."""
    require_user(request)
    form = await request.post()
    content = str(form.get("content", ""))
    if len(content) > MAX_PREVIEW:
        html = "<p><em>This note is too long to preview.</em></p>"
    else:
        html = render_markdown(content)
    if not html.strip():
        html = '<p class="preview-empty">Nothing to preview yet.</p>'
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


@routes.post("/notes/{id}/duplicate", name="note_duplicate")
@page(access="user", rate="api")
async def duplicate(request: web.Request) -> web.Response:
    actor = require_user(request)
    source = await note_access(request, request.match_info["id"])
    if not source.is_owner:
        raise NotFound("No such document.")
    copy = await notes.duplicate_document(request.app[DB], actor.user_id, source.document.id)
    return redirect(f"/notes/{copy.id}", f"This is a copy of “{source.document.title}”.")


# -- /notes/{id}/history ------------------------------------------------------------------------


def _version_number(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit() or not 0 < int(raw) < 2**31:
        return None
    return int(raw)


@routes.get("/notes/{id}/history", name="note_history")
@page(access="user")
async def history(request: web.Request) -> web.Response:
    """Every version; ``?v=`` shows one with what changed between it and the current one."""
    access = await note_access(request, request.match_info["id"])
    document = access.document
    db = request.app[DB]
    versions = await notes.list_versions(db, document.user_id, document.id)
    asked = _version_number(request.query.get("v"))
    numbers = [v.version for v in versions]
    if asked is None or asked not in numbers:
        # By default the version before the current one: what the last save changed.
        asked = numbers[1] if len(numbers) > 1 else document.version
    selected = await notes.get_version(db, document.user_id, document.id, asked)
    current = await notes.get_version(db, document.user_id, document.id, document.version)
    diff = notes.diff_versions(selected, current) if selected.version != current.version else None
    return render(
        request,
        "notes/history.html",
        {
            "nav": "notes",
            "document": document,
            "can_edit": access.can_edit,
            "versions": [
                {
                    "version": v.version,
                    "title": v.title,
                    "when": when(v.created_at),
                    "size": len(v.content),
                    "current": v.version == document.version,
                }
                for v in versions
            ],
            "selected": selected,
            "selected_html": render_markdown(selected.content),
            "selected_when": when(selected.created_at),
            "diff": diff,
            "diff_lines": diff_view(diff["lines"]) if diff else [],
            "changes": _change_counts(diff),
        },
    )


def diff_view(lines: list[dict[str, Any]], context: int = 3) -> list[dict[str, Any]]:
    """The diff's lines with long unchanged stretches folded into one "N unchanged lines" row,
    keeping ``context`` lines around every change."""
    near = [False] * len(lines)
    for index, line in enumerate(lines):
        if line["op"] != "equal":
            for other in range(max(0, index - context), min(len(lines), index + context + 1)):
                near[other] = True
    out: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        if near[index] or line["op"] != "equal":
            out.append(line)
        elif out and out[-1]["op"] == "skip":
            out[-1]["count"] += 1
        else:
            out.append({"op": "skip", "count": 1})
    return out


def _change_counts(diff: dict[str, Any] | None) -> dict[str, int]:
    lines = diff["lines"] if diff else []
    return {
        "added": sum(1 for line in lines if line["op"] == "insert"),
        "removed": sum(1 for line in lines if line["op"] == "delete"),
    }


@routes.post("/notes/{id}/versions/{n}/restore", name="note_version_restore")
@page(access="user", rate="api")
async def restore_version(request: web.Request) -> web.Response:
    access = await note_access(request, request.match_info["id"])
    number = _version_number(request.match_info["n"])
    if number is None or not access.can_edit:
        raise NotFound("No such version.")
    try:
        await refuse_while_editing(request.app, access.document.id)
    except EditingLive:
        return redirect(
            f"/notes/{access.document.id}/history",
            "Not restored: this note is being edited live right now. Restore it once nobody "
            "has it open, or copy the text you need from this version.",
            "error",
        )
    document = await notes.restore_version(
        request.app[DB],
        access.document.user_id,
        access.document.id,
        number,
        by=require_user(request).user_id,
    )
    return redirect(
        f"/notes/{document.id}",
        f"Version {number} restored. It is saved as version {document.version}; "
        "nothing was lost: every earlier version is still in the history.",
    )


# -- /trash -------------------------------------------------------------------------------------


@routes.get("/trash", name="trash")
@page(access="user")
async def trash_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    found = await notes.list_trash(request.app[DB], actor.user_id)
    now = utcnow()
    items = []
    for item in [*found["folders"], *found["documents"]]:
        purge = item.deleted_at + timedelta(days=notes.TRASH_DAYS)
        remaining = purge - now
        left = max(0, math.ceil(remaining / timedelta(days=1)))
        is_folder = isinstance(item, Folder)
        items.append(
            {
                "kind": "folder" if is_folder else "document",
                "id": item.id,
                "title": item.name if is_folder else item.title,
                "deleted_at": item.deleted_at,
                "deleted_text": when(item.deleted_at),
                "days_left": left,
                "left_text": "less than a day left"
                if remaining < timedelta(days=1)
                else f"{left} day{'s' if left != 1 else ''} left",
            }
        )
    items.sort(key=lambda i: i["deleted_at"], reverse=True)
    return render(
        request,
        "notes/trash.html",
        {
            "nav": "notes",
            "items": items,
            "trash_days": notes.TRASH_DAYS,
            "tree": await folder_tree(request, actor.user_id),
            "usage": await storage_usage(request, actor.user_id),
            "current": None,
            "expanded": set(),
            "in_trash": True,
        },
    )


@routes.post("/trash/restore", name="trash_restore")
@page(access="user", rate="api")
async def trash_restore(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    match = ITEM.match(str(form.get("item", "")))
    if match is None:
        raise NotFound("Nothing like that is in the trash.")
    db = request.app[DB]
    if match[1] == "folder":
        folder = await notes.restore_folder(db, actor.user_id, match[2])
        return redirect(
            "/trash", f"Restored the folder “{folder.name}” with everything that was in it."
        )
    document = await notes.restore_document(db, actor.user_id, match[2])
    return redirect("/trash", f"Restored “{document.title}”.")
