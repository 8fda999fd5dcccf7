"""Media tools end to end (issue #18 item 8): image generation (OpenAI and Together), text to
speech and speech to text, each through the workspace's HTTP API with the real provider plugins
pointed at their local fakes. Each is charged per image or per audio minute (a ledger entry of
exactly that amount), and what a model made lands in the user's Files, served to its owner only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest

from multinotes.plugins.providers.openai.tests.fake_openai import AUDIO_HEADERS, FakeOpenAI
from multinotes.plugins.providers.together.tests.fake_together import FakeTogether
from multinotes.testing import ApiClient
from tests.fakes import serve_fake
from tests.support.sse import parse_sse

OPENAI_KEY = "sk-media-key-0000000000000"
TOGETHER_KEY = "together-media-key"
DALLE, FLUX = "openai/dall-e-3", "together/black-forest-labs/FLUX.1-schnell"
TTS, WHISPER = "openai/tts-1", "openai/whisper-1"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeOpenAI, FakeTogether]]:
    openai_fake = FakeOpenAI(api_key=OPENAI_KEY, transcript="Hello from the recording.")
    openai_fake.audio_seconds = 3.0  # the length of short_wav(): billed per audio minute
    together_fake = FakeTogether(api_key=TOGETHER_KEY)
    async with serve_fake(openai_fake.app()) as a, serve_fake(together_fake.app()) as b:
        openai_fake.url, together_fake.url = a, b  # type: ignore[attr-defined]
        yield openai_fake, together_fake


@pytest.fixture
def settings(make_settings, fakes):
    openai_fake, together_fake = fakes
    return make_settings(
        plugins={
            "openai": {"base_url": openai_fake.url + "/v1", "api_key": OPENAI_KEY},
            "together": {"base_url": together_fake.url, "api_key": TOGETHER_KEY},
        }
    )


@pytest.fixture
async def stranger(user: ApiClient, make_client) -> ApiClient:
    other = await make_client()
    await other.register_and_login("stranger@example.com")
    return other


def short_wav(seconds: float = 3.0, rate: int = 8000) -> bytes:
    """A real (silent) mono 16-bit WAV recording."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(rate * seconds))
    return buffer.getvalue()


def expected_cost(pricing: dict[str, Any], usage: dict[str, Any]) -> int:
    amount = (
        usage["input_tokens"] * pricing["input_per_million"] / 1_000_000
        + usage["output_tokens"] * pricing["output_per_million"] / 1_000_000
        + usage["images"] * pricing["per_image"]
        + usage["audio_seconds"] / 60 * pricing["per_audio_minute"]
    )
    return math.ceil(amount - 1e-9) if amount > 0 else 0


async def run_tool(api: ApiClient, tool: str, model: str, **body: Any) -> dict[str, Any]:
    """One request from a tool's page, as the workspace sends it; its events by name."""
    response = await api.post("/api/messages", {"tool": tool, "models": [model], **body})
    assert response.status == 200, await response.text()
    events = parse_sse(await response.text())
    named: dict[str, Any] = {}
    for name, data in events:
        named.setdefault(name, []).append(data)
    assert "error" not in named, named["error"]
    return named


async def kept_files(api: ApiClient, count: int) -> list[dict[str, Any]]:
    """The user's generated files, once the completed event's handler kept them."""
    for _ in range(100):
        files = [
            f for f in (await api.get_json("/api/files"))["files"] if f["source"] == "generated"
        ]
        if len(files) >= count:
            return files
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} generated files, have {files}")


async def charge_of(api: ApiClient, model_id: str) -> dict[str, Any]:
    """The one ledger entry that charged this model's answer."""
    entries = (await api.get_json("/api/wallet/ledger"))["entries"]
    charges = [e for e in entries if e["model"] == model_id and e["kind"] != "hold"]
    assert len(charges) == 1, entries
    return charges[0]


async def pricing_of(api: ApiClient, model_id: str) -> dict[str, Any]:
    models = {m["id"]: m for m in await api.get_json("/api/models")}
    assert models[model_id]["available"], models[model_id]
    return models[model_id]["pricing"]


async def check_media_is_private(
    api: ApiClient, stranger: ApiClient, media: dict[str, Any], file: dict[str, Any], data: bytes
) -> None:
    served = await api.get(media["url"])
    assert served.status == 200 and await served.read() == data
    content = await api.get(f"/api/files/{file['id']}/content")
    assert content.status == 200 and await content.read() == data
    assert (await stranger.get(media["url"])).status == 404
    assert (await stranger.get(f"/api/files/{file['id']}/content")).status == 404
    assert (await stranger.get_json("/api/files"))["files"] == []


@pytest.mark.parametrize(
    ("model", "fake_index", "path"),
    [(DALLE, 0, "/v1/images/generations"), (FLUX, 1, "/v1/images/generations")],
    ids=["openai", "together"],
)
async def test_image_generation_is_charged_per_image_and_kept_in_files(
    user: ApiClient, stranger: ApiClient, fakes, model: str, fake_index: int, path: str
):
    pricing = await pricing_of(user, model)
    before = (await user.get_json("/api/wallet"))["balance"]
    events = await run_tool(
        user, "image", model, content="A lighthouse at dawn", options={model: {"n": 2}}
    )
    [done] = events["done"]
    assert done["status"] == "complete" and done["usage"]["images"] == 2
    assert (
        done["cost"]
        == expected_cost(pricing, done["usage"])
        == math.ceil(2 * pricing["per_image"] - 1e-9)
    )
    assert (await user.get_json("/api/wallet"))["balance"] == before - done["cost"]
    charge = await charge_of(user, model)
    assert charge["amount"] == -done["cost"]
    calls = [r for r in fakes[fake_index].requests if r.path == path]
    assert calls and all(r.json["prompt"] == "A lighthouse at dawn" for r in calls)

    media = events["media"]
    assert [m["media_type"] for m in media] == ["image/png", "image/png"]
    files = await kept_files(user, 2)
    assert {f["content_type"] for f in files} == {"image/png"}
    image = await (await user.get(media[0]["url"])).read()
    assert image.startswith(b"\x89PNG")
    await check_media_is_private(user, stranger, media[0], files[0], image)


async def test_text_to_speech_is_charged_per_audio_minute_and_kept_in_files(
    user: ApiClient, stranger: ApiClient, fakes
):
    openai_fake, _ = fakes
    pricing = await pricing_of(user, TTS)
    text = "Good morning. This sentence is read aloud by the speech model."
    events = await run_tool(
        user,
        "text_to_speech",
        TTS,
        content=text,
        options={TTS: {"voice": "nova", "format": "mp3"}},
    )
    [done] = events["done"]
    assert done["status"] == "complete"
    assert done["usage"]["audio_seconds"] == pytest.approx(len(text) / 15)
    assert done["cost"] == expected_cost(pricing, done["usage"]) > 0
    assert (await charge_of(user, TTS))["amount"] == -done["cost"]
    [call] = [r for r in openai_fake.requests if r.path == "/v1/audio/speech"]
    assert call.json["voice"] == "nova" and call.json["input"] == text

    [media] = events["media"]
    assert media["media_type"] == "audio/mpeg"
    [file] = await kept_files(user, 1)
    assert file["content_type"].startswith("audio/")
    audio = AUDIO_HEADERS["mp3"] + f"FAKE-MP3:nova:{text}".encode()
    await check_media_is_private(user, stranger, media, file, audio)


async def test_speech_to_text_transcribes_a_wav_and_is_charged_per_audio_minute(
    user: ApiClient, fakes
):
    openai_fake, _ = fakes
    pricing = await pricing_of(user, WHISPER)
    recording = short_wav()
    before = (await user.get_json("/api/wallet"))["balance"]
    events = await run_tool(
        user,
        "speech_to_text",
        WHISPER,
        content="Transcribe the attached audio.",
        attachments=[
            {
                "media_type": "audio/wav",
                "data": base64.b64encode(recording).decode(),
                "name": "memo.wav",
            }
        ],
    )
    [done] = events["done"]
    assert done["status"] == "complete"
    assert "".join(d["text"] for d in events.get("delta", [])) == "Hello from the recording."
    assert done["usage"]["audio_seconds"] == 3.0
    # Three seconds at the per-minute price.
    assert done["cost"] == math.ceil(3 / 60 * pricing["per_audio_minute"] - 1e-9) > 0
    assert (await user.get_json("/api/wallet"))["balance"] == before - done["cost"]
    assert (await charge_of(user, WHISPER))["amount"] == -done["cost"]
    [call] = [r for r in openai_fake.requests if r.path == "/v1/audio/transcriptions"]
    assert call.form["model"] == "whisper-1" and call.form["response_format"] == "verbose_json"
    assert call.form["file"]["filename"] == "memo.wav"
    assert call.form["file"]["size"] == len(recording)

    # The transcript is the answer, stored in the conversation.
    conversation = await user.get_json(
        f"/api/conversations/{events['prompt'][0]['conversation_id']}"
    )
    answer = next(m for m in conversation["messages"] if m["role"] == "assistant")
    assert answer["content"] == "Hello from the recording." and answer["status"] == "complete"


async def test_speech_to_text_in_a_conversation_with_earlier_turns(user: ApiClient, fakes):
    """Whisper reads no text context: a second recording in the same conversation is
    transcribed too, whatever came before it."""
    attachment = {
        "media_type": "audio/wav",
        "data": base64.b64encode(short_wav()).decode(),
        "name": "one.wav",
    }
    events = await run_tool(
        user, "speech_to_text", WHISPER, content="Transcribe.", attachments=[attachment]
    )
    conversation = events["prompt"][0]["conversation_id"]
    response = await user.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "And this one. " * 50, "models": [WHISPER], "attachments": [attachment]},
    )
    assert response.status == 200, await response.text()
    done = next(d for n, d in parse_sse(await response.text()) if n == "done")
    assert done["status"] == "complete"


async def test_openai_compatible_lists_only_the_chat_models_a_server_offers(make_settings, fakes):
    """A connection whose server lists every model it has (OpenAI itself, LocalAI, vLLM) offers
    only chat models: speech, image, embedding and moderation models cannot answer a chat."""
    from multinotes.app import create_app
    from multinotes.testing import app_client

    openai_fake, _ = fakes
    openai_fake.api_key = None
    openai_fake.models = [
        "gpt-4o-mini",
        "llama3.2",
        "whisper-1",
        "tts-1-hd",
        "gpt-4o-mini-tts",
        "gpt-4o-transcribe",
        "dall-e-3",
        "gpt-image-1",
        "text-embedding-3-small",
        "nomic-embed-text",
        "omni-moderation-latest",
    ]
    connections = [{"name": "local", "base_url": openai_fake.url + "/v1"}]
    settings = make_settings(plugins={"openai_compatible": {"connections": connections}})
    async with app_client(create_app(settings)) as api:
        await api.register_admin()
        listed = {m["id"] for m in await api.get_json("/api/models")}
        offered = {m.removeprefix("local/") for m in listed if m.startswith("local/")}
        assert offered == {"gpt-4o-mini", "llama3.2"}
