"""A local fake of the Together AI API (api.together.xyz) as the ``together`` SDK calls it.

Routes:

* ``POST /v1/chat/completions``: JSON, or SSE whose final chunk carries ``finish_reason`` and
  ``usage``, then ``data: [DONE]``
* ``POST /v1/images/generations``: ``response_format: "base64"`` answers ``b64_json`` items,
  anything else ``url`` items
* ``GET /v1/models``: a JSON array, as Together answers

The key travels as ``Authorization: Bearer``; a missing or wrong key is a 401 ``invalid_api_key``.

Scenario control: append to ``fake.next_failures`` and the next request(s) fail that way, in order:

* ``"400"``, ``"401"``, ``"403"``, ``"500"``
* ``"429"``: with ``Retry-After: fake.retry_after``
* ``"slow"``: answer only after ``fake.slow_seconds`` (longer than the client's timeout)
* ``"cut"``: stream ``fake.cut_after`` content chunks, then drop the connection
* ``"malformed"``: stream one content chunk, then ``data: {not json`` (images: data that is not
  base64)
* ``"truncated"``: stream the content chunks and end cleanly, without finish reason or ``[DONE]``
* ``"stream_error"``: stream one chunk, then ``data: {"error": {...}}`` (how Together reports a
  failure after the headers went out)
* ``"filtered"``: the moderation refuses the prompt (chat and images): a 400 whose error has
  ``code: "content_policy_violation"``
* ``"filtered_answer"``: stream one chunk, then one whose ``finish_reason`` is
  ``"content_filter"`` (the moderation cut the answer off), then ``[DONE]``

Together's reference documents no code of its own for a moderation refusal (its ``FinishReason``
lists ``stop``, ``eos``, ``length``, ``tool_calls``, ``function_call``; its ``ErrorData`` has
``message``, ``type``, ``param``, ``code``). Its API mirrors OpenAI's chat completions, so the
fake speaks OpenAI's refusal signals in Together's shapes, which is what the plugin maps.

Every request is recorded in ``fake.requests`` (method, path, headers, JSON body).
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAILURES = (
    "400",
    "401",
    "403",
    "429",
    "500",
    "slow",
    "cut",
    "malformed",
    "truncated",
    "stream_error",
    "filtered",
    "filtered_answer",
)
ERROR_TYPES = {
    400: ("invalid_request_error", "Fake failure 400."),
    401: ("invalid_request_error", "Invalid API key provided."),
    403: ("invalid_request_error", "Your account is not allowed to use this model."),
    429: ("rate_limit_exceeded", "You have exceeded your rate limit."),
    500: ("server_error", "Fake failure 500."),
}
FILTERED_MESSAGE = "Input was flagged by the safety model and cannot be processed."


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None


def error_response(code: int, headers: dict[str, str] | None = None) -> web.Response:
    kind, message = ERROR_TYPES[code]
    body = {
        "error": {
            "message": message,
            "type": kind,
            "param": None,
            "code": "invalid_api_key" if code == 401 else None,
        }
    }
    return web.json_response(body, status=code, headers=headers)


@dataclass
class FakeTogether:
    """State and behaviour of one fake server. ``api_key=None`` accepts any or no key."""

    api_key: str | None = "together-test-key"
    models: list[str] = field(
        default_factory=lambda: [
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "Qwen/Qwen2.5-72B-Instruct-Turbo",
            "deepseek-ai/DeepSeek-V3",
            "black-forest-labs/FLUX.1-schnell",
        ]
    )
    reply: str = "Hello from the fake Together model."
    retry_after: str = "7"
    slow_seconds: float = 3.0
    cut_after: int = 2
    next_failures: list[str] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/images/generations", self._images)
        return app

    async def _gate(self, request: web.Request) -> tuple[Recorded, web.Response | None, str | None]:
        """Record, check the key, then apply the next scripted failure (if any)."""
        body = await request.json() if request.can_read_body else None
        recorded = Recorded(
            request.method,
            request.path,
            {k.lower(): v for k, v in request.headers.items()},
            body,
        )
        self.requests.append(recorded)
        expected = f"Bearer {self.api_key}"
        if self.api_key is not None and recorded.headers.get("authorization") != expected:
            return recorded, error_response(401), None
        failure = self.next_failures.pop(0) if self.next_failures else None
        if failure == "slow":
            await asyncio.sleep(self.slow_seconds)
        if failure == "429":
            return recorded, error_response(429, {"Retry-After": self.retry_after}), failure
        if failure in ("400", "401", "403", "500"):
            return recorded, error_response(int(failure)), failure
        if failure == "filtered":
            refusal = {
                "error": {
                    "message": FILTERED_MESSAGE,
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "content_policy_violation",
                }
            }
            return recorded, web.json_response(refusal, status=400), failure
        return recorded, None, failure

    async def _models(self, request: web.Request) -> web.Response:
        _, failed, _ = await self._gate(request)
        if failed is not None:
            return failed
        return web.json_response(
            [
                {
                    "id": name,
                    "object": "model",
                    "created": 1_700_000_000,
                    "type": "image" if "FLUX" in name else "chat",
                    "display_name": name.split("/")[-1],
                    "organization": name.split("/")[0],
                    "context_length": 0 if "FLUX" in name else 131_072,
                }
                for name in self.models
            ]
        )

    def _usage(self, body: dict[str, Any]) -> dict[str, int]:
        """Word counts stand in for tokens."""
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        output = len(self.reply.split())
        return {
            "prompt_tokens": prompt,
            "completion_tokens": output,
            "total_tokens": prompt + output,
        }

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        recorded, failed, failure = await self._gate(request)
        if failed is not None:
            return failed
        body = recorded.json or {}
        model = body.get("model", "")
        if model not in self.models:
            return web.json_response(
                {
                    "error": {
                        "message": f"Unable to access model {model}.",
                        "type": "invalid_request_error",
                    }
                },
                status=404,
            )
        usage = self._usage(body)
        base = {"id": "fake-chat-1", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            return web.json_response(
                base
                | {
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": self.reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
        words = self.reply.split(" ")
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

        def chunk(text: str, finish: str | None = None, with_usage: bool = False) -> str:
            data = base | {
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": text},
                        "finish_reason": finish,
                    }
                ],
                "usage": usage if with_usage else None,
            }
            return json.dumps(data)

        events = [chunk(piece) for piece in pieces] + [chunk("", "stop", True), "[DONE]"]
        if failure == "malformed":
            events = [events[0], "{not json"]
        elif failure == "truncated":
            events = events[:-2]
        elif failure == "filtered_answer":
            events = [events[0], chunk("", "content_filter", True), "[DONE]"]
        elif failure == "stream_error":
            error = {"error": {"message": "The model crashed.", "type": "server_error"}}
            events = [events[0], json.dumps(error)]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, event in enumerate(events):
            if failure == "cut" and index == self.cut_after:
                assert request.transport is not None
                request.transport.abort()  # the connection drops mid-body
                return response
            await response.write(f"data: {event}\n\n".encode())
        await response.write_eof()
        return response

    async def _images(self, request: web.Request) -> web.Response:
        recorded, failed, failure = await self._gate(request)
        if failed is not None:
            return failed
        body = recorded.json or {}
        if failure == "malformed":
            return web.json_response(
                {
                    "id": "fake-image-1",
                    "model": body.get("model"),
                    "object": "list",
                    "data": [{"index": 0, "b64_json": "%%% not base64 %%%", "type": "b64_json"}],
                }
            )
        count = int(body.get("n") or 1)
        encoded = base64.b64encode(tiny_png()).decode()
        if body.get("response_format") == "base64":
            data = [{"index": i, "b64_json": encoded, "type": "b64_json"} for i in range(count)]
        else:
            data = [
                {"index": i, "url": f"https://example.invalid/{i}.png", "type": "url"}
                for i in range(count)
            ]
        return web.json_response(
            {"id": "fake-image-1", "model": body.get("model"), "object": "list", "data": data}
        )


def tiny_png() -> bytes:
    """A valid 1x1 PNG, so callers can check they received real image bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
