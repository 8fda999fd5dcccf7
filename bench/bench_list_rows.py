"""CPU per call of the list queries in one process (issue #17), on MariaDB, three ways each,
with the same answers checked first:

* ``entities``: notes and conversations read as ORM entities (``notes.list_documents`` +
  ``document_summary``, ``chat.list_conversations`` + ``conversation_out``: what the HTML
  pages do, and what the API did before the eighth round);
* ``session rows``: the summary columns as typed rows through an ORM read session (the API
  from the eighth round to the tenth: JSON and datetimes parsed per row, then printed);
* ``text rows``: what the API does since the tenth round (``notes.list_document_summaries``,
  ``chat.list_conversation_summaries``): the columns as text through a Core connection.

``--json`` adds the response step (the endpoint's pydantic check and ``json.dumps``) to each.
Process CPU time, so less sensitive to a busy machine than ``bench_lists.py``'s request rates.

MariaDB: as ``bench_service.py`` (a throwaway database, migrated here and dropped at the end).

Run: ``python bench/bench_list_rows.py [--calls 300] [--rounds 3] [--json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

from bench_lists import note_content, text
from bench_service import mariadb, migrate
from cpu_timing import cpu_ms_per_call


async def run(url: str, calls: int, rounds: int, with_response: bool) -> None:
    from sqlalchemy import select

    from multinotes.api.conversations import ConversationPage
    from multinotes.api.documents import DocumentPage
    from multinotes.chat import service as chat
    from multinotes.chat.models import Conversation
    from multinotes.db import Database, create_engine
    from multinotes.http.endpoint import to_jsonable
    from multinotes.identity import service as identity
    from multinotes.notes import service as notes
    from multinotes.notes.models import Document

    await migrate(url)
    db = Database(create_engine(url))
    rng = random.Random(1)
    identity.hash_password = lambda password: "not a hash"  # type: ignore[assignment]
    user = await identity.register_user(
        db, email="rows@example.com", password="correct horse battery 9", name="Rows"
    )
    for _ in range(120):
        await notes.create_document(
            db, user.id, title=text(rng, 4).title(), content=note_content(rng), folder_id=None
        )
    for _ in range(40):
        await chat.create_conversation(db, user.id, text(rng, 5), None)

    async def documents_as_entities() -> Any:
        rows, _ = await notes.list_documents(db, user.id)
        return [notes.document_summary(d) for d in rows]

    old_document_columns = (
        Document.id,
        Document.title,
        Document.folder_id,
        Document.version,
        Document.provenance,
        Document.created_at,
        Document.updated_at,
    )

    async def documents_as_session_rows() -> Any:
        query = (
            select(*old_document_columns)
            .where(Document.user_id == user.id, Document.deleted_at.is_(None))
            .order_by(Document.updated_at.desc(), Document.id.desc())
            .limit(51)
        )
        async with db.read() as session:
            rows = (await session.execute(query)).all()
        return [notes.document_summary(row) for row in rows[:50]]

    async def documents_as_text_rows() -> Any:
        return (await notes.list_document_summaries(db, user.id))[0]

    async def conversations_as_entities() -> Any:
        rows, _ = await chat.list_conversations(db, user.id)
        return [chat.conversation_out(c) for c in rows]

    async def conversations_as_session_rows() -> Any:
        query = (
            select(*Conversation.__table__.columns)
            .where(Conversation.user_id == user.id, chat.open_to_chat())
            .where(Conversation.archived_at.is_(None))
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(31)
        )
        async with db.read() as session:
            rows = (await session.execute(query)).all()
        return [chat.conversation_out(row) for row in rows[:30]]

    async def conversations_as_text_rows() -> Any:
        return (await chat.list_conversation_summaries(db, user.id))[0]

    def answered(
        call: Callable[[], Awaitable[Any]], key: str, page: Any
    ) -> Callable[[], Awaitable[Any]]:
        async def with_json() -> Any:
            body = {key: await call(), "next_cursor": None}
            return json.dumps(to_jsonable(body, page))

        return with_json if with_response else call

    docs = ("documents", DocumentPage)
    chats = ("conversations", ConversationPage)
    for check in (documents_as_session_rows, documents_as_text_rows):
        assert await check() == await documents_as_entities()
    for check in (conversations_as_session_rows, conversations_as_text_rows):
        assert await check() == await conversations_as_entities()
    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "documents, entities": answered(documents_as_entities, *docs),
        "documents, session rows": answered(documents_as_session_rows, *docs),
        "documents, text rows": answered(documents_as_text_rows, *docs),
        "conversations, entities": answered(conversations_as_entities, *chats),
        "conversations, session rows": answered(conversations_as_session_rows, *chats),
        "conversations, text rows": answered(conversations_as_text_rows, *chats),
    }
    try:
        for number in range(rounds):
            for name, call in variants.items():
                ms = await cpu_ms_per_call(call, calls)
                print(f"round {number + 1} {name}: {ms:.2f} ms CPU per call", flush=True)
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="add the response step")
    args = parser.parse_args()
    with mariadb() as found:
        if found is None:
            raise SystemExit("MariaDB and Redis are needed (see bench_service.py)")
        asyncio.run(run(found["database_url"], args.calls, args.rounds, args.json))


if __name__ == "__main__":
    main()
