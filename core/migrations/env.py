"""Alembic environment. The app passes its connection in ``config.attributes["connection"]``;
the ``alembic`` command line (for developers writing migrations) builds one from the URL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from multinotes.migrations import target_metadata as metadata_of

config = context.config
# The core's tables and those of the plugins whose revisions take part (for autogenerate).
target_metadata = metadata_of(config.attributes.get("plugin_migrations", []))


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url() -> None:
    from multinotes.db import create_engine

    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.begin() as connection:
        await connection.run_sync(run_with)
    await engine.dispose()


connection = config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    asyncio.run(run_from_url())
