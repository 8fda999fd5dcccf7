"""Comments on notes, with @mentions.

Anyone who can see a note may comment on it. A comment's author edits and deletes it; the note's
owner may delete any comment on it. Bodies are Markdown, rendered sanitised.

``@`` followed by the email address or the display name of someone who can see the note mentions
them: they get a notification and a mail. Whether a name is a mention is decided against the
people who can see the note (longest names first, so "@Ann Lee" is not taken for "@Ann"); a
mention of anyone else is plain text and tells nobody anything.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.db import Database, utcnow
from multinotes.domain_events import (
    COMMENT_CREATED,
    COMMENT_EDITED,
    CommentCreated,
    CommentEdited,
    stage,
)
from multinotes.errors import Forbidden, Invalid, NotFound
from multinotes.identity.actor import Actor
from multinotes.identity.models import User
from multinotes.markdown import render_markdown
from multinotes.notes.models import Document
from multinotes.sharing import access
from multinotes.sharing.models import Comment, DocumentActivity

MAX_BODY = 20_000


def clean_body(body: str) -> str:
    body = body.strip()
    if not body:
        raise Invalid("A comment cannot be empty.", fields={"body": "must not be blank"})
    if len(body) > MAX_BODY:
        raise Invalid(
            f"A comment can be at most {MAX_BODY} characters long.",
            fields={"body": f"at most {MAX_BODY} characters"},
        )
    return body


def find_mentions(body: str, people: list[tuple[str, str, str]]) -> list[str]:
    """The ids of the ``people`` (id, name, email) that ``body`` mentions, in order of
    appearance. ``@email`` and ``@Display Name`` both work, case-insensitively; a name must end
    at a word boundary ("@Ann" does not mention "Anna")."""
    found: dict[str, int] = {}
    taken: list[tuple[int, int]] = []
    candidates: list[tuple[str, str]] = []
    for user_id, name, email in people:
        candidates.append((email, user_id))
        if name.strip():
            candidates.append((" ".join(name.split()), user_id))
    # Longest first: "@Ann Lee" wins over "@Ann" where both would match.
    candidates.sort(key=lambda pair: len(pair[0]), reverse=True)
    for label, user_id in candidates:
        pattern = re.compile(r"(?<![\w@.])@" + re.escape(label) + r"(?![\w@-])", re.IGNORECASE)
        for match in pattern.finditer(body):
            span = (match.start(), match.end())
            if any(span[0] < end and start < span[1] for start, end in taken):
                continue
            taken.append(span)
            found.setdefault(user_id, span[0])
    return sorted(found, key=lambda uid: found[uid])


async def _people(session: AsyncSession, document: Document) -> list[tuple[str, str, str]]:
    audience = await access.document_audience(session, document)
    rows = await session.execute(
        select(User.id, User.name, User.email).where(
            User.id.in_(sorted(audience)), User.is_active.is_(True)
        )
    )
    return [(uid, name, email) for uid, name, email in rows.all()]


async def list_comments(db: Database, user_id: str, document_id: str) -> list[dict[str, Any]]:
    """The comments on a note the user can see, oldest first."""
    async with db.read() as session:
        document, rights = await access.document_in(session, user_id, document_id)
        rows = (
            await session.execute(
                select(Comment, User.name)
                .join(User, User.id == Comment.user_id)
                .where(Comment.document_id == document.id)
                .order_by(Comment.created_at, Comment.id)
            )
        ).all()
    return [comment_out(c, name, user_id, rights.is_owner) for c, name in rows]


async def add_comment(db: Database, author: Actor, document_id: str, body: str) -> dict[str, Any]:
    """Comment on a note the author can see. ``comment.created`` names the people it mentions:
    their notifications and mail react to it (``multinotes.sharing.notifier``)."""
    async with db.transaction() as session:
        document, rights = await access.document_in(session, author.user_id, document_id)
        body = clean_body(body)  # after the access check: an outsider learns nothing
        people = await _people(session, document)
        mentioned = find_mentions(body, people)
        now = utcnow()
        comment = Comment(
            document_id=document.id,
            user_id=author.user_id,
            body=body,
            mentions=mentioned,
            created_at=now,
            updated_at=now,
        )
        session.add(comment)
        await session.flush()
        session.add(
            DocumentActivity(
                document_id=document.id,
                actor_id=author.user_id,
                kind="comment",
                detail={"comment_id": comment.id},
                created_at=now,
            )
        )
        stage(
            session,
            COMMENT_CREATED.of(
                document.user_id,
                CommentCreated(
                    comment_id=comment.id,
                    note_id=document.id,
                    author_id=author.user_id,
                    mentioned_ids=list(mentioned),
                ),
            ),
        )
    return comment_out(comment, author.name, author.user_id, rights.is_owner)


async def _comment_for(
    session: AsyncSession, user_id: str, comment_id: str
) -> tuple[Comment, Document, access.Access]:
    """A comment on a note the user can see; NotFound otherwise (ids leak nothing)."""
    comment = await session.scalar(select(Comment).where(Comment.id == comment_id))
    if comment is None:
        raise NotFound("No such comment.")
    try:
        document, rights = await access.document_in(session, user_id, comment.document_id)
    except NotFound:
        raise NotFound("No such comment.") from None
    return comment, document, rights


async def edit_comment(db: Database, author: Actor, comment_id: str, body: str) -> dict[str, Any]:
    """Only the author edits a comment; ``comment.edited`` names the people it newly mentions,
    who are notified."""
    async with db.transaction() as session:
        comment, document, rights = await _comment_for(session, author.user_id, comment_id)
        if comment.user_id != author.user_id:
            raise Forbidden("Only its author can edit a comment.", code="author_only")
        body = clean_body(body)
        people = await _people(session, document)
        mentioned = find_mentions(body, people)
        already = set(comment.mentions or [])
        comment.body = body
        comment.mentions = mentioned
        comment.updated_at = comment.edited_at = utcnow()
        stage(
            session,
            COMMENT_EDITED.of(
                document.user_id,
                CommentEdited(
                    comment_id=comment.id,
                    note_id=document.id,
                    author_id=author.user_id,
                    mentioned_ids=[m for m in mentioned if m not in already],
                ),
            ),
        )
    return comment_out(comment, author.name, author.user_id, rights.is_owner)


async def delete_comment(db: Database, user_id: str, comment_id: str) -> str:
    """The author deletes their comment; the note's owner may delete any comment on it.
    Returns the note's id."""
    async with db.transaction() as session:
        comment, document, rights = await _comment_for(session, user_id, comment_id)
        if comment.user_id != user_id and not rights.is_owner:
            raise Forbidden(
                "Only its author or the note's owner can delete a comment.", code="author_only"
            )
        await session.delete(comment)
    return document.id


def comment_out(
    comment: Comment, author_name: str, viewer_id: str, viewer_owns_note: bool
) -> dict[str, Any]:
    mine = comment.user_id == viewer_id
    return {
        "id": comment.id,
        "document_id": comment.document_id,
        "author": {"id": comment.user_id, "name": author_name},
        "body": comment.body,
        "html": render_markdown(comment.body),
        "mentions": list(comment.mentions or []),
        "created_at": comment.created_at.isoformat(),
        "edited_at": comment.edited_at.isoformat() if comment.edited_at else None,
        "can_edit": mine,
        "can_delete": mine or viewer_owns_note,
    }


async def mentionable(db: Database, user_id: str, document_id: str) -> list[dict[str, str]]:
    """The people ``user_id`` can mention on a note (who can see it), themselves aside."""
    async with db.read() as session:
        document, _ = await access.document_in(session, user_id, document_id)
        people = await _people(session, document)
    return sorted(
        (
            {"id": uid, "name": name, "email": email}
            for uid, name, email in people
            if uid != user_id
        ),
        key=lambda p: p["name"].casefold(),
    )
