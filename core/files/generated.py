"""Images and audio a model made also land in the user's Files (``source="generated"``), in
reaction to ``generation.completed``: the chat keeps serving its own copy, so a full quota or a
refused type only costs this one."""

from __future__ import annotations

import functools

import structlog
from aiohttp import web
from sqlalchemy import select

from multinotes.chat.models import MessageMedia
from multinotes.db import retrying
from multinotes.domain_events import GENERATION_COMPLETED, DomainEvent, EventBus
from multinotes.errors import AppError
from multinotes.keys import DB
from multinotes.storage import objects

log = structlog.get_logger(__name__)


def subscribe(bus: EventBus) -> None:
    bus.subscribe(GENERATION_COMPLETED, keep_generated_media)


async def keep_generated_media(app: web.Application, event: DomainEvent) -> None:
    from multinotes.files.service import store_bytes  # the service imports half the app

    if not event.payload.get("media_count") or event.user_id is None:
        return
    async with app[DB].read() as session:
        rows = list(
            await session.scalars(
                select(MessageMedia)
                .where(
                    MessageMedia.message_id == event.payload["message_id"],
                    MessageMedia.user_id == event.user_id,
                )
                .order_by(MessageMedia.created_at, MessageMedia.id)
            )
        )
    model = event.payload["model"]
    slug = model.replace("/", "-")
    for row in rows:
        try:
            data = await objects.read_bytes(objects.storage_of(app), row.path)
            await retrying(
                functools.partial(
                    store_bytes,
                    app,
                    event.user_id,
                    f"{slug}-{row.name}",
                    row.media_type,
                    data,
                    source="generated",
                ),
                "keep_generated_media",
            )
        except AppError as exc:
            log.warning("generated_media_not_kept", model=model, code=exc.error_code)
