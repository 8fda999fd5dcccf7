"""Store a plugin secret in an embedded data dir, encrypted under a given master key."""

from __future__ import annotations

import asyncio
from pathlib import Path

from multinotes.db import Database, create_engine
from multinotes.migrations import upgrade
from multinotes.models import Secret
from multinotes.secretbox import SecretBox


def store_secret_with_key(data_dir: Path, key: str, value: str) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)

    async def store() -> str:
        db = Database(create_engine(f"sqlite+aiosqlite:///{data_dir / 'multinotes.db'}"))
        await upgrade(db.engine)
        ciphertext = SecretBox([key]).encrypt(value)
        async with db.transaction() as session:
            session.add(
                Secret(scope="plugin:demo", name="api_key", ciphertext=ciphertext, last4=value[-4:])
            )
        await db.close()
        return ciphertext

    return asyncio.run(store())
