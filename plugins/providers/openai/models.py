"""The curated OpenAI models, declared as data (``MODELS``: one ``ModelInfo`` record each) and
built by the class that knows how to call them (``MODEL_CLASSES``). Prices follow OpenAI's public
price list in US dollars; ``Pricing.from_usd`` converts them to credits.

The core reads the key and the base URL from the plugin's settings and passes them in
(``request.key``, ``request.base_url``); the other settings (organization, timeout) come with
``request.config``."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from multinotes.plugin import (
    Attachment,
    Chunk,
    GenerationRequest,
    ImageOptions,
    Invalid,
    MediaOutput,
    Model,
    ModelInfo,
    NeedsKey,
    Pricing,
    ProviderBadResponse,
    SpeechOptions,
    TranscriptionOptions,
    openai_wire,
)

if TYPE_CHECKING:  # openai_wire imports the SDK where it calls it (media models only)
    import openai

PROVIDER_NAME = "OpenAI"


def connect(
    config: Any, key: str | None, base_url: str | None, timeout: float | None = None
) -> openai.AsyncOpenAI:
    """A client for one call (to close after it), with the key and URL the core passed in."""
    if not key:
        raise NeedsKey(
            f"{PROVIDER_NAME} needs an API key. An admin can set it in the Plugins console."
        )
    return openai_wire.make_client(
        api_key=key,
        base_url=base_url or config.base_url,
        organization=config.organization,
        timeout=min(config.timeout, timeout or config.timeout),
    )


@contextlib.asynccontextmanager
async def connected(request: GenerationRequest) -> AsyncIterator[openai.AsyncOpenAI]:
    """A client for one media call, the SDK imported off the event loop first."""
    await openai_wire.sdk_ready()
    async with connect(request.config, request.key, request.base_url, request.timeout) as client:
        yield client


def _last_user(request: GenerationRequest) -> str:
    return next((m.content for m in reversed(request.messages) if m.role == "user"), "").strip()


class OpenAIModel(Model):
    """Common to every OpenAI model: built from a record whose id is ``openai/<api name>``."""

    label = "OpenAI"
    api_name: str

    def __init__(self, info: ModelInfo) -> None:
        super().__init__(info)


class ChatModel(OpenAIModel):
    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        params = openai_wire.chat_params(request, self.api_name)
        config = request.config
        timeout = min(config.timeout, request.timeout or config.timeout)
        key = request.require_key(PROVIDER_NAME)
        # The stream is read here, not through the openai SDK (issue #17): the SDK's decoding
        # costs more CPU per chunk than the rest of the answer, and a web process that only
        # answers chats does not carry the SDK (~14 MB). The conformance suite holds this path
        # to the SDK's errors; images, speech and transcription still go through the SDK.
        async with openai_wire.http_session(request.clients) as session:
            stream = openai_wire.stream_chat_http(
                session,
                request.base_url or config.base_url,
                key,
                params,
                request,
                PROVIDER_NAME,
                call_timeout=timeout,
                organization=config.organization,
            )
            async for text in stream:
                yield text


class DallE3Options(ImageOptions):
    """DALL·E 3 draws one image per call, so ``n`` means n calls."""

    size: Literal["1024x1024"] = "1024x1024"


class DallE3WideOptions(ImageOptions):
    size: Literal["1792x1024", "1024x1792"] = "1792x1024"


class ImageModel(OpenAIModel):
    """DALL·E 3. Wide and tall images cost twice as much as square ones, so they are a separate
    model: each model then has one price per image, which is what the core reserves and bills."""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        prompt = _last_user(request)
        if not prompt:
            raise Invalid("Describe the image to generate.", fields={"prompt": "required"})
        size = getattr(request.options, "size", "1024x1024")
        async with connected(request) as client:
            for index in range(getattr(request.options, "n", 1)):
                with openai_wire.translated_errors(PROVIDER_NAME):
                    result = await client.images.generate(
                        model=self.api_name,
                        prompt=prompt,
                        n=1,
                        size=size,
                        response_format="b64_json",
                    )
                encoded = result.data[0].b64_json if result.data else None
                try:
                    image = base64.b64decode(encoded or "", validate=True)
                except binascii.Error:
                    image = b""
                if not image:
                    raise ProviderBadResponse(f"{PROVIDER_NAME} sent no image data.")
                request.usage.images += 1
                yield MediaOutput("image/png", image, f"image-{index + 1}.png")


AudioFormat = Literal["mp3", "wav", "opus", "aac", "flac"]
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "opus": "audio/ogg",  # Opus in an Ogg container
    "aac": "audio/aac",
    "flac": "audio/flac",
}


#: OpenAI bills speech per input character; the core bills speech per audio minute. At 15
#: characters a second (about 900 a minute, ordinary speech) the two prices are the same, so the
#: models report characters / 15 as seconds and ask US$ per million characters * 900 / million.
CHARS_PER_SECOND = 15


def per_million_characters(usd: float) -> Pricing:
    """A speech price per million characters as the per-minute price the core bills."""
    return Pricing.from_usd(per_audio_minute=usd * CHARS_PER_SECOND * 60 / 1_000_000)


class SpeechModel(OpenAIModel):
    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        text = _last_user(request)
        if not text:
            raise Invalid("Write the text to read aloud.", fields={"prompt": "required"})
        options = request.options
        fmt: AudioFormat = options.format if isinstance(options, SpeechOptions) else "mp3"
        async with connected(request) as client:
            with openai_wire.translated_errors(PROVIDER_NAME):
                response = await client.audio.speech.create(
                    model=self.api_name,
                    input=text,
                    voice=getattr(options, "voice", "alloy"),
                    response_format=fmt,
                    speed=getattr(options, "speed", 1.0),
                )
                audio = await response.aread()
        if not audio:
            raise ProviderBadResponse(f"{PROVIDER_NAME} sent no audio.")
        request.usage.input_tokens = openai_wire.estimate_tokens(text)
        request.usage.audio_seconds = len(text) / CHARS_PER_SECOND
        yield MediaOutput(AUDIO_TYPES.get(fmt, "audio/mpeg"), audio, f"speech.{fmt}")


#: What Whisper accepts besides audio/*: the audio track of these containers.
VIDEO_WITH_AUDIO = ("video/mp4", "video/mpeg", "video/webm")


def _audio(request: GenerationRequest) -> Attachment:
    for message in reversed(request.messages):
        if message.role != "user":
            continue
        for attachment in reversed(message.attachments):
            media = attachment.media_type
            if media.startswith("audio/") or media in VIDEO_WITH_AUDIO:
                return attachment
    raise Invalid("Attach an audio file to transcribe.", fields={"attachments": "no audio file"})


class TranscriptionModel(OpenAIModel):
    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        audio = _audio(request)
        subtype = audio.media_type.split("/", 1)[1].split(";")[0]
        filename = audio.name or f"audio.{'mp3' if subtype == 'mpeg' else subtype}"
        extra: dict[str, Any] = {}
        for name in ("language", "prompt"):
            value = getattr(request.options, name, None)
            if value:
                extra[name] = value
        async with connected(request) as client:
            with openai_wire.translated_errors(PROVIDER_NAME):
                # verbose_json carries the duration, which is what the call costs.
                result = await client.audio.transcriptions.create(
                    model=self.api_name,
                    file=(filename, audio.data, audio.media_type),
                    response_format="verbose_json",
                    **extra,
                )
        request.usage.audio_seconds = float(result.duration)
        if result.text:
            yield result.text


CHAT = frozenset({"text", "code", "vision"})
#: The context of a GPT-4.1 model: a million tokens.
MILLION = 1_047_576

MODELS: list[ModelInfo] = [
    ModelInfo(
        model_id="openai/gpt-4o",
        name="GPT-4o",
        description="OpenAI's versatile flagship for text and images.",
        capabilities=CHAT,
        context_window=128_000,
        max_output=16_384,
        pricing=Pricing.from_usd(input_per_million=2.50, output_per_million=10.00),
    ),
    ModelInfo(
        model_id="openai/gpt-4o-mini",
        name="GPT-4o mini",
        description="Fast and inexpensive; good for everyday tasks.",
        capabilities=CHAT,
        context_window=128_000,
        max_output=16_384,
        pricing=Pricing.from_usd(input_per_million=0.15, output_per_million=0.60),
    ),
    ModelInfo(
        model_id="openai/gpt-4.1",
        name="GPT-4.1",
        description="Strong at code and following instructions; a million-token context.",
        capabilities=CHAT,
        context_window=MILLION,
        max_output=32_768,
        pricing=Pricing.from_usd(input_per_million=2.00, output_per_million=8.00),
    ),
    ModelInfo(
        model_id="openai/gpt-4.1-mini",
        name="GPT-4.1 mini",
        description="Most of GPT-4.1's ability at a fifth of the price.",
        capabilities=CHAT,
        context_window=MILLION,
        max_output=32_768,
        pricing=Pricing.from_usd(input_per_million=0.40, output_per_million=1.60),
    ),
    ModelInfo(
        model_id="openai/gpt-4.1-nano",
        name="GPT-4.1 nano",
        description="The fastest and cheapest GPT-4.1.",
        capabilities=CHAT,
        context_window=MILLION,
        max_output=32_768,
        pricing=Pricing.from_usd(input_per_million=0.10, output_per_million=0.40),
    ),
    ModelInfo(
        model_id="openai/dall-e-3",
        name="DALL·E 3",
        description="Square images (1024x1024) from a description.",
        capabilities=frozenset({"image_generation"}),
        context_window=4_000,  # characters of prompt
        max_output=0,
        pricing=Pricing.from_usd(per_image=0.040),
        options=DallE3Options,
    ),
    ModelInfo(
        model_id="openai/dall-e-3-wide",
        name="DALL·E 3 wide",
        description="Wide (1792x1024) or tall (1024x1792) images from a description.",
        capabilities=frozenset({"image_generation"}),
        context_window=4_000,
        max_output=0,
        pricing=Pricing.from_usd(per_image=0.080),
        options=DallE3WideOptions,
        api_name="dall-e-3",
    ),
    ModelInfo(
        model_id="openai/tts-1",
        name="TTS-1",
        description="Reads text aloud. US$15 per million characters.",
        capabilities=frozenset({"text_to_speech"}),
        context_window=4_096,  # characters per request
        max_output=0,
        pricing=per_million_characters(15.00),
        options=SpeechOptions,
    ),
    ModelInfo(
        model_id="openai/tts-1-hd",
        name="TTS-1 HD",
        description="Higher-quality speech. US$30 per million characters.",
        capabilities=frozenset({"text_to_speech"}),
        context_window=4_096,
        max_output=0,
        pricing=per_million_characters(30.00),
        options=SpeechOptions,
    ),
    ModelInfo(
        model_id="openai/whisper-1",
        name="Whisper",
        description="Transcribes speech in about 100 languages. US$0.006 per minute.",
        capabilities=frozenset({"speech_to_text"}),
        context_window=0,
        max_output=0,
        pricing=Pricing.from_usd(per_audio_minute=0.006),
        options=TranscriptionOptions,
    ),
]


def model_class(info: ModelInfo) -> type[OpenAIModel]:
    """Which class calls a model: by what it does."""
    if "image_generation" in info.capabilities:
        return ImageModel
    if "text_to_speech" in info.capabilities:
        return SpeechModel
    if "speech_to_text" in info.capabilities:
        return TranscriptionModel
    return ChatModel


def build_models() -> list[Model]:
    return [model_class(info)(info) for info in MODELS]
