"""A local fake of the Gemini API (generativelanguage.googleapis.com) as ``google-genai`` calls it.

Routes, under ``/{version}`` (``v1beta`` by default):

* ``POST /v1beta/models/{model}:generateContent``: one JSON ``GenerateContentResponse``
* ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``: SSE, one
  ``data: {GenerateContentResponse}`` event per text piece; the last carries ``finishReason`` and
  ``usageMetadata``
* ``GET /v1beta/models``: ``{"models": [...]}``

The key travels in ``x-goog-api-key`` (what the SDK sends) or ``?key=`` (what curl examples use).
Like the real service, no key is a 403 ``PERMISSION_DENIED`` and a wrong one a 400
``INVALID_ARGUMENT`` whose ``ErrorInfo`` reason is ``API_KEY_INVALID``.

Scenario control: append to ``fake.next_failures`` and the next request(s) fail that way, in order:

* ``"401"`` (``UNAUTHENTICATED``), ``"403"`` (``PERMISSION_DENIED``), ``"400"``
  (``INVALID_ARGUMENT``), ``"500"`` (``INTERNAL``)
* ``"429"``: ``RESOURCE_EXHAUSTED`` with ``Retry-After: fake.retry_after`` and a ``RetryInfo``
  detail whose ``retryDelay`` is ``fake.retry_delay``
* ``"slow"``: answer only after ``fake.slow_seconds`` (longer than the client's timeout)
* ``"cut"``: stream ``fake.cut_after`` events, then drop the connection
* ``"malformed"``: stream one event, then ``data: {not json``
* ``"blocked"``: no candidates, ``promptFeedback.blockReason = SAFETY``
* ``"unsafe"``: stream one piece, then a candidate with ``finishReason = SAFETY`` (the answer
  cut off by the safety filters)

Every request is recorded in ``fake.requests`` (method, path, query, headers, JSON body).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

FAILURES = ("400", "401", "403", "429", "500", "slow", "cut", "malformed", "blocked", "unsafe")
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key") or self.query.get("key")

    def parts(self) -> list[dict[str, Any]]:
        """Every part of every content in the request body, in order."""
        contents = (self.json or {}).get("contents", [])
        return [part for content in contents for part in content.get("parts", [])]


def error_body(code: int, message: str, details: list[dict[str, Any]] | None = None) -> str:
    """Google's error envelope (``google.rpc.Status`` inside ``error``)."""
    error: dict[str, Any] = {"code": code, "message": message, "status": STATUS_NAMES[code]}
    if details:
        error["details"] = details
    return json.dumps({"error": error})


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class FakeGemini:
    """State and behaviour of one fake server. ``api_key=None`` accepts any or no key."""

    api_key: str | None = "gemini-test-key"
    models: list[str] = field(
        default_factory=lambda: ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.0-flash"]
    )
    #: Streamed in this many pieces (split on words).
    reply: str = "Hello from the fake Gemini model."
    pieces: int = 3
    #: Reported as ``thoughtsTokenCount`` (2.5 models bill thinking as output).
    thoughts_tokens: int = 0
    #: ``None`` sends no ``Retry-After`` header, only the ``RetryInfo`` detail (as Google does).
    retry_after: str | None = "7"
    retry_delay: str = "12s"
    slow_seconds: float = 3.0
    cut_after: int = 1
    next_failures: list[str] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/{version}/models", self._list_models)
        app.router.add_post("/{version}/models/{call}", self._generate)
        return app

    # -- helpers -------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> Recorded:
        body = None
        if request.can_read_body:
            body = await request.json()
        recorded = Recorded(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            json=body,
        )
        self.requests.append(recorded)
        return recorded

    def _auth_error(self, recorded: Recorded) -> web.Response | None:
        if self.api_key is None:
            return None
        if not recorded.api_key:
            return web.Response(
                status=403,
                text=error_body(403, "Method doesn't allow unregistered callers."),
                content_type="application/json",
            )
        if recorded.api_key != self.api_key:
            detail = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
            return web.Response(
                status=400,
                text=error_body(400, "API key not valid. Please pass a valid API key.", [detail]),
                content_type="application/json",
            )
        return None

    def _failure_response(self, failure: str) -> web.Response | None:
        if failure == "429":
            detail = {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": self.retry_delay,
            }
            return web.Response(
                status=429,
                text=error_body(429, "Resource has been exhausted (e.g. check quota).", [detail]),
                content_type="application/json",
                headers={"Retry-After": self.retry_after} if self.retry_after else None,
            )
        if failure in ("400", "401", "403", "500"):
            code = int(failure)
            return web.Response(
                status=code,
                text=error_body(code, f"Fake failure {code}."),
                content_type="application/json",
            )
        return None

    async def _gate(self, recorded: Recorded) -> tuple[web.Response | None, str | None]:
        """Auth first, then the next scripted failure (if any). Returns (response, failure)."""
        denied = self._auth_error(recorded)
        if denied is not None:
            return denied, None
        failure = self.next_failures.pop(0) if self.next_failures else None
        if failure == "slow":
            await asyncio.sleep(self.slow_seconds)
        return (self._failure_response(failure) if failure else None), failure

    def _response(
        self, text: str, model: str, *, finish: bool, usage: dict[str, int] | None
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": text}], "role": "model"},
            "index": 0,
        }
        if finish:
            candidate["finishReason"] = "STOP"
        body: dict[str, Any] = {
            "candidates": [candidate],
            "modelVersion": model,
            "responseId": "fake-response-1",
        }
        if usage is not None:
            body["usageMetadata"] = usage
        return body

    def _usage(self, recorded: Recorded) -> dict[str, int]:
        """Word counts stand in for tokens; 258 per inline file, as Gemini counts an image."""
        body = recorded.json or {}
        system = body.get("systemInstruction", {}).get("parts", [])
        prompt = sum(_words(p.get("text", "")) for p in recorded.parts() + system)
        prompt += 258 * sum(1 for p in recorded.parts() if "inlineData" in p)
        output = _words(self.reply)
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output + self.thoughts_tokens,
        }
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        return usage

    def _pieces(self) -> list[str]:
        words = self.reply.split(" ")
        size = max(1, -(-len(words) // self.pieces))
        chunks = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [c + (" " if i < len(chunks) - 1 else "") for i, c in enumerate(chunks)]

    # -- handlers ------------------------------------------------------------------------------

    async def _list_models(self, request: web.Request) -> web.Response:
        recorded = await self._record(request)
        failed, _ = await self._gate(recorded)
        if failed is not None:
            return failed
        models = [
            {
                "name": f"models/{name}",
                "version": "001",
                "displayName": name.replace("-", " ").title(),
                "inputTokenLimit": 1_048_576,
                "outputTokenLimit": 65_536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for name in self.models
        ]
        return web.json_response({"models": models})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            raise web.HTTPNotFound()
        recorded = await self._record(request)
        failed, failure = await self._gate(recorded)
        if failed is not None:
            return failed
        if model not in self.models:
            return web.Response(
                status=404,
                text=json.dumps(
                    {
                        "error": {
                            "code": 404,
                            "message": f"models/{model} is not found.",
                            "status": "NOT_FOUND",
                        }
                    }
                ),
                content_type="application/json",
            )
        if failure == "blocked":
            body = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
            if method == "generateContent":
                return web.json_response(body)
            return await self._sse(request, [json.dumps(body)])
        usage = self._usage(recorded)
        if method == "generateContent":
            return web.json_response(self._response(self.reply, model, finish=True, usage=usage))
        if request.query.get("alt") != "sse":
            raise web.HTTPBadRequest(text="this fake only streams with alt=sse")
        pieces = self._pieces()
        events = [
            json.dumps(
                self._response(
                    piece,
                    model,
                    finish=index == len(pieces) - 1,
                    usage=usage if index == len(pieces) - 1 else None,
                )
            )
            for index, piece in enumerate(pieces)
        ]
        if failure == "malformed":
            events = [events[0], "{not json"]
        if failure == "unsafe":
            stopped = self._response("", model, finish=False, usage=usage)
            stopped["candidates"][0]["finishReason"] = "SAFETY"
            events = [events[0], json.dumps(stopped)]
        return await self._sse(
            request, events, cut_after=self.cut_after if failure == "cut" else None
        )

    async def _sse(
        self, request: web.Request, events: list[str], cut_after: int | None = None
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, event in enumerate(events):
            if cut_after is not None and index == cut_after:
                assert request.transport is not None
                request.transport.abort()  # the connection drops mid-body
                return response
            await response.write(f"data: {event}\r\n\r\n".encode())
        await response.write_eof()
        return response
