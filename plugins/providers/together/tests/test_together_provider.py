"""The Together AI provider plugin, driven through the official ``together`` SDK against a local
fake of the Together API (fake_together.py, beside this file)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from importlib.metadata import entry_points

import pytest
from fake_together import FakeTogether, tiny_png
from pydantic import BaseModel, SecretStr

from multinotes.plugin import (
    Attachment,
    ChatMessage,
    Chunk,
    ContentFiltered,
    GenerationRequest,
    ImageOptions,
    MediaOutput,
    Model,
    NeedsKey,
    Options,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.plugins.providers.together import TogetherProvider, TogetherSettings
from multinotes.testing import (
    ProviderConformance,
    check_connection,
    provider_request,
    serve_fake,
)
from multinotes.testing import (
    collect as run,
)

KEY = "together-test-key"
LLAMA = "together/meta-llama/Llama-3.3-70B-Instruct-Turbo"
FLUX = "together/black-forest-labs/FLUX.1-schnell"


@pytest.fixture
def fake() -> FakeTogether:
    return FakeTogether(api_key=KEY)


@pytest.fixture
async def fake_url(fake: FakeTogether) -> AsyncIterator[str]:
    async with serve_fake(fake.app()) as url:
        yield url


async def listed_model(provider: TogetherProvider, model_id: str) -> Model:
    return next(m for m in await provider.list_models(None) if m.id == model_id)


@pytest.fixture
def config(fake_url: str) -> TogetherSettings:
    return TogetherSettings(api_key=SecretStr(KEY), base_url=fake_url, timeout=5)


def ask(
    config: TogetherSettings, *messages: ChatMessage, options: BaseModel | None = None
) -> GenerationRequest:
    return provider_request(TogetherProvider(), config, list(messages), options or Options())


def user(text: str) -> ChatMessage:
    return ChatMessage("user", text)


async def collect(
    request: GenerationRequest, model_id: str = LLAMA, into: list[Chunk] | None = None
) -> list[Chunk]:
    """What the model streams; ``into`` keeps what arrived before an error."""
    return await run(await listed_model(TogetherProvider(), model_id), request, into)


# -- chat ---------------------------------------------------------------------------------------


async def test_streams_text_deltas_and_reports_usage_from_the_last_chunk(
    fake: FakeTogether, config: TogetherSettings
):
    request = ask(config, user("Say hello please"))

    chunks = await collect(request)

    assert "".join(str(c) for c in chunks) == "Hello from the fake Together model."
    assert len(chunks) == 6
    assert (request.usage.input_tokens, request.usage.output_tokens) == (3, 6)
    (sent,) = fake.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json["model"] == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert sent.json["stream"] is True


async def test_roles_system_and_options_map_to_the_request(
    fake: FakeTogether, config: TogetherSettings
):
    options = Options(system="Be brief.", temperature=0.3, top_p=0.8, max_tokens=64)
    request = ask(
        config,
        ChatMessage("system", "Answer in French."),
        user("Hi"),
        ChatMessage("assistant", "Bonjour"),
        user("How are you?"),
        options=options,
    )

    await collect(request)

    body = fake.requests[0].json
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "How are you?"},
    ]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.8, 64)


async def test_unset_options_are_not_sent(fake: FakeTogether, config: TogetherSettings):
    await collect(ask(config, user("Hi")))

    assert not {"temperature", "top_p", "max_tokens"} & set(fake.requests[0].json)


async def test_text_models_refuse_attachments_before_calling(
    fake: FakeTogether, config: TogetherSettings
):
    message = ChatMessage("user", "What is this?", (Attachment("image/png", tiny_png()),))

    with pytest.raises(ProviderError, match="text only"):
        await collect(ask(config, message))

    assert fake.requests == []


# -- images -------------------------------------------------------------------------------------


async def test_image_generation_returns_png_bytes(fake: FakeTogether, config: TogetherSettings):
    request = ask(config, user("A red fox"), options=ImageOptions(size="1792x1024", n=2))

    images = await collect(request, FLUX)

    assert [type(i) for i in images] == [MediaOutput, MediaOutput]
    assert all(isinstance(i, MediaOutput) and i.media_type == "image/png" for i in images)
    assert all(isinstance(i, MediaOutput) and i.data == tiny_png() for i in images)
    assert request.usage.images == 2
    body = fake.requests[0].json
    assert fake.requests[0].path == "/v1/images/generations"
    assert body == {
        "model": "black-forest-labs/FLUX.1-schnell",
        "prompt": "A red fox",
        "width": 1792,
        "height": 1024,
        "n": 2,
        "response_format": "base64",
        "output_format": "png",
        "steps": 4,
    }


async def test_image_data_that_is_not_base64_is_bad_response(
    fake: FakeTogether, config: TogetherSettings
):
    fake.next_failures.append("malformed")

    with pytest.raises(ProviderBadResponse):
        await collect(ask(config, user("A fox"), options=ImageOptions()), FLUX)


async def test_image_rate_limit_maps_like_chat(fake: FakeTogether, config: TogetherSettings):
    fake.next_failures.append("429")

    with pytest.raises(ProviderRateLimited) as caught:
        await collect(ask(config, user("A fox"), options=ImageOptions()), FLUX)

    assert caught.value.retry_after == 7


# -- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, SecretStr(""), SecretStr("  ")])
async def test_missing_key_needs_key_and_sends_nothing(fake: FakeTogether, fake_url: str, key):
    config = TogetherSettings(api_key=key, base_url=fake_url)

    with pytest.raises(NeedsKey, match="Plugins console"):
        await collect(ask(config, user("Hi")))
    with pytest.raises(NeedsKey):
        await collect(ask(config, user("A fox"), options=ImageOptions()), FLUX)
    with pytest.raises(NeedsKey):
        await check_connection(TogetherProvider(), config)

    assert fake.requests == []


async def test_wrong_key_is_needs_key(fake: FakeTogether, fake_url: str):
    config = TogetherSettings(api_key=SecretStr("wrong"), base_url=fake_url)

    with pytest.raises(NeedsKey, match="401"):
        await collect(ask(config, user("Hi")))

    assert fake.requests[0].headers["authorization"] == "Bearer wrong"


async def test_forbidden_is_needs_key(fake: FakeTogether, config: TogetherSettings):
    fake.next_failures.append("403")

    with pytest.raises(NeedsKey, match="403"):
        await collect(ask(config, user("Hi")))


# -- failures -----------------------------------------------------------------------------------


async def test_rate_limit_understands_an_http_date(fake: FakeTogether, config: TogetherSettings):
    fake.retry_after = "Wed, 21 Oct 2015 07:28:00 GMT"  # in the past: retry now
    fake.next_failures.append("429")

    with pytest.raises(ProviderRateLimited) as caught:
        await collect(ask(config, user("Hi")))

    assert caught.value.retry_after == 0


async def test_other_client_errors_carry_togethers_message(
    fake: FakeTogether, config: TogetherSettings
):
    fake.next_failures.append("400")

    expected = r"refused the request \(400\): Fake failure 400\."
    with pytest.raises(ProviderError, match=expected) as caught:
        await collect(ask(config, user("Hi")))

    assert type(caught.value) is ProviderError


async def test_slow_answer_times_out_as_unavailable(fake: FakeTogether, fake_url: str):
    fake.slow_seconds = 3
    fake.next_failures.append("slow")
    config = TogetherSettings(api_key=SecretStr(KEY), base_url=fake_url, timeout=0.3)
    started = time.monotonic()

    with pytest.raises(ProviderUnavailable, match=r"did not answer within 0\.3 s"):
        await collect(ask(config, user("Hi")))

    assert time.monotonic() - started < 2


async def test_stream_cut_midway_is_unavailable_after_the_first_chunks(
    fake: FakeTogether, config: TogetherSettings
):
    fake.next_failures.append("cut")
    received: list[Chunk] = []

    with pytest.raises(ProviderUnavailable):
        await collect(ask(config, user("Hi")), into=received)

    assert received == ["Hello ", "from "]


async def test_stream_that_ends_without_finishing_is_unavailable(
    fake: FakeTogether, config: TogetherSettings
):
    fake.next_failures.append("truncated")

    with pytest.raises(ProviderUnavailable, match="stopped before it was complete"):
        await collect(ask(config, user("Hi")))


async def test_error_event_mid_stream_is_unavailable(fake: FakeTogether, config: TogetherSettings):
    fake.next_failures.append("stream_error")

    with pytest.raises(ProviderUnavailable, match="The model crashed"):
        await collect(ask(config, user("Hi")))


async def test_malformed_chunk_is_bad_response(fake: FakeTogether, config: TogetherSettings):
    fake.next_failures.append("malformed")

    with pytest.raises(ProviderBadResponse):
        await collect(ask(config, user("Hi")))


async def test_a_prompt_the_moderation_refuses_is_a_content_filter_refusal(
    fake: FakeTogether, config: TogetherSettings
):
    fake.next_failures.append("filtered")

    with pytest.raises(ContentFiltered, match="content filter refused this prompt") as refused:
        await collect(ask(config, user("Something unsafe")))
    assert refused.value.error_code == "content_filtered"
    assert "flagged by the safety model" in refused.value.message  # Together's own words


async def test_an_answer_cut_off_by_the_moderation_is_a_content_filter_refusal(
    fake: FakeTogether, config: TogetherSettings
):
    fake.next_failures.append("filtered_answer")
    received: list[Chunk] = []

    with pytest.raises(ContentFiltered, match="content filter stopped this answer"):
        await collect(ask(config, user("Something unsafe")), into=received)
    assert received == ["Hello "]  # what came before the cut stays the user's to see


async def test_an_image_prompt_the_safety_checker_refuses_is_a_content_filter_refusal(
    fake: FakeTogether, config: TogetherSettings
):
    fake.next_failures.append("filtered")

    with pytest.raises(ContentFiltered):
        await collect(ask(config, user("Something unsafe"), options=ImageOptions()), FLUX)


# -- provider -----------------------------------------------------------------------------------


async def test_check_lists_models_with_the_key(fake: FakeTogether, config: TogetherSettings):
    text = await check_connection(TogetherProvider(), config)

    assert text == "Connected to Together AI: 4 model(s) available, 4 of the 5 offered here."
    (sent,) = fake.requests
    assert (sent.method, sent.path) == ("GET", "/v1/models")
    assert sent.headers["authorization"] == f"Bearer {KEY}"


async def test_check_reports_a_bad_key(fake: FakeTogether, fake_url: str):
    config = TogetherSettings(api_key=SecretStr("wrong"), base_url=fake_url)

    with pytest.raises(NeedsKey):
        await check_connection(TogetherProvider(), config)


async def test_catalog_has_real_names_capabilities_and_prices_in_credits():
    models = {m.id: m for m in await TogetherProvider().list_models(None)}

    assert set(models) == {
        LLAMA,
        "together/Qwen/Qwen2.5-72B-Instruct-Turbo",
        "together/Qwen/Qwen2.5-Coder-32B-Instruct",
        "together/deepseek-ai/DeepSeek-V3",
        FLUX,
    }
    llama = models[LLAMA]
    assert llama.capabilities == {"text", "code"}
    # US$0.88 per million tokens, in and out; 1 credit = US$0.00001.
    assert llama.pricing.input_per_million == pytest.approx(88_000)
    assert llama.pricing.output_per_million == pytest.approx(88_000)
    flux = models[FLUX]
    assert flux.capabilities == {"image_generation"}
    assert flux.Options is ImageOptions
    assert flux.pricing.per_image == 283  # US$0.0027 per megapixel, 1024x1024


@pytest.mark.parametrize(
    "given",
    ["https://api.together.xyz", "https://api.together.xyz/", "https://api.together.xyz/v1"],
)
def test_base_url_is_kept_without_v1(given: str):
    """The SDK appends /v1 itself; a URL copied from older docs must not double it."""
    assert TogetherSettings(base_url=given).base_url == "https://api.together.xyz"


def test_plugin_is_a_multinotes_entry_point():
    """Declared in the ``multinotes`` entry-point group, so it loads like a third-party plugin."""
    import multinotes.plugins.providers.together as plugin

    [point] = [e for e in entry_points(group="multinotes") if e.name == "together"]
    assert point.load() is plugin
    assert plugin.register_providers and plugin.register_settings


# -- the provider contract ----------------------------------------------------------------------


class TestConformance(ProviderConformance):
    model_id = LLAMA
    api_key = KEY

    def make_fake(self) -> FakeTogether:
        return FakeTogether(api_key=KEY)

    def make_provider(self) -> TogetherProvider:
        return TogetherProvider()

    def make_settings(self, url: str, api_key: str | None) -> TogetherSettings:
        return TogetherSettings(
            api_key=SecretStr(api_key) if api_key else None, base_url=url, timeout=5
        )
