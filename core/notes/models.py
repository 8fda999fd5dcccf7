"""Folders, documents (Markdown notes) and their saved versions.

Trash: a deleted item keeps its row with ``deleted_at`` set and ``trash_root`` naming the item the
user deleted (its own id, or the folder whose deletion took it along), so restoring that item
brings back exactly what went with it.

Folder names are unique per parent, ignoring case, among live folders only. The unique index is on
``(user_id, parent_key, name_key, live_key)``: ``parent_key`` is the parent id or "" at the root
(NULLs never collide in a unique index), ``name_key`` the lower-cased name, and ``live_key`` is ""
while live and the row's own id once trashed, so trashed folders never block a name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class Folder(Base):
    __tablename__ = "folders"
    __table_args__ = (
        UniqueConstraint("user_id", "parent_key", "name_key", "live_key"),
        Index("ix_folders_user_deleted", "user_id", "deleted_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # SET NULL, not CASCADE: InnoDB cascades at most 15 levels, so a deeper tree would block
    # deleting its owner. Nothing relies on it: the trash purge deletes subtrees explicitly.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("folders.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    #: The organisation whose space the folder is in (its members read and edit what is
    #: inside; ``multinotes.sharing.access``), or None: its owner's own space.
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    parent_key: Mapped[str] = mapped_column(String(32), default="")
    name_key: Mapped[str] = mapped_column(String(200))
    live_key: Mapped[str] = mapped_column(String(32), default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trash_root: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Document(Base):
    """A Markdown note. ``version`` is the number of its latest saved version; ``provenance``
    records where a saved answer came from (see ``multinotes.notes.provenance``)."""

    __tablename__ = "documents"
    __table_args__ = (
        Index("ix_documents_user_folder_updated", "user_id", "folder_id", "updated_at"),
        Index("ix_documents_user_deleted", "user_id", "deleted_at"),
        # What a user changed lately (their embedding job).
        Index("ix_documents_user_updated", "user_id", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    folder_id: Mapped[str | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    content: Mapped[str] = mapped_column(LongText, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: The organisation whose space the note is in (or that of a folder above it), or None.
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trash_root: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentVersion(Base):
    """One save of a document: never changed, removed only with the document."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    content: Mapped[str] = mapped_column(LongText, default="")
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentActivity(Base):
    """One event in a note's activity feed that the note's versions do not already record:
    shares and revokes, comments, restores.

    ``kind`` is "share", "unshare", "share_changed", "comment", "restore" (from the trash) or
    "restore_version"; ``detail`` holds what the feed shows (the recipient, the role, the
    restored version, a comment's id)."""

    __tablename__ = "document_activity"
    __table_args__ = (Index("ix_document_activity_document", "document_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    actor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
