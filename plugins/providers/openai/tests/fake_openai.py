"""A local fake of the OpenAI HTTP API: the chat protocol of ``multinotes.testing_openai``'s
``FakeOpenAIWire`` plus OpenAI's media endpoints, so tests drive the official ``openai`` SDK
over loopback: ``POST /v1/images/generations`` (``b64_json``), ``POST /v1/audio/speech``
(binary audio) and ``POST /v1/audio/transcriptions`` (multipart; ``json``, ``text`` or
``verbose_json``). Scenario control and request records are the base fake's.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from aiohttp import web

from multinotes.testing_openai import FAILURES, FakeOpenAIWire, Recorded, tiny_png

__all__ = ["FAILURES", "FakeOpenAI", "Recorded", "tiny_png"]

AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "wav": "audio/wav",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "pcm": "audio/pcm",
}


#: The leading bytes of each speech format, as a real answer starts (so what the fake "speaks"
#: is recognised as that format, e.g. when it is kept in Files); a readable marker follows.
AUDIO_HEADERS = {
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "opus": b"OggS\x00\x02" + b"\x00" * 20 + b"OpusHead",
    "aac": b"\xff\xf1\x50\x80\x02\x1f\xfc",
    "flac": b"fLaC\x00\x00\x00\x22",
}


@dataclass
class FakeOpenAI(FakeOpenAIWire):
    """The OpenAI API's fake: chat, models and media. ``api_key=None`` accepts any or no key."""

    models: list[str] = field(default_factory=lambda: ["gpt-4o", "gpt-4o-mini", "whisper-1"])
    transcript: str = "Transcribed words."
    audio_seconds: float = 4.5

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/images/generations", self.images)
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        return app

    async def images(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        gate = await self._gate(request)
        if isinstance(gate, web.Response):
            return gate
        body = record.json or {}
        count = int(body.get("n") or 1)
        if body.get("response_format") == "url":
            item = {"url": "https://example.invalid/image.png"}
        else:
            item = {"b64_json": base64.b64encode(tiny_png()).decode()}
        data = [{**item, "revised_prompt": body.get("prompt")} for _ in range(count)]
        return web.json_response({"created": int(time.time()), "data": data})

    async def speech(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        gate = await self._gate(request)
        if isinstance(gate, web.Response):
            return gate
        body = record.json or {}
        fmt = body.get("response_format") or "mp3"
        marker = f"FAKE-{fmt.upper()}:{body.get('voice')}:{body.get('input')}".encode()
        audio = AUDIO_HEADERS.get(fmt, b"") + marker
        return web.Response(body=audio, content_type=AUDIO_TYPES.get(fmt, "audio/mpeg"))

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        gate = await self._gate(request)
        if isinstance(gate, web.Response):
            return gate
        fmt = record.form.get("response_format") or "json"
        if fmt == "text":
            return web.Response(text=self.transcript)
        if fmt == "verbose_json":
            return web.json_response(
                {
                    "task": "transcribe",
                    "language": record.form.get("language") or "english",
                    "duration": self.audio_seconds,
                    "text": self.transcript,
                    "segments": [],
                }
            )
        return web.json_response({"text": self.transcript})
