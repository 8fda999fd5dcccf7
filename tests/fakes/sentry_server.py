"""A local fake of Sentry's ingestion endpoint: ``POST /api/<project>/envelope/``.

It checks the ``X-Sentry-Auth`` header names the DSN's public key, reads the body (aiohttp
undoes the transport's gzip or deflate), parses the envelope (a JSON header line, then items:
a JSON item header line and its payload, ``length`` bytes long or up to the next newline) and
records it.
``fake.envelopes`` holds every envelope as ``(header, [(item_header, payload_bytes)])``,
``fake.raw`` the decompressed bytes as received (to search for what must not be there),
``fake.events`` the payloads of ``event`` items as dicts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

AUTH_KEY = re.compile(r"sentry_key=([^,\s]+)")


def parse_envelope(body: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    header_line, _, rest = body.partition(b"\n")
    header = json.loads(header_line)
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        items.append((item_header, payload))
    return header, items


@dataclass
class FakeSentry:
    public_key: str = "publickey"
    project: str = "1"
    envelopes: list[tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]] = field(
        default_factory=list
    )
    raw: list[bytes] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/api/{project}/envelope/", self.envelope)
        return app

    def dsn(self, base_url: str) -> str:
        host = base_url.split("://", 1)[1].rstrip("/")
        return f"http://{self.public_key}@{host}/{self.project}"

    async def envelope(self, request: web.Request) -> web.Response:
        auth = request.headers.get("X-Sentry-Auth", "")
        found = AUTH_KEY.search(auth)
        if found is None or found[1] != self.public_key:
            return web.json_response({"detail": "bad public key"}, status=401)
        if request.match_info["project"] != self.project:
            return web.json_response({"detail": "unknown project"}, status=404)
        body = await request.read()  # aiohttp undoes Content-Encoding (gzip, deflate)
        self.raw.append(body)
        self.envelopes.append(parse_envelope(body))
        return web.json_response({})

    @property
    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(payload)
            for _, items in self.envelopes
            for item_header, payload in items
            if item_header.get("type") == "event"
        ]
