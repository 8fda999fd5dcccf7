"""Tables of the prompt library: templates, their tags, who a template is shared with, favourites
and uses (one row per run, so usage counts and "trending" are counts over a time window)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

#: ``private``: only the owner; ``shared``: the owner and the people in ``prompt_template_shares``;
#: ``public``: everyone with an account on this instance.
VISIBILITIES = ("private", "shared", "public")


class PromptTemplate(Base):
    """A prompt with ``{{variables}}``. ``variables`` is the list of typed variable specs
    (``multinotes.prompts.variables.Variable``), ``preferred_models`` model ids the workspace
    selects when the template is used. Only the owner changes it; a built-in starter
    (``builtin_key`` set, no owner, public) is changed by admins."""

    __tablename__ = "prompt_templates"
    __table_args__ = (Index("ix_prompt_templates_visibility", "visibility"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    #: None for a built-in starter template.
    owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    #: The starter it was seeded from (``multinotes.prompts.starters``); None for people's own.
    builtin_key: Mapped[str | None] = mapped_column(String(60), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text)
    system_prompt: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    preferred_models: Mapped[list[str]] = mapped_column(JSON, default=list)
    visibility: Mapped[str] = mapped_column(String(16), default="private")
    #: The organisation whose space it is in (its members see and use it; its owner and the
    #: organisation's owner and admins change it), or None: its owner's own library.
    organisation_id: Mapped[str | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PromptTemplateTag(Base):
    """One tag of a template (lower case), a row each so tags filter and count in SQL."""

    __tablename__ = "prompt_template_tags"

    template_id: Mapped[str] = mapped_column(
        ForeignKey("prompt_templates.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class PromptTemplateShare(Base):
    """A person a ``shared`` template is shared with: they may see, use and favourite it."""

    __tablename__ = "prompt_template_shares"

    template_id: Mapped[str] = mapped_column(
        ForeignKey("prompt_templates.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PromptTemplateFavourite(Base):
    """A template a user starred (any template they can see)."""

    __tablename__ = "prompt_template_favourites"

    template_id: Mapped[str] = mapped_column(
        ForeignKey("prompt_templates.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PromptTemplateUse(Base):
    """One run of a template by a user (recorded when the rendered prompt was sent)."""

    __tablename__ = "prompt_template_uses"
    __table_args__ = (
        Index("ix_prompt_template_uses_template_id_used_at", "template_id", "used_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    template_id: Mapped[str] = mapped_column(ForeignKey("prompt_templates.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
