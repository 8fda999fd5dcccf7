"""What ``PluginContext.ask`` and ``save_answer`` do: prompts sent on a user's behalf by
something other than their browser (a Slack or Discord command handled by an integration
plugin), through the same pipeline as the workspace (models resolved,
the maximum cost reserved, the prompt and pending answers stored, the models streamed, each
answer stored and settled to its real cost exactly once), with nobody watching the stream. The
caller waits for every answer to end and gets them back; the conversation stays in the user's
workspace like any other.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.chat.models import Generation, Message
from multinotes.chat.pipeline import RUNNING, EventSink, plan_generations, run_generation
from multinotes.errors import Forbidden, Invalid, NotFound
from multinotes.identity.models import User
from multinotes.keys import CATALOG, DB, METRICS, SETTINGS
from multinotes.notes.models import Folder
from multinotes.notes.provenance import save_answer
from multinotes.notes.service import create_document, create_folder, name_key
from multinotes.plugin.context import Answer

#: Longest prompt a plugin may send (the workspace's own limit is on its request body).
MAX_PROMPT = 100_000
#: Longest text a plugin may keep as a note.
MAX_NOTE = 1_000_000


async def _check_user(app: web.Application, user_id: str) -> None:
    """The rules a signed-in sender meets: an active account, with a verified address where the
    install requires one (generation spends credits)."""
    async with app[DB].read() as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("No such user.", code="unknown_user")
    if user.email_verified_at is None and app[SETTINGS].requires_email_verification:
        raise Forbidden(
            "Verify your email address first: open the link MultinotesAI sent you.",
            code="email_unverified",
        )


async def answer_prompt(
    app: web.Application,
    *,
    user_id: str,
    prompt: str,
    models: list[str],
    conversation_id: str | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> list[Answer]:
    """Send ``prompt`` to ``models`` for ``user_id`` and wait for every answer (``options``:
    per model id, as the workspace sends them, e.g. a template's system prompt).

    Raises before anything is stored or charged: ``Invalid`` (no prompt, unknown or unusable
    models), ``PaymentRequired`` (the wallet cannot cover the reservation), ``Forbidden``
    (unverified address), ``NotFound`` (no such active user or conversation)."""
    prompt = prompt.strip()
    if not prompt:
        raise Invalid("Write a prompt.", fields={"prompt": "required"})
    if len(prompt) > MAX_PROMPT:
        raise Invalid("The prompt is too long.", fields={"prompt": f"at most {MAX_PROMPT}"})
    if not models:
        raise Invalid("Name a model to answer with.", fields={"models": "required"})
    await _check_user(app, user_id)
    prompt_message, planned = await plan_generations(
        app,
        user_id=user_id,
        conversation_id=conversation_id,
        content=prompt,
        model_ids=models,
        options=options or {},
        parent_id=None,
        attachments=[],
        continue_latest=conversation_id is not None,
    )
    sink = EventSink()
    sink.close()  # nobody watches: each answer is stored and settled all the same
    running, metrics = app[RUNNING], app[METRICS]
    tasks = []
    for item in planned:
        task = asyncio.create_task(
            run_generation(app, item, sink), name=f"generation-{item.generation_id}"
        )
        running.track(item.generation_id, task)
        metrics.streams_in_flight.inc()
        task.add_done_callback(lambda _task: metrics.streams_in_flight.dec())
        tasks.append(task)
    # The answers belong to the server, as in the workspace: the caller going away (a task
    # cancelled at shutdown) does not stop them; they are stored and settled either way.
    await asyncio.shield(asyncio.gather(*tasks, return_exceptions=True))
    ids = [item.message_id for item in planned]
    async with app[DB].read() as session:
        messages = {
            m.id: m for m in await session.scalars(select(Message).where(Message.id.in_(ids)))
        }
        generations = {
            g.message_id: g
            for g in await session.scalars(select(Generation).where(Generation.message_id.in_(ids)))
        }
    answers = []
    for item in planned:
        message, generation = messages[item.message_id], generations.get(item.message_id)
        answers.append(
            Answer(
                message_id=message.id,
                conversation_id=prompt_message.conversation_id,
                model=item.model_id,
                text=message.content,
                status=str(message.status),
                cost=generation.cost if generation else 0,
                error_code=generation.error_code if generation else None,
                error_message=generation.error_message if generation else None,
            )
        )
    return answers


async def usable_models(app: web.Application) -> list[str]:
    """The ids of the models a user could be answered by now (enabled, with their key)."""
    return [entry.id for entry in await app[CATALOG].entries() if entry.available]


async def top_folder(app: web.Application, user_id: str, name: str | None) -> str | None:
    """The id of the user's top-level folder named ``name``, made when missing (``None``: no
    folder)."""
    if name is None:
        return None
    db = app[DB]
    for _ in range(2):
        async with db.read() as session:
            found = await session.scalar(
                select(Folder.id).where(
                    Folder.user_id == user_id,
                    Folder.parent_key == "",
                    Folder.name_key == name_key(name),
                    Folder.live_key == "",
                )
            )
        if found is not None:
            return found
        try:
            return (await create_folder(db, user_id, name, None)).id
        except Invalid as exc:  # made meanwhile by a concurrent save: use that one
            if exc.error_code != "name_taken":
                raise
    raise Invalid("The folder could not be made.", fields={"folder": "try again"})


async def save_answer_in_folder(
    app: web.Application, *, user_id: str, message_id: str, folder: str | None
) -> str:
    """Save one of the user's answers as a note (with its provenance) in their top-level folder
    named ``folder`` (made when missing; ``None``: no folder); the note's id."""
    db = app[DB]
    async with db.read() as session:
        # Theirs first: no folder is made for someone else's answer.
        owned = await session.scalar(
            select(Message.id).where(
                Message.id == message_id, Message.user_id == user_id, Message.role == "assistant"
            )
        )
    if owned is None:
        raise NotFound("No such answer.")
    folder_id = await top_folder(app, user_id, folder)
    document = await save_answer(db, user_id, message_id, folder_id)
    return document.id


async def save_text_as_note(
    app: web.Application, *, user_id: str, title: str, content: str, folder: str | None
) -> str:
    """A new note of the user's with ``title`` and Markdown ``content`` (text kept from
    elsewhere, e.g. a Slack message), in their top-level folder ``folder``; the note's id."""
    async with app[DB].read() as session:
        user = await session.get(User, user_id)
    if user is None or not user.is_active:
        raise NotFound("No such user.", code="unknown_user")
    title = " ".join(title.split())[:300] or "Untitled note"
    if len(content) > MAX_NOTE:
        raise Invalid("The text is too long for a note.", fields={"content": f"at most {MAX_NOTE}"})
    folder_id = await top_folder(app, user_id, folder)
    # "editor": written by someone (here, elsewhere), not a saved answer.
    document = await create_document(
        app[DB], user_id, title=title, content=content, folder_id=folder_id, source="editor"
    )
    return document.id
