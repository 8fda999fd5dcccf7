"""The Gemini provider plugin, driven through the official google-genai SDK against a local fake
of the Gemini API (fake_gemini.py, beside this file)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from importlib.metadata import entry_points

import pytest
from fake_gemini import FakeGemini
from pydantic import SecretStr

from multinotes.plugin import (
    Attachment,
    ChatMessage,
    Chunk,
    ContentFiltered,
    GenerationRequest,
    Model,
    NeedsKey,
    Options,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.plugins.providers.gemini import GeminiProvider, GeminiSettings
from multinotes.testing import (
    ProviderConformance,
    check_connection,
    provider_request,
    refused_url,
    serve_fake,
)
from multinotes.testing import (
    collect as run,
)

# google-genai subclasses aiohttp.ClientSession, which aiohttp frowns upon; not ours to fix.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession:DeprecationWarning"
)

KEY = "gemini-test-key"
FLASH = "gemini/gemini-2.5-flash"


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini(api_key=KEY)


@pytest.fixture
async def fake_url(fake: FakeGemini) -> AsyncIterator[str]:
    async with serve_fake(fake.app()) as url:
        yield url


async def listed_model(provider: GeminiProvider, model_id: str) -> Model:
    return next(m for m in await provider.list_models(None) if m.id == model_id)


@pytest.fixture
def config(fake_url: str) -> GeminiSettings:
    return GeminiSettings(api_key=SecretStr(KEY), base_url=fake_url, timeout=5)


def ask(config: GeminiSettings, *messages: ChatMessage, **options: object) -> GenerationRequest:
    return provider_request(
        GeminiProvider(), config, list(messages), Options.model_validate(options)
    )


def user(text: str, *attachments: Attachment) -> ChatMessage:
    return ChatMessage("user", text, tuple(attachments))


async def collect(
    request: GenerationRequest, model_id: str = FLASH, into: list[Chunk] | None = None
) -> list[Chunk]:
    """What the model streams; ``into`` keeps what arrived before an error."""
    return await run(await listed_model(GeminiProvider(), model_id), request, into)


# -- streaming ----------------------------------------------------------------------------------


async def test_streams_text_deltas_and_reports_usage(fake: FakeGemini, config: GeminiSettings):
    request = ask(config, user("Say hello please"))

    chunks = await collect(request)

    assert chunks == ["Hello from ", "the fake ", "Gemini model."]
    assert (request.usage.input_tokens, request.usage.output_tokens) == (3, 6)
    (sent,) = fake.requests
    assert sent.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert sent.query == {"alt": "sse"}
    assert sent.headers["x-goog-api-key"] == KEY
    assert sent.json["contents"] == [{"role": "user", "parts": [{"text": "Say hello please"}]}]


async def test_thinking_tokens_are_billed_as_output(fake: FakeGemini, config: GeminiSettings):
    fake.thoughts_tokens = 40
    request = ask(config, user("Think first"))

    await collect(request)

    assert request.usage.output_tokens == 6 + 40


async def test_roles_system_instruction_and_options_map_to_gemini(
    fake: FakeGemini, config: GeminiSettings
):
    request = ask(
        config,
        ChatMessage("system", "Answer in French."),
        user("Hi"),
        ChatMessage("assistant", "Bonjour"),
        user("How are you?"),
        system="Be brief.",
        temperature=0.2,
        top_p=0.9,
        max_tokens=50,
    )

    await collect(request)

    body = fake.requests[0].json
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief.\n\nAnswer in French."}]
    assert [(c["role"], c["parts"]) for c in body["contents"]] == [
        ("user", [{"text": "Hi"}]),
        ("model", [{"text": "Bonjour"}]),
        ("user", [{"text": "How are you?"}]),
    ]
    assert body["generationConfig"] == {"temperature": 0.2, "topP": 0.9, "maxOutputTokens": 50}


async def test_no_options_sends_no_generation_config(fake: FakeGemini, config: GeminiSettings):
    await collect(ask(config, user("Hi")))

    body = fake.requests[0].json
    assert not body.get("generationConfig")
    assert "systemInstruction" not in body


async def test_image_input_travels_inline_before_the_text(fake: FakeGemini, config: GeminiSettings):
    png = b"\x89PNG\r\n\x1a\nfake-image"
    request = ask(config, user("What is this?", Attachment("image/png", png, "cat.png")))

    assert await collect(request)

    image, text = fake.requests[0].parts()
    assert base64.b64decode(image["inlineData"]["data"]) == png
    assert image["inlineData"]["mime_type"] == "image/png"
    assert text == {"text": "What is this?"}
    assert request.usage.input_tokens == 3 + 258


async def test_pdf_audio_and_video_travel_as_inline_data(fake: FakeGemini, config: GeminiSettings):
    files = [
        Attachment("application/pdf", b"%PDF-1.7 fake", "report.pdf"),
        Attachment("audio/mpeg", b"ID3 fake mp3", "memo.mp3"),
        Attachment("video/mp4", b"\x00\x00\x00\x18ftypmp42", "clip.mp4"),
    ]

    await collect(ask(config, user("Summarise these", *files)), "gemini/gemini-2.5-pro")

    parts = fake.requests[0].parts()
    assert fake.requests[0].path.endswith("/gemini-2.5-pro:streamGenerateContent")
    assert [p["inlineData"]["mime_type"] for p in parts[:3]] == [f.media_type for f in files]
    assert [base64.b64decode(p["inlineData"]["data"]) for p in parts[:3]] == [f.data for f in files]
    assert parts[3] == {"text": "Summarise these"}


# -- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, SecretStr(""), SecretStr("   ")])
async def test_missing_key_needs_key_and_sends_nothing(fake: FakeGemini, fake_url: str, key):
    config = GeminiSettings(api_key=key, base_url=fake_url)

    with pytest.raises(NeedsKey, match="Plugins console"):
        await collect(ask(config, user("Hi")))
    with pytest.raises(NeedsKey):
        await check_connection(GeminiProvider(), config)

    assert fake.requests == []


async def test_wrong_key_is_needs_key(fake: FakeGemini, fake_url: str):
    """Gemini answers a wrong key with 400 INVALID_ARGUMENT / API_KEY_INVALID, not 401."""
    config = GeminiSettings(api_key=SecretStr("wrong"), base_url=fake_url)

    with pytest.raises(NeedsKey, match="rejected the API key"):
        await collect(ask(config, user("Hi")))

    assert fake.requests[0].api_key == "wrong"


@pytest.mark.parametrize("status", ["401", "403"])
async def test_unauthorized_and_forbidden_are_needs_key(
    fake: FakeGemini, config: GeminiSettings, status: str
):
    fake.next_failures.append(status)

    with pytest.raises(NeedsKey, match=status):
        await collect(ask(config, user("Hi")))


# -- failures -----------------------------------------------------------------------------------


async def test_rate_limit_falls_back_to_retry_info(fake: FakeGemini, config: GeminiSettings):
    fake.retry_after = None
    fake.next_failures.append("429")

    with pytest.raises(ProviderRateLimited) as caught:
        await collect(ask(config, user("Hi")))

    assert caught.value.retry_after == 12


async def test_other_client_errors_are_provider_errors_with_gemini_message(
    fake: FakeGemini, config: GeminiSettings
):
    fake.next_failures.append("400")

    with pytest.raises(ProviderError, match="Fake failure 400") as caught:
        await collect(ask(config, user("Hi")))

    assert type(caught.value) is ProviderError
    assert not caught.value.retryable


async def test_slow_answer_times_out_as_unavailable(fake: FakeGemini, fake_url: str):
    fake.slow_seconds = 3
    fake.next_failures.append("slow")
    config = GeminiSettings(api_key=SecretStr(KEY), base_url=fake_url, timeout=0.3)
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable, match=r"did not answer within 0\.3 s"):
        await collect(ask(config, user("Hi")))

    assert time.monotonic() - started < 2


async def test_refused_connection_is_unavailable_at_once():
    """No silent SDK reconnect (it would sleep 1-10 s first)."""
    config = GeminiSettings(api_key=SecretStr(KEY), base_url=refused_url(""))
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable, match="connection"):
        await collect(ask(config, user("Hi")))

    assert time.monotonic() - started < 1


async def test_stream_cut_midway_is_unavailable_after_the_first_chunks(
    fake: FakeGemini, config: GeminiSettings
):
    fake.next_failures.append("cut")
    received: list[Chunk] = []

    with pytest.raises(ProviderUnavailable):
        await collect(ask(config, user("Hi")), into=received)

    assert received == ["Hello from "]


async def test_malformed_chunk_is_bad_response(fake: FakeGemini, config: GeminiSettings):
    fake.next_failures.append("malformed")

    with pytest.raises(ProviderBadResponse):
        await collect(ask(config, user("Hi")))


async def test_blocked_prompt_is_a_content_filter_refusal_that_says_why(
    fake: FakeGemini, config: GeminiSettings
):
    fake.next_failures.append("blocked")

    with pytest.raises(ContentFiltered, match="declined to answer this prompt \\(SAFETY\\)"):
        await collect(ask(config, user("Something unsafe")))


async def test_an_answer_cut_off_for_safety_is_a_content_filter_refusal(
    fake: FakeGemini, config: GeminiSettings
):
    fake.next_failures.append("unsafe")

    with pytest.raises(ContentFiltered) as refused:
        await collect(ask(config, user("Something unsafe")))
    assert refused.value.error_code == "content_filtered"
    assert "stopped this answer (SAFETY)" in refused.value.message


# -- provider -----------------------------------------------------------------------------------


async def test_check_lists_models_with_the_key(fake: FakeGemini, config: GeminiSettings):
    text = await check_connection(GeminiProvider(), config)

    assert text == "Connected to Gemini: the key sees 3 model(s), 3 of the 4 offered here."
    (sent,) = fake.requests
    assert (sent.method, sent.path, sent.api_key) == ("GET", "/v1beta/models", KEY)


async def test_check_reports_a_bad_key(fake: FakeGemini, fake_url: str):
    config = GeminiSettings(api_key=SecretStr("wrong"), base_url=fake_url)

    with pytest.raises(NeedsKey):
        await check_connection(GeminiProvider(), config)


async def test_catalog_has_real_names_capabilities_and_prices_in_credits():
    models = {m.id: m for m in await GeminiProvider().list_models(None)}

    assert set(models) == {
        "gemini/gemini-2.5-pro",
        "gemini/gemini-2.5-flash",
        "gemini/gemini-2.5-flash-lite",
        "gemini/gemini-2.0-flash",
    }
    flash = models[FLASH]
    assert flash.capabilities == {"text", "code", "vision", "file_input"}
    # US$0.30 / US$2.50 per million tokens; 1 credit = US$0.00001.
    assert (flash.pricing.input_per_million, flash.pricing.output_per_million) == (30_000, 250_000)
    assert (flash.context_window, flash.max_output) == (1_048_576, 65_536)


def test_settings_defaults_and_trailing_slash():
    settings = GeminiSettings(base_url="https://proxy.example/gemini/")

    assert settings.base_url == "https://proxy.example/gemini"
    defaults = GeminiSettings()
    assert (defaults.base_url, defaults.api_version, defaults.timeout, defaults.api_key) == (
        "https://generativelanguage.googleapis.com",
        "v1beta",
        60.0,
        None,
    )


def test_plugin_is_a_multinotes_entry_point():
    """Declared in the ``multinotes`` entry-point group, so it loads like a third-party plugin."""
    import multinotes.plugins.providers.gemini as plugin

    [point] = [e for e in entry_points(group="multinotes") if e.name == "gemini"]
    assert point.load() is plugin
    assert plugin.register_providers and plugin.register_settings


# -- the provider contract ----------------------------------------------------------------------


class TestConformance(ProviderConformance):
    model_id = FLASH
    api_key = KEY

    def make_fake(self) -> FakeGemini:
        return FakeGemini(api_key=KEY)

    def make_provider(self) -> GeminiProvider:
        return GeminiProvider()

    def make_settings(self, url: str, api_key: str | None) -> GeminiSettings:
        return GeminiSettings(
            api_key=SecretStr(api_key) if api_key else None, base_url=url, timeout=5
        )
