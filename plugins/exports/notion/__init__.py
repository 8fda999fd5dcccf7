"""Notion: a note becomes a Notion page in the user's workspace (native blocks and a provenance
callout), and exporting it again updates that page. So do a conversation (its branch: prompts and
answers under the models' names), a prompt with its answers and an answer; a folder becomes a
page named after it holding one page per note (a page per subfolder in between), the same pages
updated when it is exported again.

Users connect their workspace through Notion's public-integration OAuth (authorize at
``<api_base>/v1/oauth/authorize`` with ``owner=user``; the code is exchanged at
``/v1/oauth/token`` with the client id and secret as HTTP Basic; Notion has no PKCE). In Notion's
consent screen they pick the pages the integration may use; the note goes under the page given as
``parent_page_id``, or else the first top-level page the integration can see.

The official ``notion-client`` (``AsyncClient`` with ``base_url`` from the settings, its httpx
client behind the outgoing-address guard) makes the calls. Its own retries are off: this plugin
retries every call on 429 and 5xx (and a dropped connection) up to four times, waiting what
``Retry-After`` says (at most ten seconds) or 0.5, 1, 2 s.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
from notion_client import AsyncClient
from notion_client.errors import HTTPResponseError, RequestTimeoutError
from pydantic import BaseModel, Field, SecretStr

from multinotes.plugin import (
    ActionRegistrar,
    ConnectedAccount,
    Connection,
    ConnectionKind,
    ConnectionRegistrar,
    ConnectionRejected,
    ConnectionUnavailable,
    Destination,
    ExportDocument,
    Exporter,
    ExporterRegistrar,
    ExportLink,
    ExportOptions,
    Invalid,
    OAuthEndpoints,
    ProviderBadResponse,
    ProviderUnavailable,
    SettingsRegistrar,
    export_actions,
    hookimpl,
    outgoing,
    parse_retry_after,
)
from multinotes.plugins.exports.notion import blocks as notion_blocks

__version__ = "1.0.0"

KIND = "notion"
MAX_ATTEMPTS = 4
MAX_WAIT = 10.0


class NotionSettings(BaseModel):
    client_id: str | None = Field(
        default=None,
        title="OAuth client ID",
        description="Of your public integration (notion.so/profile/integrations), whose "
        "redirect URI is <your site>/connections/notion/callback.",
    )
    client_secret: SecretStr | None = Field(default=None, title="OAuth client secret")
    api_base: str = Field(
        default="https://api.notion.com",
        title="API base",
        description="Notion's API (and OAuth) address.",
    )


class NotionConnection(ConnectionKind):
    kind_id = KIND
    name = "Notion"
    pkce = False  # Notion's OAuth does not take a code challenge
    token_auth = "basic"
    token_format = "json"
    authorize_params = {"owner": "user"}
    destination_label = "Parent page"
    pasted_token_label = "Internal integration secret"

    def endpoints(self, config: Any) -> OAuthEndpoints:
        settings = config if isinstance(config, NotionSettings) else NotionSettings()
        if not settings.client_id or settings.client_secret is None:
            raise ConnectionUnavailable(
                "Notion is not set up on this server yet: an administrator must enter the "
                "integration's OAuth client ID and secret."
            )
        base = settings.api_base.rstrip("/")
        return OAuthEndpoints(
            authorize_url=f"{base}/v1/oauth/authorize",
            token_url=f"{base}/v1/oauth/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
        )

    async def account(self, tokens: dict[str, Any], config: Any) -> ConnectedAccount:
        """Notion's token answer names the workspace; a pasted internal integration secret
        is asked who it is (``users/me``: the integration's bot and its workspace)."""
        if "workspace_id" not in tokens and "bot_id" not in tokens:
            tokens = {**tokens, **await self._bot(str(tokens["access_token"]), config)}
        owner = ((tokens.get("owner") or {}).get("user") or {}).get("name")
        workspace = tokens.get("workspace_name") or owner or "Notion workspace"
        return ConnectedAccount(
            account_id=str(tokens.get("workspace_id") or tokens.get("bot_id") or workspace),
            name=str(workspace),
            data={
                "workspace_id": tokens.get("workspace_id"),
                "bot_id": tokens.get("bot_id"),
            },
        )

    async def _bot(self, token: str, config: Any) -> dict[str, Any]:
        connection = Connection(KIND, token, "", "", {}, config)
        http = outgoing.guard_httpx_client(httpx.AsyncClient(**outgoing.HTTPX_CLIENT_ARGS))
        try:
            me = await call(notion_client(connection, http).users.me)
        except HTTPResponseError as exc:
            raise ProviderBadResponse(f"Notion refused to say who this is: {exc}") from exc
        finally:
            await http.aclose()
        bot = me.get("bot") or {}
        return {
            "bot_id": me.get("id"),
            "workspace_name": bot.get("workspace_name") or me.get("name"),
            "workspace_id": bot.get("workspace_id"),
        }

    async def destinations(self, connection: Connection) -> list[Destination]:
        """The pages the integration may use (those the user shared with it), top-level
        pages first."""
        http = outgoing.guard_httpx_client(httpx.AsyncClient(**outgoing.HTTPX_CLIENT_ARGS))
        try:
            pages = await Page(notion_client(connection, http)).shared_pages()
        finally:
            await http.aclose()
        return [Destination(str(p["id"]), page_title(p)) for p in pages]


def notion_client(connection: Connection, http: httpx.AsyncClient) -> AsyncClient:
    settings = connection.config if isinstance(connection.config, NotionSettings) else None
    base = (settings or NotionSettings()).api_base.rstrip("/")
    return AsyncClient(client=http, auth=connection.access_token, base_url=base, retry=False)


def page_title(page: dict[str, Any]) -> str:
    """A page's title (the property of type title, whatever its name)."""
    for prop in (page.get("properties") or {}).values():
        if isinstance(prop, dict) and prop.get("type") == "title":
            text = "".join(
                i.get("plain_text") or i.get("text", {}).get("content", "")
                for i in prop.get("title") or []
            )
            return text or "Untitled"
    return "Untitled"


class NotionOptions(ExportOptions):
    parent_page_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$",
        description="The Notion page to put the note under (default: the first page shared "
        "with the integration). Ignored when the note was exported before: that page is updated.",
    )


def _wait(exc: Exception, attempt: int) -> float:
    headers = getattr(exc, "headers", None)
    hinted = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    return min(hinted if hinted is not None else 0.5 * 2**attempt, MAX_WAIT)


async def call(make: Callable[[], Awaitable[Any]]) -> Any:
    """One Notion call, retried on 429/5xx and dropped connections; a refused token is
    ``ConnectionRejected``."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return await make()
        except HTTPResponseError as exc:
            if exc.status == 401:
                raise ConnectionRejected() from exc
            if exc.status != 429 and exc.status < 500:
                raise
            failure: Exception = exc
        except (httpx.TransportError, RequestTimeoutError, OSError) as exc:
            # OSError: the outgoing guard's own name lookup failed (no such host, no DNS).
            refused = outgoing.refusal_in(exc)
            if refused is not None:
                raise refused from exc
            failure = exc
        if attempt + 1 == MAX_ATTEMPTS:
            raise ProviderUnavailable(
                "Notion is not answering (busy or down). Try again in a minute."
            ) from failure
        await asyncio.sleep(_wait(failure, attempt))
    raise AssertionError("unreachable")


def _refused(exc: HTTPResponseError) -> Exception:
    """What a 4xx from Notion means for the user."""
    if exc.status in (403, 404):
        return Invalid(
            "The Notion integration cannot reach that page: share it with the integration in "
            "Notion (••• → Connections), or choose another.",
            fields={"parent_page_id": "not shared with the integration"},
        )
    return ProviderBadResponse(f"Notion refused the page: {exc}")


class NotionExporter(Exporter):
    exporter_id = "notion"
    name = "Notion"
    description = "A page in your Notion workspace, updated when you export the note again."
    media_type = "text/html"  # a link to the page
    extension = ""
    remote = True
    connection = KIND
    Options = NotionOptions

    async def render(
        self,
        document: ExportDocument,
        options: ExportOptions,
        *,
        connection: Connection | None = None,
    ) -> ExportLink:
        if connection is None:
            raise Invalid("Connect your Notion workspace first.", fields={"connection": KIND})
        chosen = options if isinstance(options, NotionOptions) else NotionOptions()
        link = document.link or ""
        site = f"{urlsplit(link).scheme}://{urlsplit(link).netloc}" if link else None
        content = notion_blocks.page_blocks(document, chosen, site)
        http = outgoing.guard_httpx_client(httpx.AsyncClient(**outgoing.HTTPX_CLIENT_ARGS))
        try:
            try:
                return await Page(notion_client(connection, http)).write(
                    document, chosen, connection, content
                )
            except HTTPResponseError as exc:
                raise _refused(exc) from exc
        finally:
            await http.aclose()

    async def container(
        self,
        title: str,
        link: str | None,
        options: ExportOptions,
        *,
        connection: Connection,
    ) -> ExportLink:
        """A folder's page: its notes' pages go under it (and its subfolders' pages)."""
        chosen = options if isinstance(options, NotionOptions) else NotionOptions()
        http = outgoing.guard_httpx_client(httpx.AsyncClient(**outgoing.HTTPX_CLIENT_ARGS))
        try:
            try:
                return await Page(notion_client(connection, http)).folder(
                    title, link, chosen, connection
                )
            except HTTPResponseError as exc:
                raise _refused(exc) from exc
        finally:
            await http.aclose()


class Page:
    """Writing one note's page: create it, or update the one made before."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def write(
        self,
        document: ExportDocument,
        options: NotionOptions,
        connection: Connection,
        content: list[dict[str, Any]],
    ) -> ExportLink:
        title = notion_blocks.title_text(document.title)
        page: dict[str, Any] | None = await self.existing(connection.remote_id)
        if page is None:
            parent = await self.parent(options, connection)
            page = await call(
                lambda: self.client.pages.create(
                    parent={"type": "page_id", "page_id": parent},
                    properties={"title": {"title": title}},
                    children=content[: notion_blocks.MAX_ITEMS],
                )
            )
            rest = content[notion_blocks.MAX_ITEMS :]
        else:
            page_id = page["id"]
            await call(
                lambda: self.client.pages.update(page_id, properties={"title": {"title": title}})
            )
            await self.clear(page_id)
            rest = content
        assert page is not None
        await self.append(page["id"], rest)
        return ExportLink(url=str(page["url"]), remote_id=str(page["id"]))

    async def parent(self, options: NotionOptions, connection: Connection) -> str:
        """Where a new page goes: its folder's page (a folder's export), else the page asked
        for, else the one picked on /account, else the first page shared with the integration."""
        picked = (connection.data.get("destination") or {}).get("id")
        return str(
            connection.parent_id or options.parent_page_id or picked or await self.default_parent()
        )

    async def folder(
        self, title: str, link: str | None, options: NotionOptions, connection: Connection
    ) -> ExportLink:
        """The page holding a folder's note pages: made once (a line linking back to the
        folder), renamed when exported again. Its blocks are left alone: in Notion the note
        pages under it are among them."""
        name = notion_blocks.title_text(title or "Untitled folder")
        page: dict[str, Any] | None = await self.existing(connection.remote_id)
        if page is None:
            parent = await self.parent(options, connection)
            intro = notion_blocks.folder_intro(title, link)
            page = await call(
                lambda: self.client.pages.create(
                    parent={"type": "page_id", "page_id": parent},
                    icon={"type": "emoji", "emoji": "📁"},
                    properties={"title": {"title": name}},
                    children=intro,
                )
            )
        else:
            page_id = page["id"]
            await call(
                lambda: self.client.pages.update(page_id, properties={"title": {"title": name}})
            )
        assert page is not None
        return ExportLink(url=str(page["url"]), remote_id=str(page["id"]))

    async def existing(self, page_id: str | None) -> dict[str, Any] | None:
        """The page an earlier export made, unless it was deleted (then a new one is made)."""
        if not page_id:
            return None
        try:
            page: dict[str, Any] = await call(lambda: self.client.pages.retrieve(page_id))
        except HTTPResponseError as exc:
            if exc.status in (403, 404):
                return None
            raise
        if page.get("archived") or page.get("in_trash"):
            return None
        return page

    async def shared_pages(self) -> list[dict[str, Any]]:
        """The pages the integration can see (first 100), top-level pages first."""
        found = await call(
            lambda: self.client.search(
                filter={"property": "object", "value": "page"}, page_size=100
            )
        )
        pages = [p for p in found.get("results", []) if p.get("object") == "page"]
        top = [p for p in pages if (p.get("parent") or {}).get("type") == "workspace"]
        return top + [p for p in pages if p not in top]

    async def default_parent(self) -> str:
        """The first top-level page the integration can see (else any page it can see)."""
        pages = await self.shared_pages()
        if not pages:
            raise Invalid(
                "The Notion integration has no page to put the note under: share a page with it "
                "in Notion (••• → Connections), or reconnect and pick one.",
                fields={"parent_page_id": "no page shared with the integration"},
            )
        return str(pages[0]["id"])

    async def clear(self, page_id: str) -> None:
        """Delete the page's blocks (they are replaced by the note as it is now)."""
        old: list[str] = []
        cursor: str | None = None
        while True:
            kwargs = {"page_size": 100, **({"start_cursor": cursor} if cursor else {})}
            listed = await call(
                functools.partial(self.client.blocks.children.list, page_id, **kwargs)
            )
            old.extend(b["id"] for b in listed.get("results", []))
            cursor = listed.get("next_cursor")
            if not listed.get("has_more") or not cursor:
                break
        for block_id in old:
            await call(functools.partial(self.client.blocks.delete, block_id))

    async def append(self, page_id: str, content: list[dict[str, Any]]) -> None:
        """Append ``content`` 100 blocks per request (Notion's limit)."""
        size = notion_blocks.MAX_ITEMS
        for start in range(0, len(content), size):
            batch = content[start : start + size]
            await call(
                functools.partial(self.client.blocks.children.append, page_id, children=batch)
            )


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(NotionSettings)


@hookimpl
def register_connections(register: ConnectionRegistrar) -> None:
    register(NotionConnection())


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(NotionExporter())


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    """Export → Notion on a note, an answer, a prompt's comparison, a conversation and a folder
    (connecting the workspace first when needed)."""
    for action in export_actions(NotionExporter()):
        register(action)
