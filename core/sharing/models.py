"""Tables of sharing and collaboration: shares (grants to a person or a public link),
notifications, comments on notes, the notes' activity feed and the folders' share events.

A share names its object by type and id (documents, folders, files and conversations live in
different tables, so there is no foreign key); access checks always load the object and confirm
that the share's owner still owns it, so a share of something gone or moved grants nothing.

A user share names its recipient by account (``recipient_id``) when the address belonged to an
account when it was shared; otherwise only by ``recipient_email``, and it grants access to the
account that holds that address once the address is verified (``multinotes.sharing.access``).

Revoking keeps the row (``revoked_at``), so a revoked public link answers 410 Gone rather than
404; ``live_key`` is "" while a share is live and its own id once revoked, so the unique index
allows one live share per object and recipient but any number of revoked ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

# A note's activity feed is the notes' own table; imported here for the modules that read it
# with the other sharing tables.
from multinotes.notes.models import DocumentActivity as DocumentActivity

LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")

OBJECT_TYPES = ("document", "folder", "file", "conversation", "comparison")
ROLES = ("viewer", "editor")


class Share(Base):
    __tablename__ = "shares"
    __table_args__ = (
        UniqueConstraint("object_type", "object_id", "recipient_email", "live_key"),
        Index("ix_shares_owner_created", "owner_id", "created_at"),
        Index("ix_shares_object", "object_type", "object_id"),
        Index("ix_shares_recipient_email", "recipient_email"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(32))
    #: The recipient's account; None for public links and for addresses not registered yet.
    recipient_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: The address it was shared with (normalised); None for public links.
    recipient_email: Mapped[str | None] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    #: Public links: the SHA-256 of the random token in the link (the token is shown once).
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: Public links: an optional password (argon2id, as account passwords).
    password_hash: Mapped[str | None] = mapped_column(String(255))
    view_count: Mapped[int] = mapped_column(Integer, default=0)
    last_viewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    live_key: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def is_public(self) -> bool:
        return self.token_hash is not None


class Notification(Base):
    """Something for one person to see: a share they received, a mention in a comment."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_user_id", "user_id", "id"),
        Index("ix_notifications_user_read", "user_id", "read_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: "share" or "mention".
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: The actor's name when it happened (kept if the account goes).
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[str] = mapped_column(String(32))
    #: The object's title or name when it happened.
    title: Mapped[str] = mapped_column(String(300), default="")
    #: A short excerpt (the comment that mentioned the reader), plain text.
    excerpt: Mapped[str] = mapped_column(String(500), default="")
    #: Where to go from the notification, a path on this site.
    url: Mapped[str] = mapped_column(String(500), default="")
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Comment(Base):
    """A comment on a note, Markdown (rendered sanitised)."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_document_created", "document_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(LongText)
    #: The ids of the people the comment mentioned (who could see the note at the time).
    mentions: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FolderActivity(Base):
    """One share event of a folder: "share", "share_changed" or "unshare", with the same
    ``detail`` as a note's share events (the recipient, the role, the previous role).

    Written once per event, never copied to the notes inside: a note's activity feed reads the
    events of the folders above it when it is shown (``multinotes.sharing.activity``)."""

    __tablename__ = "folder_activity"
    __table_args__ = (Index("ix_folder_activity_folder", "folder_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    folder_id: Mapped[str] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"))
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
