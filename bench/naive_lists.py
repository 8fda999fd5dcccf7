"""The baseline of ``bench_lists.py``: a naive aiohttp + SQLAlchemy ORM endpoint over the same
``documents`` table as ``GET /api/documents``.

``GET /documents?user_id=...`` loads the user's 50 newest live notes as ORM entities (every
column, as ``select(Document)`` does) through an ``AsyncSession`` per request, the way a first
version of such an endpoint is usually written, and answers the same summary fields with
``web.json_response``. No authentication, no rate limit, no validation: the floor of "an ORM
list endpoint" that issue #17 compares against ("a naive SQLAlchemy ORM endpoint does ~900").

Run: ``python bench/naive_lists.py --port 8001 --database-url mysql+aiomysql://...``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import JSON, DateTime, Integer, String, Text, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "documents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32))
    folder_id: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    content: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


def iso(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat()


def make_app(database_url: str) -> web.Application:
    engine = create_async_engine(database_url, pool_size=10, max_overflow=20)
    sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def documents(request: web.Request) -> web.Response:
        user_id = request.query["user_id"]
        async with sessions() as session:
            rows = (
                await session.scalars(
                    select(Document)
                    .where(Document.user_id == user_id, Document.deleted_at.is_(None))
                    .order_by(Document.updated_at.desc(), Document.id.desc())
                    .limit(51)
                )
            ).all()
        out = [
            {
                "id": d.id,
                "title": d.title,
                "folder_id": d.folder_id,
                "version": d.version,
                "has_provenance": bool(d.provenance),
                "created_at": iso(d.created_at),
                "updated_at": iso(d.updated_at),
            }
            for d in rows[:50]
        ]
        return web.json_response({"documents": out, "next_cursor": None})

    async def close(app: web.Application) -> None:
        await engine.dispose()

    app = web.Application()
    app.router.add_get("/documents", documents)
    app.on_cleanup.append(close)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    web.run_app(make_app(args.database_url), host="127.0.0.1", port=args.port, print=None)
