"""Admin-editable settings kept in the database (trial credits, markup, tools, ...).

Unlike ``Settings`` (deploy-time, from the environment), these change at run time from the
console. Each key has a typed default here; the database holds only what an admin changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, Database, UTCDateTime, utcnow


class AppSetting(Base):
    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


DEFAULTS: dict[str, Any] = {
    # Roughly what 10,000 tokens cost on a mid-priced model (1 credit = US$0.00001).
    "wallet.trial_credits": 10_000,
    "wallet.low_balance_credits": 1_000,
    "pricing.markup_percent": 0.0,
}


async def get_setting(db: Database, key: str) -> Any:
    async with db.read() as session:
        row = await session.get(AppSetting, key)
    return DEFAULTS.get(key) if row is None else row.value


async def get_settings(db: Database, keys: list[str]) -> dict[str, Any]:
    async with db.read() as session:
        rows = {k: await session.get(AppSetting, k) for k in keys}
    return {k: (DEFAULTS.get(k) if row is None else row.value) for k, row in rows.items()}


async def set_setting(db: Database, key: str, value: Any) -> None:
    async with db.transaction() as session:
        row = await session.get(AppSetting, key)
        if row is None:
            session.add(AppSetting(key=key, value=value))
        else:
            row.value = value
