"""The Slack app (plugin ``slack``, issue #16 item 3), end to end against a fake Slack that signs
and sends slash commands and button presses like Slack and receives the app's Web API calls
(slack-sdk pointed at it): install through OAuth v2, link a Slack user, a command answered
through its ``response_url`` and charged exactly, forged and stale requests refused before
anything runs, no credits, Save as note, replays charged once. Both runtime modes."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from sqlalchemy import select

from multinotes.plugin import ProviderBadResponse, plugin_context
from multinotes.plugins.integrations import slack, webhooks
from multinotes.plugins.integrations.slack import signing
from multinotes.plugins.integrations.slack.tables import Install
from multinotes.plugins.integrations.slack.tests.fakes.slack_server import FakeSlack, signature
from multinotes.testing import ApiClient, serve_fake
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin
from tests.support.waiting import eventually

A, B = "script/alpha", "script/beta"
EVENTS = "/api/integrations/slack/events"


@pytest.fixture
def scripts() -> dict[str, Script]:
    return {A: Script(chunks=["Hello", " ", "from", " ", "alpha"]), B: Script(chunks=["Beta"])}


@pytest.fixture
def plugins(scripts: dict[str, Script]) -> Any:
    models = [
        ScriptedModel(model_id, script, context_window=1000, max_output=100)
        for model_id, script in scripts.items()
    ]
    return [("script", ScriptedPlugin(*models)), ("slack", slack), ("webhooks", webhooks)]


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack()
    async with serve_fake(server.app()) as url:
        server.url = url
        yield server


@pytest.fixture
async def configured(user: ApiClient, fake: FakeSlack) -> ApiClient:
    """An admin (verified, with trial credits) who set the Slack app up."""
    response = await user.patch(
        "/api/admin/plugins/slack",
        {
            "settings": {
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "signing_secret": fake.signing_secret,
                "api_base": fake.url + "/api/",
            }
        },
    )
    assert response.status == 200, await response.json()
    return user


def target(api: ApiClient) -> str:
    return str(api.client.make_url(EVENTS))


def local(url: str) -> str:
    """A URL the app built for itself, as a path on the test server."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def balance(api: ApiClient) -> int:
    return int((await api.get_json("/api/wallet"))["balance"])


async def link_as(api: ApiClient, fake: FakeSlack, slack_user: str = "U0ANN") -> str:
    """Run a command unlinked, open the link it sends while signed in, and confirm."""
    sent = await fake.command(target(api), "hello", user_id=slack_user)
    assert sent.status == 200 and sent.body["response_type"] == "ephemeral"
    url = re.search(r"<([^|>]+)\|link your account>", sent.body["text"]).group(1)
    page = await api.get(local(url))
    assert page.status == 200
    html = await page.text()
    assert "Link Slack account" in html and "acme" in html
    token = re.search(r'name="token" value="([^"]+)"', html).group(1)
    linked = await api.post(
        "/integrations/slack/link", data={"token": token}, allow_redirects=False
    )
    assert linked.status == 303, await linked.text()
    return token


async def ask(api: ApiClient, fake: FakeSlack, text: str, **kw: Any) -> Any:
    """A signed command; waits for the answer to reach the response_url."""
    before = len(fake.responses)
    sent = await fake.command(target(api), text, **kw)
    assert sent.status == 200, sent.body
    await eventually(lambda: len(fake.responses) > before)
    return sent, fake.responses[-1]


def test_signatures_match_slacks_documented_example() -> None:
    # The example request of Slack's "Verifying requests from Slack" guide.
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
        b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
        b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
        b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
        b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert signing.sign(secret, 1531420618, body) == expected
    assert signature(secret, 1531420618, body) == expected  # the fake signs the same way
    headers = {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": expected}
    assert signing.verify(secret, headers, body, now=lambda: 1531420618 + 299)
    assert not signing.verify(secret, headers, body, now=lambda: 1531420618 + 301)
    assert not signing.verify(secret, headers, body + b"x", now=lambda: 1531420618)
    assert not signing.verify("", headers, body, now=lambda: 1531420618)


async def test_adding_the_app_to_a_workspace_keeps_its_bot_token_encrypted(
    configured: ApiClient, fake: FakeSlack
) -> None:
    api = configured
    start = await api.get("/integrations/slack/install", allow_redirects=False)
    assert start.status == 302
    consent = start.headers["Location"]
    assert consent.startswith(fake.url + "/oauth/v2/authorize?")
    query = parse_qs(urlsplit(consent).query)
    assert query["scope"] == ["commands,chat:write"] and query["client_id"] == [fake.client_id]
    # Slack's consent page sends the browser back with a code and the state.
    approved = await api.client.session.get(consent, allow_redirects=False)
    back = approved.headers["Location"]
    done = await api.get(local(back), allow_redirects=False)
    assert done.status == 303, await done.text()
    assert done.headers["Location"].startswith("/integrations?slack=installed")
    assert fake.calls.count("oauth.v2.access") == 1

    async with plugin_context(api.app, "slack").read() as session:
        [install] = list(await session.scalars(select(Install)))
    assert install.team_id == fake.team_id and install.team_name == "Acme"
    [token] = fake.bot_tokens
    assert token not in install.bot_token  # encrypted at rest
    assert plugin_context(api.app, "slack").decrypt(install.bot_token) == token

    page = await (await api.get("/integrations?slack=installed")).text()
    assert "Add to Slack" in page and "Acme" in page and token not in page
    assert "Slack is connected" in page
    # The Slack user who approved is linked to the account that added the app.
    assert "U0INSTALL" in page

    # The same code again is refused by Slack: a clear error, no second install.
    replay = await api.get(local(back), allow_redirects=False)
    assert replay.status == 422
    assert "Slack refused the install (invalid_code)" in await replay.text()
    # A state made for someone else (or forged) is refused before Slack is asked.
    forged = await api.get("/integrations/slack/oauth?code=x&state=nope", allow_redirects=False)
    assert forged.status == 422 and fake.calls.count("oauth.v2.access") == 2


async def test_a_command_is_answered_through_the_response_url_and_charged_exactly(
    configured: ApiClient, fake: FakeSlack
) -> None:
    api = configured
    await link_as(api, fake)
    before = await balance(api)

    ack, answer = await ask(api, fake, "model:script/alpha,script/beta Say hello")
    assert ack.body == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "Asking script/alpha, script/beta…",
    }
    assert answer["response_type"] == "in_channel"
    texts = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert texts == ["*Say hello*", "*script/alpha*\nHello from alpha", "*script/beta*\nBeta"]
    # Scripted prices: 1 credit per input token (10), 2 per output token (one per chunk).
    costs = [b["elements"][0]["text"] for b in answer["blocks"] if b["type"] == "context"]
    assert costs == ["20 credits", "12 credits"]
    assert await balance(api) == before - 20 - 12

    # The conversation is in the user's workspace like any other.
    [conversation] = (await api.get_json("/api/conversations"))["conversations"]
    tree = await api.get_json(f"/api/conversations/{conversation['id']}")
    assert sorted(m["content"] for m in tree["messages"]) == [
        "Beta",
        "Hello from alpha",
        "Say hello",
    ]


async def test_forged_or_stale_requests_are_refused_and_nothing_runs(
    configured: ApiClient, fake: FakeSlack, scripts: dict[str, Script]
) -> None:
    api = configured
    await link_as(api, fake)
    before = await balance(api)
    stale = await fake.command(target(api), "Say hello", timestamp=int(time.time()) - 6 * 60)
    forged = await fake.command(target(api), "Say hello", secret="not-the-signing-secret")
    for refused in (stale, forged):
        assert refused.status == 401
        assert refused.body["error"]["code"] == "bad_signature"
    async with aiohttp.ClientSession() as session:  # no signature at all, no cookies
        unsigned = await session.post(
            target(api),
            data="command=%2Fmultinotes&text=hi",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert unsigned.status == 401
    assert scripts[A].calls == 0 and fake.responses == []
    assert await balance(api) == before
    assert (await api.get_json("/api/conversations"))["conversations"] == []


async def test_an_unlinked_user_is_asked_to_link_and_nothing_is_charged(
    configured: ApiClient, fake: FakeSlack, scripts: dict[str, Script]
) -> None:
    api = configured
    before = await balance(api)
    sent = await fake.command(target(api), "Say hello", user_id="U0STRANGER")
    assert sent.status == 200 and sent.body["response_type"] == "ephemeral"
    assert "link your account" in sent.body["text"]
    assert scripts[A].calls == 0 and await balance(api) == before
    # Help needs no link; its placeholders are escaped (<...> is a link in Slack's mrkdwn).
    help_text = (await fake.command(target(api), "help", user_id="U0STRANGER")).body["text"]
    assert "*/multinotes &lt;prompt&gt;*" in help_text and "<prompt>" not in help_text
    # A link that was tampered with links nobody.
    bad = await api.get("/integrations/slack/link?token=forged")
    assert bad.status == 400 and "not valid" in await bad.text()


async def test_without_enough_credits_the_user_is_told_and_nothing_is_charged(
    configured: ApiClient, fake: FakeSlack, scripts: dict[str, Script]
) -> None:
    api = configured
    await link_as(api, fake)
    ctx = plugin_context(api.app, "slack")
    await ctx.debit(api.user["id"], await balance(api), reason="Spent", reference="drain")

    _, reply = await ask(api, fake, "Say hello")
    assert reply["response_type"] == "ephemeral"
    assert "enough credits" in reply["text"] and "/pricing" in reply["text"]
    assert scripts[A].calls == 0 and await balance(api) == 0


async def test_save_as_note_keeps_the_answer_for_the_linked_user_once(
    configured: ApiClient, fake: FakeSlack, make_client: Any
) -> None:
    api = configured
    await link_as(api, fake)
    _, answer = await ask(api, fake, "model:script/alpha Say hello")
    [button] = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["text"]["text"] == "Save as note"

    for _ in range(2):  # pressed twice: one note
        pressed = await fake.press(target(api), button["value"])
        assert pressed.status == 200
    await eventually(lambda: len(fake.responses) == 3)
    first, again = fake.responses[1:]
    assert first["text"].startswith("Saved as a note:") and again["text"] == first["text"]
    note_id = re.search(r"/notes/([0-9a-f]+)\|", first["text"]).group(1)
    note = await api.get_json(f"/api/documents/{note_id}")
    assert note["content"] == "Hello from alpha" and note["title"] == "Say hello"
    [folder] = (await api.get_json("/api/folders"))["folders"]
    assert folder["name"] == "Slack" and note["folder_id"] == folder["id"]
    assert len((await api.get_json("/api/documents"))["documents"]) == 1

    # Someone else in the channel, linked to another account, cannot keep it.
    other: ApiClient = await make_client()
    await other.register_and_login("bob@example.com", name="Bob")
    await link_as(other, fake, slack_user="U0BOB")
    await fake.press(target(api), button["value"], user_id="U0BOB")
    await eventually(lambda: len(fake.responses) == 4)
    assert fake.responses[-1]["text"] == "Only the person who asked can save this answer."
    assert (await other.get_json("/api/folders"))["folders"] == []


async def test_a_replayed_command_is_answered_and_charged_once(
    configured: ApiClient, fake: FakeSlack, scripts: dict[str, Script]
) -> None:
    api = configured
    await link_as(api, fake)
    before = await balance(api)
    form = fake.command_form("model:script/alpha Say hello")
    first = await fake.send_form(target(api), form)
    replay = await fake.send_form(target(api), form)  # the same signed request again
    assert first.status == replay.status == 200
    assert replay.body["text"] == "This command was already received."
    await eventually(lambda: len(fake.responses) == 1)
    assert scripts[A].calls == 1
    assert await balance(api) == before - 20


async def test_model_choice_and_a_per_user_default(
    configured: ApiClient, fake: FakeSlack, scripts: dict[str, Script]
) -> None:
    api = configured
    token = await link_as(api, fake)
    sent = await fake.command(target(api), "default script/beta")
    assert sent.body["text"] == "Your default model is now script/beta."
    _, answer = await ask(api, fake, "Which model?")
    assert answer["blocks"][1]["text"]["text"] == "*script/beta*\nBeta"
    unknown = await fake.command(target(api), "default script/nope")
    assert "No model 'script/nope'" in unknown.body["text"]
    _, refused = await ask(api, fake, "@script/nope Hi")
    assert (
        refused["response_type"] == "ephemeral" and "unknown or disabled model" in refused["text"]
    )

    # The /integrations panel shows the link with its default, and unlinks it.
    page = await (await api.get("/integrations")).text()
    assert "@ann in acme" in page and '<option value="script/beta" selected>' in page
    link_id = re.search(r"/integrations/slack/links/([0-9a-f]+)/unlink", page).group(1)
    gone = await api.post(f"/integrations/slack/links/{link_id}/unlink", allow_redirects=False)
    assert gone.status == 303
    again = await fake.command(target(api), "Hi")
    assert "link your account" in again.body["text"]
    # The link linked once: opening it again after unlinking does nothing.
    reused = await api.post(
        "/integrations/slack/link", data={"token": token}, allow_redirects=False
    )
    assert reused.status == 422 and "used already" in await reused.text()
    assert "link your account" in (await fake.command(target(api), "Hi")).body["text"]


async def test_an_answer_whose_response_url_expired_is_posted_by_the_bot(
    configured: ApiClient, fake: FakeSlack
) -> None:
    api = configured
    start = await api.get("/integrations/slack/install", allow_redirects=False)
    approved = await api.client.session.get(start.headers["Location"], allow_redirects=False)
    await api.get(local(approved.headers["Location"]), allow_redirects=False)
    await link_as(api, fake)
    fake.expire_responses = True
    sent = await fake.command(target(api), "model:script/alpha Say hello", channel_id="C0RANDOM")
    assert sent.status == 200
    await eventually(lambda: len(fake.messages) == 1)
    [message] = fake.messages
    assert message["channel"] == "C0RANDOM"
    assert message["blocks"][1]["text"]["text"] == "*script/alpha*\nHello from alpha"


async def test_slacks_url_check_and_uninstall_events(
    configured: ApiClient, fake: FakeSlack
) -> None:
    api = configured
    challenge = await fake.event(target(api), {"type": "url_verification", "challenge": "c4"})
    assert challenge.status == 200 and challenge.body == {"challenge": "c4"}
    start = await api.get("/integrations/slack/install", allow_redirects=False)
    approved = await api.client.session.get(start.headers["Location"], allow_redirects=False)
    await api.get(local(approved.headers["Location"]), allow_redirects=False)
    gone = await fake.event(
        target(api),
        {
            "type": "event_callback",
            "team_id": fake.team_id,
            "event": {"type": "app_uninstalled"},
        },
    )
    assert gone.status == 200
    async with plugin_context(api.app, "slack").read() as session:
        assert list(await session.scalars(select(Install))) == []


async def test_the_data_export_holds_the_users_slack_rows_but_no_token(
    configured: ApiClient, fake: FakeSlack
) -> None:
    from tests.test_privacy import download, finished_export, read_json

    api = configured
    start = await api.get("/integrations/slack/install", allow_redirects=False)
    approved = await api.client.session.get(start.headers["Location"], allow_redirects=False)
    await api.get(local(approved.headers["Location"]), allow_redirects=False)
    await link_as(api, fake)
    _, answer = await ask(api, fake, "model:script/alpha Say hello")
    [button] = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    await fake.press(target(api), button["value"])
    await eventually(lambda: len(fake.responses) == 2)

    started = await api.post("/api/me/export")
    done = await finished_export(api, (await started.json())["id"])
    archive = await download(api, done["download_url"])
    assert "plugins/slack/slack.json" in archive.read("README.txt").decode()
    data = read_json(archive, "plugins/slack/slack.json")
    assert [w["team_name"] for w in data["workspaces_added"]] == ["Acme"]
    assert {a["slack_user_id"] for a in data["linked_accounts"]} == {"U0INSTALL", "U0ANN"}
    [command] = data["commands"]
    assert command["prompt"] == "Say hello" and command["status"] == "answered"
    assert [s["message_id"] for s in data["saved_answers"]] == [button["value"]]
    everything = b"".join(archive.read(name) for name in archive.namelist())
    [token] = fake.bot_tokens
    assert token.encode() not in everything and b"/response/" not in everything


async def test_the_message_shortcut_keeps_any_message_as_a_note_once(
    configured: ApiClient, fake: FakeSlack
) -> None:
    api = configured
    stranger = await fake.shortcut(target(api), "Hi", user_id="U0STRANGER")
    assert stranger.status == 200
    await eventually(lambda: len(fake.responses) == 1)
    assert "link your account" in fake.responses[-1]["text"]

    await link_as(api, fake)
    for _ in range(2):  # used twice on the same message: one note
        assert (
            await fake.shortcut(target(api), "Ship it &amp; tell <@U0BOB>\nThen rest")
        ).status == 200
    await eventually(lambda: len(fake.responses) == 3)
    first, again = fake.responses[1:]
    assert first["text"].startswith("Saved as a note:") and again["text"] == first["text"]
    note_id = re.search(r"/notes/([0-9a-f]+)\|", first["text"]).group(1)
    note = await api.get_json(f"/api/documents/{note_id}")
    assert note["title"] == "Ship it & tell <@U0BOB>"
    assert note["content"].startswith("Ship it & tell <@U0BOB>\nThen rest\n\n_Kept from #general")
    [folder] = (await api.get_json("/api/folders"))["folders"]
    assert folder["name"] == "Slack" and note["folder_id"] == folder["id"]


async def test_a_model_that_fails_is_named_in_the_answer_and_costs_nothing(
    configured: ApiClient, fake: FakeSlack, scripts: dict[str, Script]
) -> None:
    api = configured
    scripts[B].failures = [ProviderBadResponse("Beta sent nonsense.")]
    await link_as(api, fake)
    before = await balance(api)
    _, answer = await ask(api, fake, "model:script/alpha,script/beta Say hello")
    sections = [b["text"]["text"] for b in answer["blocks"] if b["type"] == "section"]
    assert sections[2] == "*script/beta* could not answer: Beta sent nonsense."
    buttons = [e for b in answer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert len(buttons) == 1  # only the answer that exists can be saved
    assert await balance(api) == before - 20


async def test_a_body_bigger_than_slack_sends_is_refused_even_when_signed(
    configured: ApiClient, fake: FakeSlack, scripts: dict[str, Script]
) -> None:
    api = configured
    await link_as(api, fake)
    form = fake.command_form("model:script/alpha " + "x" * 70_000)
    refused = await fake.send_form(target(api), form)
    assert refused.status == 401 and scripts[A].calls == 0

    body = urlencode(fake.command_form("model:script/alpha Say hello")).encode()

    async def pieces() -> AsyncIterator[bytes]:  # a chunked body, as a proxy may forward it
        for start in range(0, len(body), 100):
            yield body[start : start + 100]

    async with aiohttp.ClientSession() as session:
        response = await session.post(
            target(api),
            data=pieces(),
            headers={"Content-Type": "application/x-www-form-urlencoded", **fake.headers(body)},
        )
        assert response.status == 200, await response.text()
