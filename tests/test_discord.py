"""The Discord app (plugin ``discord``, issue #16 item 4), end to end against a fake Discord that
signs and sends interactions with its own Ed25519 key and receives the app's API calls: PING
gets PONG, forged and stale interactions are refused before anything runs, ``/ask`` is deferred
and its reply edited with the answer (charged exactly), account linking, no credits, Save as
note, replays charged once, the command's registration. Both runtime modes."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from multinotes.plugin import plugin_context
from multinotes.plugins.integrations import discord, webhooks
from multinotes.plugins.integrations.discord import signing
from multinotes.plugins.integrations.discord.tests.fakes.discord_server import FakeDiscord
from multinotes.testing import ApiClient, serve_fake
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.waiting import eventually

A, B = "script/alpha", "script/beta"
INTERACTIONS = "/api/integrations/discord/interactions"
ANN = "1400000000000000001"


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {A: Script(chunks=["Hello", " ", "from", " ", "alpha"]), B: Script(chunks=["Beta"])}


@pytest.fixture
def plugins(scripts: dict[str, Script]) -> Any:
    models = [
        ScriptedModel(model_id, script, context_window=1000, max_output=100)
        for model_id, script in scripts.items()
    ]
    return [("script", ScriptedPlugin(*models)), ("discord", discord), ("webhooks", webhooks)]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    async with serve_fake(server.app()) as url:
        server.url = url
        yield server


@pytest.fixture
async def configured(user: ApiClient, fake: FakeDiscord) -> ApiClient:
    response = await user.patch(
        "/api/admin/plugins/discord",
        {
            "settings": {
                "application_id": fake.application_id,
                "public_key": fake.public_key,
                "bot_token": fake.bot_token,
                "api_base": fake.api_base,
            }
        },
    )
    assert response.status == 200, await response.json()
    return user


def target(api: ApiClient) -> str:
    return str(api.client.make_url(INTERACTIONS))


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def balance(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["balance"])


async def link_as(api: ApiClient, fake: FakeDiscord, discord_user: str = ANN) -> str:
    sent = await fake.ask(target(api), "hello", user_id=discord_user)
    assert sent.status == 200 and sent.body["type"] == 4
    assert sent.body["data"]["flags"] == 64  # only they see it
    url = re.search(r"(http\S+/integrations/discord/link\?token=\S+)", sent.body["data"]["content"])
    page = await api.get(local(url.group(1)))
    assert page.status == 200
    html = await page.text()
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    linked = await api.post(
        "/integrations/discord/link", data={"token": token}, allow_redirects=False
    )
    assert linked.status == 303, await linked.text()
    return token


async def ask(api: ApiClient, fake: FakeDiscord, prompt: str, **kw: Any) -> Any:
    before = len(fake.edits)
    sent = await fake.ask(target(api), prompt, **kw)
    assert sent.status == 200 and sent.body == {"type": 5}, sent.body  # deferred
    await eventually(lambda: len(fake.edits) > before)
    return fake.edits[-1]


def test_signatures_are_ed25519_over_the_timestamp_and_body() -> None:
    # RFC 8032's first test key: Discord's public keys are its 32 raw bytes in hex.
    secret = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = Ed25519PrivateKey.from_private_bytes(secret)
    public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    rfc_signature = (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39"
        "701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert key.sign(b"").hex() == rfc_signature  # the RFC's vector for the empty message
    body = b'{"type":1}'
    headers = {"X-Signature-Timestamp": "1700000000"}
    headers["X-Signature-Ed25519"] = key.sign(b"1700000000" + body).hex()
    assert signing.verify(public, headers, body, now=lambda: 1700000000 + 299)
    assert not signing.verify(public, headers, body, now=lambda: 1700000000 + 301)
    assert not signing.verify(public, headers, body + b" ", now=lambda: 1700000000)
    other = Ed25519PrivateKey.generate().sign(b"1700000000" + body).hex()
    assert not signing.verify(public, {**headers, "X-Signature-Ed25519": other}, body)
    assert not signing.verify("", headers, body, now=lambda: 1700000000)
    assert not signing.verify(public, {**headers, "X-Signature-Ed25519": "zz"}, body)


async def test_ping_gets_pong_and_forged_or_stale_interactions_get_401(
    configured: ApiClient, fake: FakeDiscord, scripts: dict[str, Script]
) -> None:
    api = configured
    pong = await fake.ping(target(api))
    assert pong.status == 200 and pong.body == {"type": 1}

    await link_as(api, fake)
    before = await balance(api)
    forged = await fake.ask(target(api), "Say hello", key=Ed25519PrivateKey.generate())
    stale = await fake.ask(target(api), "Say hello", timestamp=int(time.time()) - 6 * 60)
    for refused in (forged, stale, await fake.ping(target(api), key=Ed25519PrivateKey.generate())):
        assert refused.status == 401 and refused.body["error"]["code"] == "bad_signature"
    assert scripts[A].calls == 0 and fake.edits == []
    assert await balance(api) == before


async def test_ask_is_deferred_then_answered_and_charged_exactly(
    configured: ApiClient, fake: FakeDiscord
) -> None:
    api = configured
    await link_as(api, fake)
    before = await balance(api)
    edit = await ask(api, fake, "Say hello", model="script/alpha, script/beta")
    assert edit["content"] == (
        "**Say hello**\n\n**script/alpha**\nHello from alpha\n-# 20 credits\n\n"
        "**script/beta**\nBeta\n-# 12 credits"
    )
    [row] = edit["components"]
    labels = [b["label"] for b in row["components"]]
    assert labels == ["Save script/alpha", "Save script/beta"]
    assert edit["allowed_mentions"] == {"parse": []}
    assert await balance(api) == before - 20 - 12


async def test_an_unlinked_user_is_asked_to_link_and_nothing_is_charged(
    configured: ApiClient, fake: FakeDiscord, scripts: dict[str, Script]
) -> None:
    api = configured
    before = await balance(api)
    sent = await fake.ask(target(api), "Say hello", user_id="1400000000000000999")
    assert sent.body["type"] == 4 and "Link your Discord account" in sent.body["data"]["content"]
    assert scripts[A].calls == 0 and await balance(api) == before and fake.edits == []
    bad = await api.get("/integrations/discord/link?token=forged")
    assert bad.status == 400


async def test_without_enough_credits_the_reply_says_so_and_nothing_is_charged(
    configured: ApiClient, fake: FakeDiscord, scripts: dict[str, Script]
) -> None:
    api = configured
    await link_as(api, fake)
    await plugin_context(api.app, "discord").debit(
        api.user["id"], await balance(api), reason="Spent", reference="drain"
    )
    edit = await ask(api, fake, "Say hello")
    assert "enough credits" in edit["content"] and "/pricing" in edit["content"]
    assert scripts[A].calls == 0 and await balance(api) == 0


async def test_save_as_note_keeps_the_answer_for_the_linked_user_once(
    configured: ApiClient, fake: FakeDiscord, make_client: Any
) -> None:
    api = configured
    await link_as(api, fake)
    edit = await ask(api, fake, "Say hello", model="script/alpha")
    [button] = edit["components"][0]["components"]
    assert button["label"] == "Save as note"
    first = await fake.press(target(api), button["custom_id"])
    again = await fake.press(target(api), button["custom_id"])
    assert first.body["data"]["flags"] == 64
    assert first.body["data"]["content"].startswith("Saved as a note: ")
    assert again.body == first.body
    note_id = first.body["data"]["content"].rsplit("/", 1)[1]
    note = await api.get_json(f"/api/documents/{note_id}")
    assert note["content"] == "Hello from alpha"
    [folder] = (await api.get_json("/api/folders"))["folders"]
    assert folder["name"] == "Discord" and note["folder_id"] == folder["id"]

    other: ApiClient = await make_client()
    await other.register_and_login("bob@example.com", name="Bob")
    await link_as(other, fake, discord_user="1400000000000000002")
    stolen = await fake.press(target(api), button["custom_id"], user_id="1400000000000000002")
    assert stolen.body["data"]["content"] == "Only the person who asked can save this answer."
    assert (await other.get_json("/api/folders"))["folders"] == []


async def test_a_replayed_interaction_is_answered_and_charged_once(
    configured: ApiClient, fake: FakeDiscord, scripts: dict[str, Script]
) -> None:
    api = configured
    await link_as(api, fake)
    before = await balance(api)
    payload = fake.ask_payload("Say hello", model="script/alpha")
    first = await fake.send(target(api), payload)
    replay = await fake.send(target(api), payload)
    assert first.body == {"type": 5}
    assert replay.body["data"]["content"] == "This command was already received."
    await eventually(lambda: len(fake.edits) == 1)
    assert scripts[A].calls == 1 and await balance(api) == before - 20


async def test_the_panel_registers_ask_and_manages_the_link(
    configured: ApiClient, fake: FakeDiscord
) -> None:
    api = configured
    token = await link_as(api, fake)
    page = await (await api.get("/integrations")).text()
    assert "Add to Discord" in page and "@ann" in page
    registered = await api.post("/integrations/discord/commands", allow_redirects=False)
    assert registered.status == 303
    [[command]] = fake.commands
    assert command["name"] == "ask" and command["options"][0]["name"] == "prompt"

    link_id = re.search(r"/integrations/discord/links/([0-9a-f]+)/model", page).group(1)
    chosen = await api.post(
        f"/integrations/discord/links/{link_id}/model",
        data={"model": "script/beta"},
        allow_redirects=False,
    )
    assert chosen.status == 303
    edit = await ask(api, fake, "Which model?")
    assert "**script/beta**\nBeta" in edit["content"]
    refused = await api.post(
        f"/integrations/discord/links/{link_id}/model",
        data={"model": "script/nope"},
        allow_redirects=False,
    )
    assert refused.status == 422

    gone = await api.post(f"/integrations/discord/links/{link_id}/unlink", allow_redirects=False)
    assert gone.status == 303
    again = await fake.ask(target(api), "Hi")
    assert "Link your Discord account" in again.body["data"]["content"]
    reused = await api.post(
        "/integrations/discord/link", data={"token": token}, allow_redirects=False
    )
    assert reused.status == 422 and "used already" in await reused.text()


async def test_the_data_export_holds_the_users_discord_rows_but_no_token(
    configured: ApiClient, fake: FakeDiscord
) -> None:
    from tests.test_privacy import download, finished_export, read_json

    api = configured
    await link_as(api, fake)
    payload = fake.ask_payload("Say hello", model="script/alpha")
    assert (await fake.send(target(api), payload)).body == {"type": 5}
    await eventually(lambda: len(fake.edits) == 1)

    started = await api.post("/api/me/export")
    done = await finished_export(api, (await started.json())["id"])
    archive = await download(api, done["download_url"])
    data = read_json(archive, "plugins/discord/discord.json")
    assert [a["discord_name"] for a in data["linked_accounts"]] == ["ann"]
    [command] = data["commands"]
    assert command["interaction_id"] == payload["id"] and command["status"] == "answered"
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert payload["token"].encode() not in everything
