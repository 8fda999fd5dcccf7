"""Sharing in the browser.

- ``/share/dialog?object_type=…&object_id=…``: the share dialog (share with a person, make a
  public link, change or revoke current shares). For htmx it is a fragment (a ``<dialog>``) the
  notes pages load into ``#dialog-slot``; opened directly it is a page, so it works without
  JavaScript. Its forms post to ``/share/dialog``, ``/share/{id}/update`` and
  ``/share/{id}/revoke`` and get the dialog back.
- ``/documents/{id}/collab``: a note's comments (with the form to add one) and activity feed, a
  fragment the note page loads; its forms get the fragment back.
- ``/shared`` ("Shared with me" and "Shared by me"), and read-only pages for folders, files and
  conversations shared with you (shared notes open in the note page, ``/notes/{id}``).
- ``/notifications`` and the bell's count (``/notifications/badge``).
- ``/s/{token}``: a public link, for anyone, logged in or not: read-only, ``noindex``, 404 for a
  link that never existed and 410 for a revoked or expired one, a password form (rate limited,
  CSRF-checked as every form) for protected links, and "Save a copy to my workspace".
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from limits import RateLimitItemPerMinute
from sqlalchemy import select

from multinotes.arena import service as arena
from multinotes.arena.models import ArenaComparison
from multinotes.chat import service as chat
from multinotes.chat.models import Message, MessageMedia
from multinotes.errors import AppError, Invalid, NotFound, RateLimited
from multinotes.files.models import File
from multinotes.http.downloads import content_disposition
from multinotes.http.endpoint import page, validate
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import current_actor, require_user
from multinotes.keys import CATALOG, DB, RATE_LIMITS, SETTINGS
from multinotes.markdown import render_markdown
from multinotes.notes.models import Document, Folder
from multinotes.sharing import access, comments, notifications
from multinotes.sharing import actions as share_actions
from multinotes.sharing import service as sharing
from multinotes.sharing.activity import list_activity
from multinotes.sharing.models import OBJECT_TYPES, Share
from multinotes.sharing.schemas import NotificationQuery
from multinotes.storage import FILE_STORAGE, objects

routes = web.RouteTableDef()

ID = re.compile(r"^[0-9a-f]{32}$")
TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
UNLOCK_COOKIE = "mn_link"
UNLOCK_SECONDS = 12 * 3600
#: Password guesses per public link, whoever makes them (the "auth" class limits each client).
LINK_PASSWORD_LIMIT = RateLimitItemPerMinute(10)
KIND_LABELS = {
    "document": "Note",
    "folder": "Folder",
    "file": "File",
    "conversation": "Chat",
    "comparison": "Comparison",
}
ACTIVITY_FEED = 30


def is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _object_params(values: Any) -> tuple[str, str]:
    object_type, object_id = str(values.get("object_type", "")), str(values.get("object_id", ""))
    if object_type not in OBJECT_TYPES or not ID.match(object_id):
        raise NotFound()
    return object_type, object_id


def _end_of_day(value: str, field: str) -> datetime | None:
    """A date from a date input: access lasts to the end of that day (UTC)."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise Invalid(fields={field: "not a date (YYYY-MM-DD)"}) from None
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)


# -- the share dialog -----------------------------------------------------------------------------


async def _dialog(
    request: web.Request, object_type: str, object_id: str, status: int = 200, **extra: Any
) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    async with db.read() as session:
        obj, rights = await access.object_in(session, actor.user_id, object_type, object_id)
    rights.require("owner", "share it")
    shares = await sharing.shares_by(
        db, actor.user_id, object_type=object_type, object_id=object_id
    )
    context = {
        "nav": "shared",
        "object_type": object_type,
        "object_id": object_id,
        "kind_label": KIND_LABELS[object_type].lower(),
        "title": sharing.title_of(obj),
        "roles": sharing.ROLES_FOR[object_type],
        "people": [s for s in shares if not s["public"]],
        "links": [s for s in shares if s["public"]],
        "fields": {},
        "values": {},
        **extra,
    }
    if is_htmx(request):
        # A failed form is still shown in the dialog (htmx swaps only successful answers).
        return aiohttp_jinja2.render_template("sharing/_dialog.html", request, context)
    return render(request, "sharing/dialog_page.html", context, status=status)


@routes.get("/share/dialog", name="share_dialog")
@page(access="user")
async def share_dialog(request: web.Request) -> web.Response:
    object_type, object_id = _object_params(request.query)
    return await _dialog(request, object_type, object_id)


@routes.post("/share/dialog", name="share_dialog_submit")
@page(access="user", rate="api")
async def share_dialog_submit(request: web.Request) -> web.Response:
    form = await request.post()
    object_type, object_id = _object_params(form)
    public = form.get("kind") == "public"
    values = {k: str(form.get(k, "")) for k in ("email", "role", "expires")}
    try:
        data: dict[str, Any] = {
            "object_type": object_type,
            "object_id": object_id,
            "public": public,
            "role": values["role"] or "viewer",
            "expires_at": _end_of_day(values["expires"], "expires"),
        }
        if public:
            data["password"] = str(form.get("password", "")) or None
        else:
            data["email"] = values["email"].strip()
        body = validate(share_actions.ShareIn, data)
        created = await share_actions.create(request, body)
    except Invalid as exc:
        fields = {("expires" if k == "expires_at" else k): v for k, v in exc.fields.items()}
        form_name = "link" if public else "person"
        return await _dialog(
            request,
            object_type,
            object_id,
            status=exc.status,
            error=exc.message,
            error_form=form_name,
            fields=fields,
            values=values,
        )
    link = share_actions.public_link(request, created.token) if created.token else None
    message = (
        "Public link created. Copy it now: it is shown only once."
        if link
        else f"Shared with {created.share.recipient_email}."
    )
    return await _dialog(request, object_type, object_id, message=message, new_link=link)


@routes.post("/share/{id}/update", name="share_update")
@page(access="user", rate="api")
async def share_update(request: web.Request) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    share = await sharing.own_share(db, actor.user_id, request.match_info["id"])
    form = await request.post()
    changes: dict[str, Any] = {}
    if form.get("role"):
        changes["role"] = str(form["role"])
    if "expires" in form:
        changes["expires_at"] = None
    try:
        if form.get("expires"):
            changes["expires_at"] = _end_of_day(str(form["expires"]), "expires")
        await sharing.update_share(db, actor.user_id, share.id, changes)
    except Invalid as exc:
        return await _dialog(
            request, share.object_type, share.object_id, status=exc.status, error=exc.message
        )
    if not is_htmx(request) and form.get("back") == "shared":
        return redirect("/shared?tab=by-me", "Share updated.")
    return await _dialog(request, share.object_type, share.object_id, message="Share updated.")


@routes.post("/share/{id}/revoke", name="share_revoke")
@page(access="user", rate="api")
async def share_revoke(request: web.Request) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    share = await sharing.own_share(db, actor.user_id, request.match_info["id"])
    form = await request.post()
    await sharing.revoke_share(db, actor.user_id, share.id)
    what = "Public link revoked." if share.is_public else f"{share.recipient_email} removed."
    if not is_htmx(request) and form.get("back") == "shared":
        return redirect("/shared?tab=by-me", what)
    return await _dialog(request, share.object_type, share.object_id, message=what)


# -- comments and activity ------------------------------------------------------------------------


async def _collab(request: web.Request, document_id: str, **extra: Any) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    document, rights = await access.document(db, actor.user_id, document_id)
    context = {
        "document": document,
        "role": rights.role,
        "comments": await comments.list_comments(db, actor.user_id, document.id),
        "activity": await list_activity(db, actor.user_id, document.id, ACTIVITY_FEED),
        "people": await comments.mentionable(db, actor.user_id, document.id),
        "fields": {},
        **extra,
    }
    return aiohttp_jinja2.render_template("sharing/_collab.html", request, context)


def _back_to_note(document_id: str, message: str, kind: str = "success") -> web.Response:
    return redirect(f"/notes/{document_id}#note-collab", message, kind)


@routes.get("/documents/{id}/collab", name="document_collab")
@page(access="user")
async def document_collab(request: web.Request) -> web.Response:
    return await _collab(request, request.match_info["id"])


@routes.post("/documents/{id}/comments", name="document_comment_add")
@page(access="user", rate="api")
async def document_comment_add(request: web.Request) -> web.Response:
    document_id = request.match_info["id"]
    form = await request.post()
    body = str(form.get("body", ""))
    try:
        await share_actions.add_comment(request, document_id, body)
    except Invalid as exc:
        if not is_htmx(request):
            return _back_to_note(document_id, exc.message, "error")
        return await _collab(request, document_id, error=exc.message, draft=body)
    if not is_htmx(request):
        return _back_to_note(document_id, "Comment added.")
    return await _collab(request, document_id)


@routes.post("/comments/{id}/edit", name="comment_edit")
@page(access="user", rate="api")
async def comment_edit(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    document_id = str(form.get("document_id", ""))
    try:
        edited = await comments.edit_comment(
            request.app[DB], actor, request.match_info["id"], str(form.get("body", ""))
        )
    except Invalid as exc:
        if not ID.match(document_id):
            raise
        if not is_htmx(request):
            return _back_to_note(document_id, exc.message, "error")
        return await _collab(request, document_id, error=exc.message)
    if not is_htmx(request):
        return _back_to_note(edited["document_id"], "Comment saved.")
    return await _collab(request, edited["document_id"])


@routes.post("/comments/{id}/delete", name="comment_delete")
@page(access="user", rate="api")
async def comment_delete(request: web.Request) -> web.Response:
    actor = require_user(request)
    document_id = await comments.delete_comment(
        request.app[DB], actor.user_id, request.match_info["id"]
    )
    if not is_htmx(request):
        return _back_to_note(document_id, "Comment deleted.")
    return await _collab(request, document_id)


# -- shared with me, shared by me ---------------------------------------------------------------


@routes.get("/shared", name="shared")
@page(access="user")
async def shared_index(request: web.Request) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    tab = "by-me" if request.query.get("tab") == "by-me" else "with-me"
    context: dict[str, Any] = {"nav": "shared", "tab": tab, "kind_labels": KIND_LABELS}
    if tab == "by-me":
        context["shares"] = await sharing.shares_by(db, actor.user_id)
    else:
        context["items"] = await sharing.shared_with(db, actor.user_id)
    return render(request, "sharing/shared.html", context)


@routes.get("/shared/folders/{id}", name="shared_folder")
@page(access="user")
async def shared_folder(request: web.Request) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    folder, rights = await access.folder(db, actor.user_id, request.match_info["id"])
    folders, documents, stored = await sharing.folder_contents(db, rights.owner_id, folder.id)
    parent = None
    if folder.parent_id and await access.role_of(db, actor.user_id, "folder", folder.parent_id):
        parent = folder.parent_id
    return render(
        request,
        "sharing/folder.html",
        {
            "nav": "shared",
            "folder": folder,
            "role": rights.role,
            "parent_id": parent,
            "folders": folders,
            "documents": documents,
            "files": stored,
            "owner": await _owner_name(request, rights.owner_id),
        },
    )


@routes.get("/shared/files/{id}", name="shared_file")
@page(access="user")
async def shared_file(request: web.Request) -> web.Response:
    actor = require_user(request)
    row, rights = await access.file(request.app[DB], actor.user_id, request.match_info["id"])
    return render(
        request,
        "sharing/file.html",
        {
            "nav": "shared",
            "file": row,
            "role": rights.role,
            "owner": await _owner_name(request, rights.owner_id),
            "content_url": f"/api/files/{row.id}/content",
        },
    )


@routes.get("/shared/conversations/{id}", name="shared_conversation")
@page(access="user")
async def shared_conversation(request: web.Request) -> web.Response:
    actor = require_user(request)
    db = request.app[DB]
    conversation, rights = await access.conversation(db, actor.user_id, request.match_info["id"])
    tree = await chat.load_tree(db, rights.owner_id, conversation.id)
    return render(
        request,
        "sharing/conversation.html",
        {
            "nav": "shared",
            "conversation": conversation,
            "turns": thread_turns(tree, lambda m: f"/api/media/{m.id}"),
            "owner": await _owner_name(request, rights.owner_id),
        },
    )


async def _owner_name(request: web.Request, owner_id: str) -> str:
    from multinotes.identity import service as identity

    return (await identity.get_user(request.app[DB], owner_id)).name


def thread_turns(tree: chat.Tree, media_url: Any) -> list[dict[str, Any]]:
    """The conversation's current branch (root to the newest message) as turns: each prompt with
    every answer to it (several models, regenerated variants), oldest first."""
    if not tree.messages:
        return []
    children: dict[str | None, list[Message]] = defaultdict(list)
    for message in tree.messages:
        children[message.parent_id].append(message)
    newest = max(tree.messages, key=lambda m: (m.created_at, m.id))
    path = chat.path_to(tree.messages, newest.id)
    turns = []
    for message in path:
        if message.role != "user":
            continue
        answers = [
            {
                "model": answer.model_id or "",
                "status": answer.status,
                "html": render_markdown(answer.content),
                "media": [
                    {"url": media_url(m), "type": m.media_type, "name": m.name}
                    for m in tree.media.get(answer.id, [])
                ],
            }
            for answer in children.get(message.id, [])
            if answer.role == "assistant"
        ]
        turns.append({"prompt": message.content, "answers": answers})
    return turns


# -- notifications ------------------------------------------------------------------------------


@routes.get("/notifications", name="notifications")
@page(access="user")
async def notifications_page(request: web.Request) -> web.Response:
    actor = require_user(request)
    # The API's query model: a malformed cursor is a 422 naming ``before``, as in the API.
    query = validate(NotificationQuery, {"before": request.query.get("before") or None})
    rows, cursor, unread = await notifications.list_notifications(
        request.app[DB], actor.user_id, before=query.before, limit=30
    )
    return render(
        request,
        "sharing/notifications.html",
        {
            "nav": "notifications",
            "notifications": [notifications.notification_out(n) for n in rows],
            "next_cursor": cursor,
            "unread": unread,
        },
    )


@routes.get("/notifications/badge", name="notifications_badge")
@page(access="user")
async def notifications_badge(request: web.Request) -> web.Response:
    actor = require_user(request)
    unread = await notifications.unread_count(request.app[DB], actor.user_id)
    response = aiohttp_jinja2.render_template("sharing/_badge.html", request, {"unread": unread})
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.post("/notifications/read", name="notifications_read")
@page(access="user")
async def notifications_read(request: web.Request) -> web.Response:
    actor = require_user(request)
    await notifications.mark_read(request.app[DB], actor.user_id, None)
    return redirect("/notifications", "All notifications marked read.")


@routes.get("/notifications/{id}/open", name="notification_open")
@page(access="user")
async def notification_open(request: web.Request) -> web.Response:
    """Follow a notification, marking it read (it only ever leads to a path on this site)."""
    actor = require_user(request)
    target = await notifications.open_notification(
        request.app[DB], actor.user_id, request.match_info["id"]
    )
    return redirect(target if target.startswith("/") and not target.startswith("//") else "/")


# -- public links -------------------------------------------------------------------------------


def _public_headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "no-store"
    return response


def _unlocked(request: web.Request, share: Share) -> bool:
    if share.password_hash is None:
        return True
    return sharing.proof_matches(
        request.app[SETTINGS].master_keys(), share, request.cookies.get(UNLOCK_COOKIE)
    )


async def _public(request: web.Request) -> tuple[str, Share, Any]:
    token = request.match_info["token"]
    if not TOKEN.match(token):
        raise NotFound("No such link.")
    share, obj = await sharing.public_share(request.app[DB], token)
    return token, share, obj


def _public_page(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.StreamResponse:
    return _public_headers(render(request, template, {"nav": "", **context}, status=status))


def _locked(request: web.Request, token: str, share: Share, **extra: Any) -> web.StreamResponse:
    status = extra.pop("status", 200)
    return _public_page(
        request,
        "sharing/public_password.html",
        {"token": token, "kind_label": KIND_LABELS[share.object_type].lower(), **extra},
        status=status,
    )


async def _public_context(
    request: web.Request, token: str, share: Share, obj: Any
) -> dict[str, Any]:
    db = request.app[DB]
    base = f"/s/{token}"
    context: dict[str, Any] = {
        "token": token,
        "base": base,
        "share": share,
        "owner": await _owner_name(request, share.owner_id),
        "kind": share.object_type,
        "can_copy": share.object_type in ("document", "folder"),
    }
    if isinstance(obj, Document):
        context.update(title=obj.title, html=render_markdown(obj.content), updated=obj.updated_at)
    elif isinstance(obj, Folder):
        folders, documents, stored = await sharing.folder_contents(db, share.owner_id, obj.id)
        context.update(title=obj.name, folders=folders, documents=documents, files=stored)
    elif isinstance(obj, File):
        context.update(title=obj.name, file=obj, file_url=f"{base}/files/{obj.id}")
    elif isinstance(obj, ArenaComparison):
        # As its owner sees it: the models only once voted (nothing names them before).
        shown = arena.comparison_out(await arena.load(db, share.owner_id, obj.id), is_owner=False)
        names = (
            {e.id: e.model.name for e in await request.app[CATALOG].entries(include_disabled=True)}
            if shown["revealed"]
            else {}
        )
        context.update(title=sharing.title_of(obj), comparison=shown, names=names)
    else:
        tree = await chat.load_tree(db, share.owner_id, obj.id)
        context.update(title=obj.title, turns=thread_turns(tree, lambda m: f"{base}/media/{m.id}"))
    return context


@routes.get("/s/{token}", name="share_public")
@page(access="public")
async def public_link(request: web.Request) -> web.StreamResponse:
    token, share, obj = await _public(request)
    if not _unlocked(request, share):
        return _locked(request, token, share)
    if request.method == "GET":  # a HEAD request (link previews, checkers) is not a view
        await sharing.count_view(request.app[DB], share.id)
    context = await _public_context(request, token, share, obj)
    return _public_page(request, "sharing/public.html", context)


@routes.post("/s/{token}/unlock", name="share_public_unlock")
@page(access="public", rate="auth")
async def public_unlock(request: web.Request) -> web.StreamResponse:
    token, share, _ = await _public(request)
    form = await request.post()
    limits = request.app[RATE_LIMITS]
    if limits.enabled and not await limits.limiter.hit(
        LINK_PASSWORD_LIMIT, "share_password", share.id
    ):
        raise RateLimited("Too many wrong passwords for this link. Try again in a minute.")
    if not await sharing.check_link_password(share, str(form.get("password", ""))):
        return _locked(request, token, share, error="That password is not right.", status=403)
    response = redirect(f"/s/{token}")
    response.set_cookie(
        UNLOCK_COOKIE,
        sharing.unlock_proof(request.app[SETTINGS].master_keys()[0], share),
        max_age=UNLOCK_SECONDS,
        path=f"/s/{token}",
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].secure_cookies,
    )
    return response


async def _unlocked_share(request: web.Request) -> tuple[str, Share, Any]:
    token, share, obj = await _public(request)
    if not _unlocked(request, share):
        raise web.HTTPSeeOther(f"/s/{token}")
    return token, share, obj


@routes.get("/s/{token}/folders/{folder_id}", name="share_public_folder")
@page(access="public")
async def public_folder(request: web.Request) -> web.StreamResponse:
    token, share, obj = await _unlocked_share(request)
    folder_id = request.match_info["folder_id"]
    if not isinstance(obj, Folder) or not await sharing.within(
        request.app[DB], share.owner_id, obj.id, folder_id
    ):
        raise NotFound()
    async with request.app[DB].read() as session:
        inner = await session.get(Folder, folder_id)
    assert inner is not None
    context = await _public_context(request, token, share, inner)
    context["parent_id"] = inner.parent_id if inner.id != obj.id else None
    return _public_page(request, "sharing/public.html", context)


@routes.get("/s/{token}/documents/{document_id}", name="share_public_document")
@page(access="public")
async def public_document(request: web.Request) -> web.StreamResponse:
    token, share, obj = await _unlocked_share(request)
    db = request.app[DB]
    async with db.read() as session:
        document = await session.scalar(
            select(Document).where(
                Document.id == request.match_info["document_id"],
                Document.user_id == share.owner_id,
                Document.deleted_at.is_(None),
            )
        )
    if document is None or not (
        (isinstance(obj, Document) and obj.id == document.id)
        or (
            isinstance(obj, Folder)
            and await sharing.within(db, share.owner_id, obj.id, document.folder_id)
        )
    ):
        raise NotFound()
    context = await _public_context(request, token, share, document)
    context.update(kind="document", can_copy=False, parent_id=document.folder_id)
    return _public_page(request, "sharing/public.html", context)


@routes.get("/s/{token}/files/{file_id}", name="share_public_file")
@page(access="public")
async def public_file(request: web.Request) -> web.StreamResponse:
    _, share, obj = await _unlocked_share(request)
    db = request.app[DB]
    async with db.read() as session:
        row = await session.scalar(
            select(File).where(
                File.id == request.match_info["file_id"], File.user_id == share.owner_id
            )
        )
    if row is None or not (
        (isinstance(obj, File) and obj.id == row.id)
        or (
            isinstance(obj, Folder)
            and await sharing.within(db, share.owner_id, obj.id, row.folder_id)
        )
    ):
        raise NotFound()
    disposition = content_disposition(row)
    if request.query.get("download"):
        disposition = "attachment" + disposition[disposition.index(";") :]
    headers = {
        "Content-Type": row.content_type
        + ("; charset=utf-8" if row.content_type.startswith("text/") else ""),
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex, nofollow",
        "Cache-Control": "no-store",
    }
    if row.content_type != "application/pdf":
        headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response = web.StreamResponse(headers=headers)
    response.content_length = row.size
    await response.prepare(request)
    async for chunk in request.app[FILE_STORAGE].read(row.storage_key):
        await response.write(chunk)
    await response.write_eof()
    return response


@routes.get("/s/{token}/media/{media_id}", name="share_public_media")
@page(access="public")
async def public_media(request: web.Request) -> web.StreamResponse:
    _, share, obj = await _unlocked_share(request)
    if share.object_type != "conversation":
        raise NotFound()
    async with request.app[DB].read() as session:
        item = await session.scalar(
            select(MessageMedia)
            .join(Message, Message.id == MessageMedia.message_id)
            .where(
                MessageMedia.id == request.match_info["media_id"],
                Message.conversation_id == obj.id,
            )
        )
    if item is None:
        raise NotFound()
    inline = (
        item.media_type.split("/")[0] in ("image", "audio", "video")
        and item.media_type != "image/svg+xml"
    )
    return await objects.serve(
        request,
        objects.storage_of(request.app),
        objects.key_of(item.path),
        {
            "Content-Type": item.media_type,
            "Content-Disposition": "inline" if inline else "attachment",
            "X-Robots-Tag": "noindex, nofollow",
            "Cache-Control": "no-store",
        },
    )


@routes.post("/s/{token}/copy", name="share_public_copy")
@page(access="public", rate="api")
async def public_copy(request: web.Request) -> web.StreamResponse:
    token, share, obj = await _unlocked_share(request)
    if current_actor(request) is None:
        return redirect(f"/login?next=/s/{token}", "Log in to save a copy to your workspace.")
    actor = require_user(request)
    try:
        kind, new_id = await sharing.save_copy(request.app[DB], actor.user_id, share, obj)
    except AppError as exc:
        return redirect(f"/s/{token}", exc.message, "error")
    if kind == "document":
        return redirect(f"/notes/{new_id}", "Saved a copy to your notes.")
    return redirect(f"/notes?folder={new_id}", "Saved a copy of the folder to your notes.")
