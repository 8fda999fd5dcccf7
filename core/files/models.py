"""The files table: one row per stored object a user owns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow


class File(Base):
    __tablename__ = "files"
    __table_args__ = (Index("ix_files_user_created", "user_id", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=False
    )
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(127))
    #: What the bytes are, as judged by sniffing (e.g. "png", "docx", "text").
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    #: The object's key in the storage backend.
    storage_key: Mapped[str] = mapped_column(String(255))
    #: A folder id; folders live elsewhere, so no foreign key yet.
    folder_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The organisation whose storage quota the file counts against (uploaded in its space),
    #: or None: the owner's own quota.
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    #: Where the file came from: "upload", "generated", ...
    source: Mapped[str] = mapped_column(String(16), default="upload")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
