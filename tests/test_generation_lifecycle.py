"""What happens around a generation: media it produces, the crash sweep, events for
integrations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from multinotes import hookimpl
from multinotes.chat.models import Generation, Message
from multinotes.chat.pipeline import settle_stale_generations
from multinotes.integrations import Event, Integration
from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.wallet.models import LedgerEntry, Reservation
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.sse import by_model, parse_sse
from tests.support.waiting import eventually


class Recorder(Integration):
    integration_id = "recorder"
    name = "Recorder"
    events = frozenset({"generation.completed"})

    def __init__(self) -> None:
        self.received: list[Event] = []

    async def handle(self, event: Event, config: object) -> None:
        self.received.append(event)


class RecorderPlugin:
    def __init__(self) -> None:
        self.integration = Recorder()

    @hookimpl
    def register_integrations(self, register):
        register(self.integration)


@pytest.fixture
def recorder():
    return RecorderPlugin()


@pytest.fixture
def script():
    return Script()


@pytest.fixture
def plugins(recorder, script):
    import plugins.providers.demo as demo

    return [
        ("demo", demo),
        ("recorder", recorder),
        ("script", ScriptedPlugin(ScriptedModel("script/one", script))),
    ]


@pytest.fixture
async def user(api: ApiClient) -> ApiClient:
    await api.register_admin()
    await api.mark_verified()
    # The demo provider starts disabled in production mode.
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    return api


async def generate(api: ApiClient, models: list[str], content: str = "teal") -> list:
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": content, "models": models}
    )
    assert response.status == 200, await response.text()
    return parse_sse(await response.text())


async def test_generated_images_are_kept_and_served_only_to_their_owner(user, make_client):
    events = await generate(user, ["demo/swatch"])
    media = [d for n, d in events if n == "media"]
    assert len(media) == 1 and media[0]["media_type"] == "image/png"
    done = by_model(events)["demo/swatch"][-1][1]
    assert done["usage"]["images"] == 1 and done["cost"] == 50
    image = await user.get(media[0]["url"])
    assert image.status == 200 and image.headers["Content-Type"] == "image/png"
    assert (await image.read()).startswith(b"\x89PNG")
    assert image.headers["Content-Disposition"].startswith("inline")
    other = await make_client()
    await other.register_and_login("other@example.com")
    assert (await other.get(media[0]["url"])).status == 404


async def test_integrations_hear_about_finished_generations(user, recorder):
    await generate(user, ["script/one"])
    received = recorder.integration.received
    await eventually(lambda: len(received) > 0)
    assert [e.name for e in received] == ["generation.completed"]
    assert received[0].user_id == user.user["id"]
    assert received[0].data["model"] == "script/one" and received[0].data["cost"] == 16


async def test_the_sweep_settles_what_a_crash_left_pending(user):
    await generate(user, ["script/one"])
    db = user.app[DB]
    # Fake a crash: a generation left pending with its credits still held.
    async with db.transaction() as session:
        generation = await session.scalar(select(Generation))
        await session.execute(
            update(Generation)
            .where(Generation.id == generation.id)
            .values(status="pending", created_at=generation.created_at - timedelta(hours=2))
        )
        await session.execute(
            update(Message).where(Message.id == generation.message_id).values(status="pending")
        )
    from multinotes.wallet import service as wallet

    await wallet.reserve(db, user.user["id"], 500, "gen:crashed")
    async with db.transaction() as session:
        session.add(
            Generation(
                id="crashed",
                user_id=user.user["id"],
                conversation_id=generation.conversation_id,
                message_id=await _new_message(session, generation),
                model_id="script/one",
                provider_id="script",
                status="pending",
                created_at=generation.created_at - timedelta(hours=2),
            )
        )
    assert (await user.get_json("/api/wallet"))["reserved"] == 500
    # The embedded scheduler runs this same sweep every minute and may take one of the two
    # first: each is settled exactly once, by whichever sweep reaches it.
    assert await settle_stale_generations(user.app) in (1, 2)
    assert (await user.get_json("/api/wallet"))["reserved"] == 0
    async with db.read() as session:
        crashed = await session.get(Generation, "crashed")
        interrupted = await session.get(Generation, generation.id)
        holds = {
            r.reference: r
            for r in await session.scalars(
                select(Reservation).where(
                    Reservation.reference.in_(["gen:crashed", f"gen:{generation.id}"])
                )
            )
        }
        charges = list(
            await session.scalars(
                select(LedgerEntry).where(LedgerEntry.reference == f"gen:{generation.id}")
            )
        )
    assert crashed.status == "failed" and crashed.error_code == "interrupted"
    assert interrupted.status == "failed" and interrupted.error_code == "interrupted"
    assert holds["gen:crashed"].settled_at is not None and holds["gen:crashed"].cost == 0
    # The interrupted answer's delivered text is what it costs, charged once.
    assert holds[f"gen:{generation.id}"].cost == interrupted.cost > 0
    assert [c.amount for c in charges] == [-interrupted.cost]
    assert await settle_stale_generations(user.app) == 0  # idempotent


async def _new_message(session, generation) -> str:
    message = Message(
        conversation_id=generation.conversation_id,
        user_id=generation.user_id,
        role="assistant",
        content="",
        status="pending",
        model_id="script/one",
    )
    session.add(message)
    await session.flush()
    return message.id


async def test_generated_images_also_land_in_the_users_files(user):
    await generate(user, ["demo/swatch"])
    files = await user.get_json("/api/files")
    items = files["files"] if isinstance(files, dict) else files
    assert len(items) == 1
    assert items[0]["content_type"] == "image/png" and items[0]["name"].startswith("demo-swatch")
