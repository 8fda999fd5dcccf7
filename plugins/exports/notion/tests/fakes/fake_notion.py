"""A local Notion that speaks the public API closely enough for the official ``notion-client``
to run against it unchanged (``base_url`` pointed here).

It checks what the real one checks and the exporter must respect: a ``Notion-Version`` header and
a bearer token on every API call, HTTP Basic client credentials on ``/v1/oauth/token``; at most
100 blocks per request, at most 100 rich-text items per block and 2,000 characters per text
item, at most two levels of nested children in one request, known block types only. Errors are
Notion's: ``{"object": "error", "status", "code", "message"}``.

It also plays the consent screen: ``GET /v1/oauth/authorize`` records the request and sends the
browser straight back to ``redirect_uri`` with a one-time ``code`` (the person "allowed" it).
Tests steer it with ``next_failures`` (status, headers) answered before the next API calls,
``expire_access_tokens()`` (401 until refreshed) and ``revoke_all()`` (refresh refused too).
"""

from __future__ import annotations

import base64
import itertools
import secrets
import uuid
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

API_VERSION_HEADER = "Notion-Version"
MAX_BLOCKS = 100
MAX_RICH_TEXT = 100
MAX_TEXT = 2000
TEXT_BLOCKS = {
    "paragraph",
    "heading_1",
    "heading_2",
    "heading_3",
    "bulleted_list_item",
    "numbered_list_item",
    "quote",
    "callout",
    "code",
    "toggle",
}
OTHER_BLOCKS = {"divider", "image", "table", "table_row", "bookmark"}


class NotionError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Any:
    return web.json_response(
        {"object": "error", "status": status, "code": code, "message": message},
        status=status,
        headers=headers,
    )


class FakeNotion:
    def __init__(
        self,
        client_id: str = "notion-client-id",
        client_secret: str = "notion-client-secret",  # noqa: S107 (the fake's own)
        token_lifetime: int | None = 3600,
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime = token_lifetime
        self.workspace = {"id": str(uuid.uuid4()), "name": "Ann's Workspace"}
        self.bot_id = str(uuid.uuid4())
        self.codes: dict[str, str] = {}  # code -> redirect_uri
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.next_failures: list[tuple[int, dict[str, str]]] = []
        self.pages: dict[str, dict[str, Any]] = {}
        self.blocks: dict[str, dict[str, Any]] = {}
        self.children: dict[str, list[str]] = {}
        self._ids = itertools.count(1)
        #: A page the integration was given access to when the user connected it.
        self.root_page = self.add_page("Team notes")
        #: The secret of an internal integration of the same workspace (pasted, not OAuth).
        self.internal_token = f"ntn_internal_{secrets.token_hex(8)}"
        self.access_tokens.add(self.internal_token)

    # -- what tests look at -------------------------------------------------------------------

    def add_page(self, title: str, parent: dict[str, Any] | None = None) -> str:
        page_id = str(uuid.uuid4())
        self.pages[page_id] = {
            "object": "page",
            "id": page_id,
            "parent": parent or {"type": "workspace", "workspace": True},
            "archived": False,
            "in_trash": False,
            "properties": {"title": {"id": "title", "type": "title", "title": _text(title)}},
            "url": f"https://www.notion.so/{page_id.replace('-', '')}",
        }
        self.children[page_id] = []
        return page_id

    def title_of(self, page_id: str) -> str:
        items = self.pages[page_id]["properties"]["title"]["title"]
        return "".join(item["text"]["content"] for item in items)

    def page_blocks(self, page_id: str) -> list[dict[str, Any]]:
        """The live top-level blocks of a page, in order."""
        return [
            self.blocks[b] for b in self.children.get(page_id, []) if not self.blocks[b]["archived"]
        ]

    def plain_text(self, block: dict[str, Any]) -> str:
        body = block[block["type"]]
        return "".join(item["text"]["content"] for item in body.get("rich_text", []))

    def created_pages(self) -> list[str]:
        return [p for p in self.pages if p != self.root_page]

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()
        self.access_tokens.add(self.internal_token)

    def revoke_all(self) -> None:
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    # -- the server ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._checks])
        app.router.add_get("/v1/oauth/authorize", self.authorize)
        app.router.add_post("/v1/oauth/token", self.token)
        app.router.add_post("/v1/search", self.search)
        app.router.add_get("/v1/users/me", self.me)
        app.router.add_post("/v1/pages", self.create_page)
        app.router.add_get("/v1/pages/{id}", self.get_page)
        app.router.add_patch("/v1/pages/{id}", self.update_page)
        app.router.add_get("/v1/blocks/{id}/children", self.list_children)
        app.router.add_patch("/v1/blocks/{id}/children", self.append_children)
        app.router.add_delete("/v1/blocks/{id}", self.delete_block)
        return app

    @web.middleware
    async def _checks(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path.startswith("/v1/oauth/"):
            return await handler(request)
        if not request.headers.get(API_VERSION_HEADER):
            return _error(400, "missing_version", "Notion-Version header failed validation.")
        if self.next_failures:
            status, headers = self.next_failures.pop(0)
            code = "rate_limited" if status == 429 else "internal_server_error"
            return _error(status, code, "Injected failure.", headers)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.access_tokens:
            return _error(401, "unauthorized", "API token is invalid.")
        try:
            return await handler(request)
        except NotionError as exc:
            return _error(exc.status, exc.code, exc.message)

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.authorize_requests.append(query)
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return web.Response(status=400, text="bad authorize request")
        code = secrets.token_urlsafe(16)
        self.codes[code] = query.get("redirect_uri", "")
        back = urlencode({"code": code, "state": query.get("state", "")})
        raise web.HTTPFound(f"{query['redirect_uri']}?{back}")

    def _issue(self) -> dict[str, Any]:
        access, refresh = f"ntn_{secrets.token_hex(12)}", f"nrt_{secrets.token_hex(12)}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        answer: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "refresh_token": refresh,
            "bot_id": self.bot_id,
            "workspace_id": self.workspace["id"],
            "workspace_name": self.workspace["name"],
            "workspace_icon": None,
            "owner": {"type": "user", "user": {"object": "user", "id": "u1", "name": "Ann"}},
            "duplicated_template_id": None,
            "request_id": str(uuid.uuid4()),
        }
        if self.token_lifetime:
            answer["expires_in"] = self.token_lifetime
        return answer

    async def token(self, request: web.Request) -> web.StreamResponse:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.json_response({"error": "invalid_client"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "invalid_request"}, status=400)
        self.token_requests.append(body)
        if body.get("grant_type") == "authorization_code":
            redirect_uri = self.codes.pop(body.get("code", ""), None)
            if redirect_uri is None or redirect_uri != body.get("redirect_uri"):
                return web.json_response({"error": "invalid_grant"}, status=400)
            return web.json_response(self._issue())
        if body.get("grant_type") == "refresh_token":
            refresh = body.get("refresh_token", "")
            if refresh not in self.refresh_tokens:
                return web.json_response({"error": "invalid_grant"}, status=400)
            self.refresh_tokens.discard(refresh)  # rotated, like Notion does
            return web.json_response(self._issue())
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def me(self, request: web.Request) -> web.StreamResponse:
        """The integration's bot user, naming its workspace."""
        return web.json_response(
            {
                "object": "user",
                "id": self.bot_id,
                "type": "bot",
                "name": "MultinotesAI",
                "bot": {
                    "owner": {"type": "workspace", "workspace": True},
                    "workspace_name": self.workspace["name"],
                    "workspace_id": self.workspace["id"],
                },
            }
        )

    async def search(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        wanted = (body.get("filter") or {}).get("value")
        results = [p for p in self.pages.values() if not p["archived"] and wanted in (None, "page")]
        return web.json_response(
            {"object": "list", "results": results, "next_cursor": None, "has_more": False}
        )

    def _page(self, page_id: str) -> dict[str, Any]:
        page = self.pages.get(page_id) or self.pages.get(_dashed(page_id))
        if page is None:
            raise NotionError(404, "object_not_found", f"Could not find page with ID: {page_id}.")
        return page

    async def create_page(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        parent = body.get("parent") or {}
        parent_page = self._page(str(parent.get("page_id", "")))
        if parent_page["archived"]:
            raise NotionError(400, "validation_error", "Can't edit block that is archived.")
        title = ((body.get("properties") or {}).get("title") or {}).get("title")
        if not isinstance(title, list):
            raise NotionError(400, "validation_error", "body.properties.title should be defined")
        _check_rich_text(title, "properties.title")
        children = body.get("children") or []
        _check_children(children, "children", depth=1)
        page_id = self.add_page("", {"type": "page_id", "page_id": parent_page["id"]})
        self.pages[page_id]["properties"]["title"]["title"] = title
        self._store_children(page_id, children)
        return web.json_response(self.pages[page_id])

    async def get_page(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self._page(request.match_info["id"]))

    async def update_page(self, request: web.Request) -> web.StreamResponse:
        page = self._page(request.match_info["id"])
        body = await request.json()
        title = ((body.get("properties") or {}).get("title") or {}).get("title")
        if title is not None:
            _check_rich_text(title, "properties.title")
            page["properties"]["title"]["title"] = title
        if "archived" in body:
            page["archived"] = bool(body["archived"])
        return web.json_response(page)

    async def list_children(self, request: web.Request) -> web.StreamResponse:
        parent = request.match_info["id"]
        if parent not in self.children:
            raise NotionError(404, "object_not_found", f"Could not find block with ID: {parent}.")
        size = min(int(request.query.get("page_size", "100")), 100)
        live = [b for b in self.children[parent] if not self.blocks[b]["archived"]]
        start = live.index(request.query["start_cursor"]) if "start_cursor" in request.query else 0
        chunk = live[start : start + size]
        more = start + size < len(live)
        return web.json_response(
            {
                "object": "list",
                "results": [self.blocks[b] for b in chunk],
                "next_cursor": live[start + size] if more else None,
                "has_more": more,
            }
        )

    async def append_children(self, request: web.Request) -> web.StreamResponse:
        parent = request.match_info["id"]
        if parent in self.pages:
            if self.pages[parent]["archived"]:
                raise NotionError(400, "validation_error", "Can't edit block that is archived.")
        elif parent not in self.blocks:
            raise NotionError(404, "object_not_found", f"Could not find block with ID: {parent}.")
        body = await request.json()
        children = body.get("children")
        if not isinstance(children, list) or not children:
            raise NotionError(400, "validation_error", "body.children should be defined.")
        _check_children(children, "children", depth=1)
        added = self._store_children(parent, children)
        return web.json_response(
            {"object": "list", "results": [self.blocks[b] for b in added], "has_more": False}
        )

    async def delete_block(self, request: web.Request) -> web.StreamResponse:
        block = self.blocks.get(request.match_info["id"])
        if block is None:
            raise NotionError(404, "object_not_found", "Could not find block.")
        block["archived"] = True
        return web.json_response(block)

    def _store_children(self, parent: str, children: list[dict[str, Any]]) -> list[str]:
        added = []
        for child in children:
            block_id = str(uuid.uuid4())
            kind = child["type"]
            body = {k: v for k, v in child[kind].items() if k != "children"}
            nested = child[kind].get("children") or []
            self.blocks[block_id] = {
                "object": "block",
                "id": block_id,
                "type": kind,
                kind: body,
                "has_children": bool(nested),
                "archived": False,
            }
            self.children.setdefault(parent, []).append(block_id)
            self.children[block_id] = []
            self._store_children(block_id, nested)
            added.append(block_id)
        return added


def _dashed(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _text(content: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"content": content, "link": None}, "plain_text": content}]


def _check_rich_text(items: Any, where: str) -> None:
    if not isinstance(items, list):
        raise NotionError(400, "validation_error", f"{where} should be an array.")
    if len(items) > MAX_RICH_TEXT:
        raise NotionError(
            400,
            "validation_error",
            f"{where}.length should be ≤ `{MAX_RICH_TEXT}`, instead was `{len(items)}`.",
        )
    for n, item in enumerate(items):
        text = (item or {}).get("text") or {}
        content = text.get("content")
        if not isinstance(content, str):
            raise NotionError(400, "validation_error", f"{where}[{n}].text.content is missing.")
        if len(content) > MAX_TEXT:
            raise NotionError(
                400,
                "validation_error",
                f"{where}[{n}].text.content.length should be ≤ `{MAX_TEXT}`, "
                f"instead was `{len(content)}`.",
            )
        link = text.get("link")
        if link is not None and not str(link.get("url", "")).startswith(("http://", "https://")):
            raise NotionError(400, "validation_error", f"{where}[{n}].text.link.url is invalid.")


def _check_children(children: Any, where: str, depth: int) -> None:
    if not isinstance(children, list):
        raise NotionError(400, "validation_error", f"{where} should be an array.")
    if len(children) > MAX_BLOCKS:
        raise NotionError(
            400,
            "validation_error",
            f"{where}.length should be ≤ `{MAX_BLOCKS}`, instead was `{len(children)}`.",
        )
    if depth > 3:  # a request may nest children two levels below its top-level blocks
        raise NotionError(400, "validation_error", f"{where} is nested too deeply.")
    for n, block in enumerate(children):
        kind = (block or {}).get("type")
        if kind not in TEXT_BLOCKS | OTHER_BLOCKS or not isinstance(block.get(kind), dict):
            raise NotionError(400, "validation_error", f"{where}[{n}] is not a valid block.")
        body = block[kind]
        if kind in TEXT_BLOCKS:
            _check_rich_text(body.get("rich_text"), f"{where}[{n}].{kind}.rich_text")
        if kind == "code" and not isinstance(body.get("language"), str):
            raise NotionError(400, "validation_error", f"{where}[{n}].code.language is missing.")
        if kind == "image":
            url = ((body.get("external") or {}).get("url")) or ""
            if body.get("type") != "external" or not url.startswith(("http://", "https://")):
                raise NotionError(400, "validation_error", f"{where}[{n}].image is invalid.")
        if kind == "table":
            rows = body.get("children") or []
            width = body.get("table_width")
            if not rows or any(len(r["table_row"]["cells"]) != width for r in rows):
                raise NotionError(
                    400, "validation_error", f"{where}[{n}].table rows must have table_width cells."
                )
            for r, row in enumerate(rows):
                for c, cell in enumerate(row["table_row"]["cells"]):
                    _check_rich_text(cell, f"{where}[{n}].table.children[{r}].cells[{c}]")
            continue
        if body.get("children"):
            _check_children(body["children"], f"{where}[{n}].{kind}.children", depth + 1)
