"""Tables of the plugin platform: whether an admin switched a plugin on or off, the settings
they edited, and encrypted secrets (plugin secrets, provider keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow


class PluginState(Base):
    """Whether an admin switched a plugin on or off. No row: the plugin's default applies."""

    __tablename__ = "plugin_state"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(32))


class PluginSetting(Base):
    """A non-secret plugin setting an admin edited (overrides the environment bootstrap)."""

    __tablename__ = "plugin_settings"
    __table_args__ = (UniqueConstraint("plugin", "field"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    plugin: Mapped[str] = mapped_column(String(100))
    field: Mapped[str] = mapped_column(String(100))
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Secret(Base):
    """An encrypted value (provider keys, plugin secrets). ``last4`` is all any page shows."""

    __tablename__ = "secrets"
    __table_args__ = (UniqueConstraint("scope", "name"), Index("ix_secrets_scope", "scope"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    scope: Mapped[str] = mapped_column(String(120))
    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[str] = mapped_column(Text)
    last4: Mapped[str] = mapped_column(String(4))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
