"""The OpenAI provider plugin, driven through the official SDK against a local fake of the OpenAI
API (fake_openai.py, beside this file)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from importlib.metadata import entry_points

import pytest
from fake_openai import AUDIO_HEADERS, FakeOpenAI, tiny_png
from pydantic import SecretStr, ValidationError

from multinotes.plugin import (
    Attachment,
    ChatMessage,
    Invalid,
    MediaOutput,
    Model,
    NeedsKey,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    openai_wire,
)
from multinotes.plugins.providers.openai import OpenAIProvider, OpenAISettings
from multinotes.plugins.providers.openai import models as m
from multinotes.testing import (
    ProviderConformance,
    check_connection,
    make_request,
    refused_url,
    serve_fake,
)
from multinotes.testing import (
    collect as run,
)

#: A chat, an image, a speech and a transcription model.
ONE_OF_EACH_KIND = ("gpt-4o", "dall-e-3", "tts-1", "whisper-1")


def model_of(name: str) -> Model:
    """The plugin's model ``openai/<name>``, built from its record as the plugin builds it."""
    return next(model for model in m.build_models() if model.model_id == f"openai/{name}")


KEY = "sk-test-key"


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(api_key=KEY)


@pytest.fixture
async def fake_url(fake: FakeOpenAI) -> AsyncIterator[str]:
    async with serve_fake(fake.app()) as url:
        yield f"{url}/v1"


@pytest.fixture
def config(fake_url: str) -> OpenAISettings:
    return OpenAISettings(api_key=SecretStr(KEY), base_url=fake_url, timeout=5)


AUDIO = Attachment("audio/mpeg", b"ID3fake-mp3-bytes", "memo.mp3")


# -- chat ---------------------------------------------------------------------------------------


async def test_chat_streams_text_and_reports_the_servers_usage(fake, config):
    request = make_request(model_of("gpt-4o-mini"), config, "Say hello to the team")

    chunks = await run(model_of("gpt-4o-mini"), request)

    assert "".join(chunks) == fake.reply
    assert len(chunks) > 1  # streamed, not one blob
    # The fake counts prompt words and one token per streamed piece.
    assert (request.usage.input_tokens, request.usage.output_tokens) == (5, 5)
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["stream"] is True
    assert sent.json["stream_options"] == {"include_usage": True}


async def test_chat_options_and_system_prompt_are_sent(fake, config):
    history = [
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello!"),
        ChatMessage("user", "Write a haiku"),
    ]
    options = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "system": "Be brief."}
    request = make_request(model_of("gpt-4.1"), config, *history, options=options)

    await run(model_of("gpt-4.1"), request)

    body = fake.requests[-1].json
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Write a haiku"},
    ]
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body


async def test_images_in_a_user_message_arrive_as_data_urls(fake, config):
    image = Attachment("image/png", tiny_png(), "dot.png")
    message = ChatMessage("user", "What is in this picture?", (image, AUDIO))

    await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, message))

    content = fake.requests[-1].json["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "What is in this picture?"}
    url = content[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,iVBOR")
    assert len(content) == 2  # the audio attachment is not something chat models read


async def test_stopping_early_closes_the_stream_quietly(fake, config):
    stream = model_of("gpt-4o").stream(make_request(model_of("gpt-4o"), config, "hello"))
    first = await stream.__anext__()
    await stream.aclose()
    assert first


# -- images, speech, transcription --------------------------------------------------------------


async def test_image_generation_yields_png_bytes_and_counts_images(fake, config):
    request = make_request(model_of("dall-e-3"), config, "a red fox", options={"n": 2})

    chunks = await run(model_of("dall-e-3"), request)

    assert [type(c) for c in chunks] == [MediaOutput, MediaOutput]
    assert all(c.media_type == "image/png" and c.data == tiny_png() for c in chunks)
    assert request.usage.images == 2
    calls = [r.json for r in fake.requests]
    assert [c["response_format"] for c in calls] == ["b64_json", "b64_json"]
    assert calls[0] | {"n": 1} == calls[0]  # DALL·E 3 draws one image per call
    assert (calls[0]["model"], calls[0]["prompt"], calls[0]["size"]) == (
        "dall-e-3",
        "a red fox",
        "1024x1024",
    )


async def test_wide_images_are_a_model_of_their_own_at_their_own_price(fake, config):
    model = model_of("dall-e-3-wide")
    request = make_request(model, config, "a wide fox", options={"size": "1024x1792"})

    [image] = await run(model, request)

    assert isinstance(image, MediaOutput) and request.usage.images == 1
    assert (fake.requests[-1].json["model"], fake.requests[-1].json["size"]) == (
        "dall-e-3",
        "1024x1792",
    )
    assert model.pricing.per_image == 2 * model_of("dall-e-3").pricing.per_image


def test_each_dall_e_3_model_accepts_only_the_sizes_of_its_price():
    with pytest.raises(ValidationError):
        model_of("dall-e-3").Options.model_validate({"size": "1792x1024"})
    with pytest.raises(ValidationError):
        model_of("dall-e-3-wide").Options.model_validate({"size": "1024x1024"})
    with pytest.raises(ValidationError):
        model_of("dall-e-3").Options.model_validate({"size": "256x256"})


async def test_text_to_speech_returns_audio_in_the_asked_format(fake, config):
    options = {"voice": "nova", "format": "wav", "speed": 1.25}
    request = make_request(model_of("tts-1"), config, "Read me aloud", options=options)

    [audio] = await run(model_of("tts-1"), request)

    assert isinstance(audio, MediaOutput)
    assert audio.media_type == "audio/wav"
    assert audio.data == AUDIO_HEADERS["wav"] + b"FAKE-WAV:nova:Read me aloud"
    # Billed per character: 15 characters count as a second of speech.
    assert request.usage.audio_seconds == len("Read me aloud") / 15
    body = fake.requests[-1].json
    assert body == {
        "model": "tts-1",
        "input": "Read me aloud",
        "voice": "nova",
        "response_format": "wav",
        "speed": 1.25,
    }


async def test_transcription_reads_the_last_user_audio_and_reports_its_duration(fake, config):
    message = ChatMessage("user", "", (AUDIO,))
    request = make_request(model_of("whisper-1"), config, message, options={"language": "en"})

    chunks = await run(model_of("whisper-1"), request)

    assert chunks == [fake.transcript]
    assert request.usage.audio_seconds == fake.audio_seconds
    form = fake.requests[-1].form
    assert form["model"] == "whisper-1"
    assert form["response_format"] == "verbose_json"
    assert form["language"] == "en"
    assert form["file"]["filename"] == "memo.mp3"
    assert form["file"]["size"] == len(AUDIO.data)


async def test_transcription_without_audio_is_a_user_error(fake, config):
    with pytest.raises(Invalid):
        whisper = model_of("whisper-1")
        await run(whisper, make_request(whisper, config, "no file here"))
    assert fake.requests == []


# -- failures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [model_of(n) for n in ONE_OF_EACH_KIND])
async def test_a_missing_key_fails_before_any_request(fake, fake_url, model):
    config = OpenAISettings(base_url=fake_url)
    message = ChatMessage("user", "hello", (AUDIO,))

    with pytest.raises(NeedsKey) as caught:
        await run(model, make_request(model, config, message))

    assert "OpenAI" in caught.value.message and "Plugins console" in caught.value.message
    assert fake.requests == []


@pytest.mark.parametrize("status", ["401", "403"])
async def test_a_rejected_key_needs_a_new_key(fake, config, status):
    fake.next_failures.append(status)
    with pytest.raises(NeedsKey) as caught:
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"))
    assert "OpenAI" in caught.value.message and "Plugins console" in caught.value.message


async def test_a_wrong_key_reaches_the_server_and_is_rejected(fake, fake_url):
    config = OpenAISettings(api_key=SecretStr("sk-wrong"), base_url=fake_url)
    with pytest.raises(NeedsKey):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"))
    assert fake.requests[-1].headers["Authorization"] == "Bearer sk-wrong"


@pytest.mark.parametrize("model", [model_of(n) for n in ONE_OF_EACH_KIND])
async def test_rate_limits_carry_the_retry_after_hint(fake, config, model):
    fake.next_failures.append("429")
    message = ChatMessage("user", "hello", (AUDIO,))
    with pytest.raises(ProviderRateLimited) as caught:
        await run(model, make_request(model, config, message))
    assert caught.value.retry_after == 7.0
    assert len(fake.requests) == 1  # the SDK does not retry on its own


async def test_a_slow_server_times_out_as_unavailable(fake, fake_url):
    # Far beyond the client's 0.3 s: the bound below holds on a busy machine and still tells an
    # honoured timeout from a wait for the server.
    fake.slow_seconds = 10.0
    fake.next_failures.append("slow")
    config = OpenAISettings(api_key=SecretStr(KEY), base_url=fake_url, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="in time"):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"))
    assert time.monotonic() - started < 5


async def test_the_core_timeout_caps_the_plugin_timeout(fake, config):
    fake.slow_seconds = 2.0
    fake.next_failures.append("slow")
    with pytest.raises(ProviderUnavailable):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi", timeout=0.3))


async def test_a_stream_cut_mid_answer_is_unavailable_after_the_text_so_far(fake, config):
    fake.next_failures.append("cut")
    received: list = []
    with pytest.raises(ProviderUnavailable, match="stream cut"):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"), into=received)
    assert "".join(received) == "Hello from "  # the first two pieces arrived


async def test_a_stream_that_ends_without_finishing_is_cut(fake, config):
    fake.next_failures.append("truncated")
    received: list = []
    with pytest.raises(ProviderUnavailable, match="stream cut"):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"), into=received)
    assert "".join(received) == fake.reply


async def test_a_malformed_chunk_is_a_bad_response(fake, config):
    fake.next_failures.append("malformed")
    with pytest.raises(ProviderBadResponse):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"))


async def test_a_chunk_of_the_wrong_shape_is_a_bad_response(fake, config):
    # Chunks are read as decoded JSON, not as the SDK's typed objects: a shape the API never
    # sends (here a text delta that is an object) is refused, not passed on to the user.
    fake.next_failures.append("misshapen")
    received: list = []
    with pytest.raises(ProviderBadResponse, match="malformed"):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"), into=received)
    assert received == [fake.reply.split(" ")[0] + " "]  # the text before it went through


async def test_a_bad_request_passes_on_the_providers_short_message(fake, config):
    fake.next_failures.append("400")
    with pytest.raises(ProviderError) as caught:
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"))
    assert type(caught.value) is ProviderError
    assert caught.value.message == "OpenAI: Invalid value for 'temperature'."
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_an_unreachable_server_is_unavailable():
    config = OpenAISettings(api_key=SecretStr(KEY), base_url=refused_url())
    with pytest.raises(ProviderUnavailable, match="Could not reach OpenAI"):
        await run(model_of("gpt-4o"), make_request(model_of("gpt-4o"), config, "hi"))


def test_retry_after_understands_seconds_milliseconds_and_dates():
    assert openai_wire.retry_after_seconds({"retry-after": "3"}) == 3.0
    assert openai_wire.retry_after_seconds({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 < (openai_wire.retry_after_seconds({"retry-after": later}) or 0) <= 30
    assert openai_wire.retry_after_seconds({"retry-after": "soon"}) is None
    assert openai_wire.retry_after_seconds({}) is None


# -- the provider -------------------------------------------------------------------------------


async def test_models_are_listed_even_without_a_key():
    models = await OpenAIProvider().list_models(OpenAISettings())
    by_id = {model.id: model for model in models}
    assert {"openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4.1", "openai/gpt-4.1-mini"} <= set(
        by_id
    )
    assert by_id["openai/gpt-4o"].pricing.input_per_million == 250_000  # US$2.50 / M
    assert by_id["openai/gpt-4o"].capabilities == {"text", "code", "vision"}
    assert by_id["openai/dall-e-3"].capabilities == {"image_generation"}
    assert by_id["openai/dall-e-3"].pricing.per_image == 4_000  # US$0.04
    assert by_id["openai/tts-1"].capabilities == {"text_to_speech"}
    # US$15 per million characters = US$0.0135 per minute at 15 characters a second.
    assert by_id["openai/tts-1"].pricing.per_audio_minute == 1_350
    assert by_id["openai/whisper-1"].pricing.per_audio_minute == 600  # US$0.006
    assert by_id["openai/whisper-1"].capabilities == {"speech_to_text"}


async def test_check_lists_the_accounts_models(fake, config):
    assert await check_connection(OpenAIProvider(), config) == "Connected: 3 models"
    assert fake.paths() == ["/v1/models"]


async def test_check_reports_a_rejected_or_missing_key(fake, fake_url, config):
    fake.next_failures.append("401")
    with pytest.raises(NeedsKey):
        await check_connection(OpenAIProvider(), config)
    with pytest.raises(NeedsKey):
        await check_connection(OpenAIProvider(), OpenAISettings(base_url=fake_url))
    assert len(fake.requests) == 1


async def test_the_organization_header_is_sent_when_set(fake, fake_url):
    config = OpenAISettings(api_key=SecretStr(KEY), base_url=fake_url, organization="org-42")
    await check_connection(OpenAIProvider(), config)
    assert fake.requests[-1].headers["OpenAI-Organization"] == "org-42"


async def test_the_sdk_takes_nothing_from_the_environment(fake, config, monkeypatch):
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-env")
    await check_connection(OpenAIProvider(), config)
    headers = {k.lower() for k in fake.requests[-1].headers}
    assert "openai-organization" not in headers and "openai-project" not in headers


def test_declared_as_an_entry_point_like_a_third_party_plugin():
    """Declared in the ``multinotes`` entry-point group, so it loads like a third-party plugin."""
    import multinotes.plugins.providers.openai as plugin

    [point] = [e for e in entry_points(group="multinotes") if e.name == "openai"]
    assert point.load() is plugin
    assert plugin.register_providers and plugin.register_settings


# -- the provider contract ----------------------------------------------------------------------


class TestConformance(ProviderConformance):
    model_id = "openai/gpt-4o-mini"
    api_key = KEY

    def make_fake(self) -> FakeOpenAI:
        return FakeOpenAI(api_key=KEY)

    def make_provider(self) -> OpenAIProvider:
        return OpenAIProvider()

    def make_settings(self, url: str, api_key: str | None) -> OpenAISettings:
        return OpenAISettings(
            api_key=SecretStr(api_key) if api_key else None, base_url=f"{url}/v1", timeout=5
        )
