"""The media tools' pages in a real browser (issue #18 item 8), on a server whose OpenAI and
Together plugins talk to their local fakes: speech to text transcribes a chosen WAV, the image
tools draw with DALL·E 3 and FLUX, text to speech gives a player; each answer says what it cost,
and what a model made is listed in Files."""

from __future__ import annotations

import io
import re
import secrets
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from multinotes.plugins.providers.openai.tests.fake_openai import FakeOpenAI
from multinotes.plugins.providers.together.tests.fake_together import FakeTogether
from tests.browser.conftest import Account, Browsing, api_account, running_server, wait_for_js
from tests.fakes.in_thread import ServedInThread

OPENAI_KEY = "sk-browser-media-0000000000"
TOGETHER_KEY = "together-browser-media"
DALLE, FLUX = "openai/dall-e-3", "together/black-forest-labs/FLUX.1-schnell"
TTS, WHISPER = "openai/tts-1", "openai/whisper-1"

#: A process's first OpenAI media call imports the SDK (in a thread, ~0.8 s alone; several
#: seconds with four test workers on two cores), so its answer may take longer than expect's 5 s.
FIRST_MEDIA_CALL_MS = 20_000


def status(card: Any) -> Any:
    return card.locator('[data-field="status"]')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own server: its OpenAI and Together plugins point at the fakes."""
    openai_fake = FakeOpenAI(api_key=OPENAI_KEY, transcript="Meet me at the harbour at noon.")
    openai_fake.audio_seconds = 2.0
    with (
        ServedInThread(openai_fake) as openai_served,
        ServedInThread(FakeTogether(api_key=TOGETHER_KEY)) as together_served,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("MULTINOTES_PLUGINS__OPENAI__BASE_URL", openai_served.url + "/v1")
        env.setenv("MULTINOTES_PLUGINS__OPENAI__API_KEY", OPENAI_KEY)
        env.setenv("MULTINOTES_PLUGINS__TOGETHER__BASE_URL", together_served.url)
        env.setenv("MULTINOTES_PLUGINS__TOGETHER__API_KEY", TOGETHER_KEY)
        env.setenv("MULTINOTES_OUTGOING_ALLOW", "127.0.0.1/32")
        with running_server(tmp_path_factory.mktemp("media") / "data") as url:
            yield url


@pytest.fixture
def person(browser: Any, server: str) -> Account:
    tag = secrets.token_hex(3)
    return api_account(browser, server, "Mia Media", f"mia.{tag}@example.com")


def short_wav(seconds: float = 2.0, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(rate * seconds))
    return buffer.getvalue()


def open_tool(browsing: Browsing, person: Account, tool: str, heading: str) -> Any:
    page = browsing.new_page(storage_state=person.storage_state)
    page.goto(f"/chat?tool={tool}")
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    return page


def choose_model(page: Any, model_id: str) -> None:
    page.locator("#model-summary").click()
    for box in page.locator('#model-picker input[name="models"]:not([disabled])').all():
        box.set_checked(box.get_attribute("value") == model_id)
    page.locator("#model-summary").click()


def answer(page: Any, model_id: str) -> Any:
    return page.locator(f'#thread .answer[data-model="{model_id}"]:visible').last


def spent(page: Any) -> int:
    entries = page.request.get("/api/wallet/ledger").json()["entries"]
    return -sum(e["amount"] for e in entries if e["kind"] != "hold" and e["amount"] < 0)


def generated_files(page: Any) -> list[dict[str, Any]]:
    files = page.request.get("/api/files").json()["files"]
    return [f for f in files if f["source"] == "generated"]


def test_speech_to_text_transcribes_a_chosen_wav(
    browsing: Browsing, person: Account, tmp_path: Path, screenshot: Any
) -> None:
    page = open_tool(browsing, person, "speech_to_text", "Speech to text")
    choose_model(page, WHISPER)
    recording = tmp_path / "memo.wav"
    recording.write_bytes(short_wav())
    page.locator("#attach").set_input_files(str(recording))
    expect(page.get_by_role("list", name="Attached files")).to_contain_text("memo.wav")
    page.get_by_role("button", name="Send").click()

    card = answer(page, WHISPER)
    expect(status(card)).to_have_text("Complete", timeout=FIRST_MEDIA_CALL_MS)
    expect(card).to_contain_text("Meet me at the harbour at noon.")
    # Two seconds of audio at Whisper's per-minute price (US$0.006 = 600 credits a minute).
    assert spent(page) == 20
    screenshot(page, "media-speech-to-text")


def test_the_image_tool_draws_with_dall_e_and_flux_into_files(
    browsing: Browsing, person: Account, screenshot: Any
) -> None:
    page = open_tool(browsing, person, "image", "Image")
    for model in (DALLE, FLUX):
        choose_model(page, model)
        page.get_by_label("Prompt", exact=True).fill("A lighthouse at dawn")
        page.get_by_role("button", name="Send").click()
        card = answer(page, model)
        expect(status(card)).to_have_text("Complete", timeout=FIRST_MEDIA_CALL_MS)
        image = card.locator(".answer-media img")
        expect(image).to_have_count(1)
        expect(image).to_have_attribute("src", re.compile(r"^/api/media/[0-9a-f]{32}$"))
        wait_for_js(
            page, "img => img.complete && img.naturalWidth === 1", arg=image.element_handle()
        )
        expect(card.locator(".answer-stats")).to_contain_text("1 image")
    # US$0.04 for DALL·E 3 and US$0.00283 for FLUX.1 [schnell], per image.
    assert spent(page) == 4000 + 283
    wait_for_js(
        page,
        "() => fetch('/api/files').then(r => r.json())"
        ".then(d => d.files.filter(f => f.source === 'generated').length === 2)",
    )
    assert {f["content_type"] for f in generated_files(page)} == {"image/png"}
    page.goto("/files")
    expect(page.locator("main")).to_contain_text("openai-dall-e-3-image-1.png")
    screenshot(page, "media-images-in-files")


def test_text_to_speech_gives_a_player(browsing: Browsing, person: Account) -> None:
    page = open_tool(browsing, person, "text_to_speech", "Text to speech")
    choose_model(page, TTS)
    page.locator("#tool-voice").select_option("nova")
    page.get_by_label("Prompt", exact=True).fill("Good morning, harbour.")
    page.get_by_role("button", name="Send").click()
    card = answer(page, TTS)
    expect(status(card)).to_have_text("Complete", timeout=FIRST_MEDIA_CALL_MS)
    player = card.locator(".answer-media audio")
    expect(player).to_have_count(1)
    expect(player).to_have_attribute("src", re.compile(r"^/api/media/[0-9a-f]{32}$"))
    assert spent(page) > 0
