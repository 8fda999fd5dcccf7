"""A fake OpenAI-wire server for tests of providers that speak OpenAI's chat protocol.

The official ``openai`` SDK (and any other client of the protocol) runs against it over
loopback: ``GET /v1/models`` and ``POST /v1/chat/completions`` (JSON, or SSE with a final usage
chunk when ``stream_options.include_usage`` is set and ``report_usage`` is on, as some
OpenAI-compatible servers never send one). ``api_key=None`` is a local server that takes no key.
The OpenAI provider's own fake adds the media endpoints on top; a plugin for another
OpenAI-compatible server (Ollama, vLLM, LM Studio, OpenRouter) can test against this one::

    from multinotes.testing import serve_fake
    from multinotes.testing_openai import FakeOpenAIWire

    fake = FakeOpenAIWire(models=["llama3.2"], api_key=None)
    async with serve_fake(fake.app()) as base_url:
        ...  # point the provider at f"{base_url}/v1"

Scenario control: append to ``fake.next_failures`` and the next request(s) fail that way, in order:

* ``"401"``, ``"403"``, ``"400"``, ``"429"`` (with ``Retry-After: fake.retry_after``), ``"500"``
* ``"slow"``: answer only after ``fake.slow_seconds`` (longer than the client's timeout)
* ``"cut"``: stream ``fake.cut_after`` content chunks, then drop the connection
* ``"malformed"``: stream one content chunk, then ``data: {not json``
* ``"misshapen"``: stream one content chunk, then valid JSON of the wrong shape (a text
  delta that is not text)
* ``"truncated"``: stream the content chunks and end the response cleanly, without a finish
  reason, usage or ``[DONE]``

Every request is recorded in ``fake.requests`` (method, path, headers, JSON body or form fields).
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web
from multidict import CIMultiDict


def tiny_png() -> bytes:
    """A valid 1x1 PNG: the bytes the fake's image generations return."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


FAILURES = (
    "401",
    "403",
    "400",
    "429",
    "500",
    "slow",
    "cut",
    "malformed",
    "misshapen",
    "truncated",
    "filtered",  # the stream ends with finish_reason "content_filter" after ``cut_after`` chunks
    "400_filtered",  # the prompt is refused: 400 with code "content_filter" (Azure OpenAI)
)


@dataclass
class Recorded:
    method: str
    path: str
    headers: CIMultiDict[str]  # case-insensitive, like HTTP
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeOpenAIWire:
    """State and behaviour of one fake server. ``api_key=None`` accepts any or no key."""

    api_key: str | None = "sk-test-key"
    models: list[str] = field(default_factory=lambda: ["gpt-4o", "gpt-4o-mini"])
    reply: str = "Hello from the fake model."
    #: When False the stream never reports usage, like some OpenAI-compatible servers.
    report_usage: bool = True
    retry_after: str = "7"
    slow_seconds: float = 3.0
    cut_after: int = 2
    #: Pause before each streamed chunk, to give a test time to stop a stream half-way.
    chunk_delay: float = 0.0
    next_failures: list[str] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    # -- plumbing ---------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Recorded:
        record = Recorded(request.method, request.path, CIMultiDict(request.headers))
        if request.content_type == "application/json":
            record.json = await request.json()
        elif request.content_type.startswith("multipart/"):
            async for part in await request.multipart():
                if not isinstance(part, BodyPartReader):
                    continue  # a nested multipart: no OpenAI endpoint sends one
                if part.filename:
                    data = await part.read()
                    record.form[part.name or "file"] = {
                        "filename": part.filename,
                        "content_type": part.headers.get("Content-Type"),
                        "size": len(data),
                    }
                else:
                    record.form[part.name or ""] = await part.text()
        self.requests.append(record)
        return record

    @staticmethod
    def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        return web.json_response(body, status=status)

    async def _gate(self, request: web.Request, streaming: bool = False) -> web.Response | str:
        """Check the key and apply the next scripted failure. Returns an error response to send,
        or the name of a streaming failure for the caller to act out ("" when none)."""
        if self.api_key is not None and (
            request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return self._error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        if not self.next_failures:
            return ""
        failure = self.next_failures.pop(0)
        if failure == "401":
            return self._error(401, "Incorrect API key provided.", "invalid_request_error")
        if failure == "403":
            return self._error(403, "Your key cannot use this model.", "invalid_request_error")
        if failure == "400":
            return self._error(400, "Invalid value for 'temperature'.", "invalid_request_error")
        if failure == "400_filtered":
            return self._error(
                400,
                "The response was filtered due to the prompt triggering content management policy.",
                "invalid_request_error",
                "content_filter",
            )
        if failure == "429":
            response = self._error(429, "Rate limit reached.", "requests", "rate_limit_exceeded")
            response.headers["Retry-After"] = self.retry_after
            return response
        if failure == "500":
            return self._error(500, "The server had an error.", "server_error")
        if failure == "slow":
            await asyncio.sleep(self.slow_seconds)
            return ""
        if failure in ("cut", "malformed", "misshapen", "truncated", "filtered") and streaming:
            return failure
        raise AssertionError(f"unknown or misplaced failure {failure!r}; use one of {FAILURES}")

    # -- endpoints ---------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        gate = await self._gate(request)
        if isinstance(gate, web.Response):
            return gate
        data = [
            {"id": name, "object": "model", "created": 1700000000, "owned_by": "fake"}
            for name in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        body = record.json or {}
        stream = bool(body.get("stream"))
        gate = await self._gate(request, streaming=stream)
        if isinstance(gate, web.Response):
            return gate
        words = self.reply.split(" ")
        pieces = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        usage = {
            "prompt_tokens": _count_prompt_words(body.get("messages", [])),
            "completion_tokens": len(pieces),
            "total_tokens": 0,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        ident = f"chatcmpl-{len(self.requests)}"
        model = body.get("model", "")
        if not stream:
            message = {"role": "assistant", "content": self.reply}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return web.json_response(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [choice],
                    "usage": usage,
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": choices,
                **extra,
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        def delta(content: str, role: bool = False) -> dict[str, Any]:
            d: dict[str, Any] = {"content": content}
            if role:
                d["role"] = "assistant"
            return {"index": 0, "delta": d, "finish_reason": None}

        await send([delta("", role=True)])
        for index, piece in enumerate(pieces):
            if gate == "cut" and index == self.cut_after:
                await asyncio.sleep(0.05)  # let the sent chunks reach the client first
                assert request.transport is not None
                request.transport.abort()  # the connection drops mid-body
                return response
            if gate == "filtered" and index == self.cut_after:
                await send([{"index": 0, "delta": {}, "finish_reason": "content_filter"}])
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
                return response
            if gate == "malformed" and index == 1:
                await response.write(b"data: {not json\n\n")
                await response.write_eof()
                return response
            if gate == "misshapen" and index == 1:
                await send([{"index": 0, "delta": {"content": {"text": piece}}}])
                await response.write_eof()
                return response
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            await send([delta(piece)])
        if gate == "truncated":
            await response.write_eof()
            return response
        await send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        include_usage = (body.get("stream_options") or {}).get("include_usage")
        if include_usage and self.report_usage:
            await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _count_prompt_words(messages: list[dict[str, Any]]) -> int:
    """Input "tokens" as the fake counts them: words of every text part of every message."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content.split())
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    total += len(part.get("text", "").split())
    return total
