"""Task arguments carry personal data (mail addresses, names): they travel encrypted under the
master key, so Redis (its memory, dumps and backups) never holds them readable, and a finished
task leaves nothing behind. The task still gets its arguments as they were given."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis import Redis

from multinotes.app import create_app
from multinotes.keys import SETTINGS
from multinotes.mail import queue_mail
from multinotes.testing import app_client
from tests.conftest import worker_for

ADDRESS = "private.person@example.com"


async def test_queued_task_arguments_are_unreadable_and_still_delivered(make_settings, mode):
    settings = make_settings()
    app = create_app(settings, plugins=[])
    async with app_client(app):
        await queue_mail(
            app,
            template="verify_email",
            to=ADDRESS,
            context={"name": "Private Person", "link": "https://example.com/verify/x"},
        )
        if mode == "production":
            client = Redis.from_url(settings.redis_url)
            stream = settings.redis_prefix + "tasks"
            raw = b"".join(b"".join(fields.values()) for _, fields in client.xrange(stream))
            assert b"core.send_mail" in raw  # the task is queued ...
            assert ADDRESS.encode() not in raw and b"Private Person" not in raw  # ... sealed
        async with worker_for(app):
            outbox: Path = app[SETTINGS].outbox_dir
            for _ in range(100):
                mails = list(outbox.glob("*.eml")) if outbox.exists() else []
                if mails:
                    break
                await asyncio.sleep(0.1)
        assert len(mails) == 1
        assert ADDRESS in mails[0].read_text()
        if mode == "production":
            assert client.xlen(stream) == 0
