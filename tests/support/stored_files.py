"""What file storage and the files table hold, for upload tests that must show nothing was kept."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from multinotes.files.models import File
from multinotes.keys import DB
from multinotes.settings import Settings
from multinotes.testing import ApiClient


def stored_objects(settings: Settings) -> list[Path]:
    """Every object in file storage, half-written uploads (``files/.tmp``) included."""
    root = settings.data_dir / "files"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def row_count(api: ApiClient) -> int:
    """How many files the database records (every user's)."""
    async with api.app[DB].read() as session:
        return int(await session.scalar(select(func.count()).select_from(File)) or 0)
