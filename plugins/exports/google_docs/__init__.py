"""Google Docs: a note becomes a Google Doc in the user's Drive (in a folder they choose), and
exporting it again updates that document. So do a conversation (its branch), a prompt with its
answers and an answer; a folder becomes a Drive folder named after it holding one document per
note (a Drive folder per subfolder), the same ones updated when it is exported again.

Users connect Google through OAuth 2.0 for web apps with PKCE and offline access (a refresh
token), asking for the ``drive.file`` scope only: the app sees the files it made, nothing else
in the Drive.

How the document is made: the note is rendered to sanitised HTML (the app's own Markdown
renderer, as the HTML exporter does, with the provenance as a table) and uploaded to Drive with
``files.create`` (``uploadType=multipart``) and ``mimeType: application/vnd.google-apps.document``,
so Drive converts it; a re-export uploads the new HTML to the same file (``files.update``). We
chose this over the Docs API (``documents.create`` then ``batchUpdate`` with ``insertText``,
``updateParagraphStyle``, ``createParagraphBullets``, table inserts...) because Drive's importer
keeps headings, lists, links, bold/italic, code, quotes and tables from HTML in one request,
where the Docs API needs every style computed as index ranges (hundreds of lines that would
re-implement layout) and a re-export would first have to delete the body's ranges.

Plain aiohttp through the outgoing-address guard; every call is retried on 429, 5xx and
Drive's rate-limit 403s, waiting what ``Retry-After`` says (at most ten seconds) or 0.5, 1, 2 s.
"""

from __future__ import annotations

import asyncio
import base64
import html
import json
from typing import Any

import aiohttp
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
    render_markdown,
)

__version__ = "1.0.0"

KIND = "google_docs"
DOC = "application/vnd.google-apps.document"
FOLDER = "application/vnd.google-apps.folder"
DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"
MAX_ATTEMPTS = 4
MAX_WAIT = 10.0
TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)
#: Drive answers 403 with these reasons when it wants the client to slow down.
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


class GoogleDocsSettings(BaseModel):
    client_id: str | None = Field(
        default=None,
        title="OAuth client ID",
        description="A Google Cloud OAuth client of type Web application, whose redirect "
        "URI is <your site>/connections/google_docs/callback.",
    )
    client_secret: SecretStr | None = Field(default=None, title="OAuth client secret")
    api_base: str = Field(
        default="https://www.googleapis.com", title="API base", description="Drive's API."
    )
    auth_base: str = Field(
        default="https://accounts.google.com",
        title="Sign-in base",
        description="Where Google asks the user for consent.",
    )
    token_base: str = Field(
        default="https://oauth2.googleapis.com",
        title="Token base",
        description="Google's OAuth token endpoint (without /token).",
    )


def _settings(config: Any) -> GoogleDocsSettings:
    return config if isinstance(config, GoogleDocsSettings) else GoogleDocsSettings()


class GoogleConnection(ConnectionKind):
    kind_id = KIND
    name = "Google Docs"
    scopes = (DRIVE_FILE,)
    pkce = True
    token_auth = "body"
    token_format = "form"
    # offline: a refresh token; consent: Google sends it again when the user reconnects.
    authorize_params = {"access_type": "offline", "prompt": "consent"}
    destination_label = "Folder"

    def endpoints(self, config: Any) -> OAuthEndpoints:
        settings = _settings(config)
        if not settings.client_id or settings.client_secret is None:
            raise ConnectionUnavailable(
                "Google Docs is not set up on this server yet: an administrator must enter the "
                "OAuth client ID and secret."
            )
        return OAuthEndpoints(
            authorize_url=f"{settings.auth_base.rstrip('/')}/o/oauth2/v2/auth",
            token_url=f"{settings.token_base.rstrip('/')}/token",
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
        )

    async def account(self, tokens: dict[str, Any], config: Any) -> ConnectedAccount:
        """Whose Drive it is, from Drive's ``about`` (allowed with ``drive.file``)."""
        drive = Drive(_settings(config), str(tokens["access_token"]))
        about = await drive.request("GET", "/drive/v3/about", params={"fields": "user"})
        user = about.get("user") or {}
        name = user.get("emailAddress") or user.get("displayName") or "Google account"
        return ConnectedAccount(
            account_id=str(user.get("permissionId") or name), name=str(name), data={}
        )

    async def destinations(self, connection: Connection) -> list[Destination]:
        """My Drive, and the folders this app may put files in (with ``drive.file``: the ones
        it made or the user opened with it)."""
        drive = Drive(_settings(connection.config), connection.access_token)
        listed = await drive.request(
            "GET",
            "/drive/v3/files",
            params={
                "q": f"mimeType='{FOLDER}' and trashed=false",
                "fields": "files(id,name)",
                "pageSize": "100",
                "orderBy": "name",
            },
        )
        folders = [
            Destination(str(f["id"]), str(f.get("name") or "Untitled folder"))
            for f in listed.get("files") or []
            if isinstance(f, dict) and f.get("id")
        ]
        return [Destination("root", "My Drive"), *folders]


class DriveError(Exception):
    def __init__(
        self, status: int, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.retry_after = retry_after


class Drive:
    """The few Drive calls this plugin makes, retried as the module says."""

    def __init__(self, settings: GoogleDocsSettings, token: str) -> None:
        self.base = settings.api_base.rstrip("/")
        self.token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: tuple[dict[str, Any], str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        for attempt in range(MAX_ATTEMPTS):
            try:
                return await self._once(method, path, params, body, metadata)
            except DriveError as exc:
                if exc.status == 401:
                    raise ConnectionRejected() from exc
                busy = exc.status == 429 or exc.status >= 500
                if not busy and not (exc.status == 403 and exc.reason in RATE_REASONS):
                    raise
                failure: Exception = exc
                wait = exc.retry_after
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                refused = outgoing.refusal_in(exc)
                if refused is not None:
                    raise refused from exc
                failure, wait = exc, None
            if attempt + 1 == MAX_ATTEMPTS:
                raise ProviderUnavailable(
                    "Google Drive is not answering (busy or down). Try again in a minute."
                ) from failure
            await asyncio.sleep(min(wait if wait is not None else 0.5 * 2**attempt, MAX_WAIT))
        raise AssertionError("unreachable")

    async def _once(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        body: tuple[dict[str, Any], str] | None,
        metadata: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One call: ``body`` is an upload (metadata, then the HTML), ``metadata`` alone JSON."""
        data: aiohttp.MultipartWriter | bytes | None = None
        headers = {"Authorization": f"Bearer {self.token}"}
        if metadata is not None:
            data = json.dumps(metadata).encode()
            headers["Content-Type"] = "application/json; charset=UTF-8"
        if body is not None:
            metadata, page = body
            data = aiohttp.MultipartWriter("related")
            data.append_json(metadata)
            data.append(page, {"Content-Type": "text/html; charset=UTF-8"})
        async with (
            aiohttp.ClientSession(connector=outgoing.connector(), timeout=TIMEOUT) as http,
            http.request(
                method,
                f"{self.base}{path}",
                params=params,
                data=data,
                headers=headers,
                **outgoing.AIOHTTP_REQUEST_ARGS,
            ) as response,
        ):
            text = await response.text()
            try:
                answer = json.loads(text) if text else {}
            except ValueError:
                answer = {}
            if response.status >= 400:
                error = answer.get("error") if isinstance(answer, dict) else None
                error = error if isinstance(error, dict) else {}
                reasons = [
                    e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)
                ]
                raise DriveError(
                    response.status,
                    str(reasons[0] if reasons else ""),
                    str(error.get("message") or f"HTTP {response.status}"),
                    parse_retry_after(response.headers.get("Retry-After")),
                )
            if not isinstance(answer, dict):
                raise ProviderBadResponse("Google Drive sent something unexpected.")
            return answer


class GoogleDocsOptions(ExportOptions):
    folder_id: str | None = Field(
        default=None,
        pattern=r"^(root|[A-Za-z0-9_-]{10,200})$",
        description="The Drive folder to put the document in (default: My Drive). Ignored "
        "when the note was exported before: that document is updated where it is.",
    )


def _embed_images(body: str, document: ExportDocument) -> str:
    """The user's images (behind their login) as data: URIs, which Drive's importer reads."""
    for src, image in document.images.items():
        if image.media_type in IMAGE_TYPES:
            data = base64.b64encode(image.data).decode()
            body = body.replace(
                f'src="{html.escape(src)}"', f'src="data:{image.media_type};base64,{data}"'
            )
    return body


def document_html(document: ExportDocument, options: ExportOptions) -> str:
    """The page Drive converts: the title, the provenance as a table, the note."""
    parts = [f"<h1>{html.escape(document.title)}</h1>"]
    if options.include_provenance and document.provenance is not None:
        rows = []
        for label, value in document.provenance.rows():
            shown = html.escape(value)
            if label == "Link" and value.startswith(("https://", "http://")):
                shown = f'<a href="{html.escape(value)}">{shown}</a>'
            rows.append(f"<tr><th>{html.escape(label)}</th><td>{shown}</td></tr>")
        parts.append(f"<table border=1>{''.join(rows)}</table>")
    parts.append(_embed_images(render_markdown(document.markdown), document))
    body = "\n".join(parts)
    return (
        f'<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(document.title)}</title></head><body>{body}</body></html>"
    )


class GoogleDocsExporter(Exporter):
    exporter_id = "google_docs"
    name = "Google Docs"
    description = "A Google Doc in your Drive, updated when you export the note again."
    media_type = "text/html"  # a link to the document
    extension = ""
    remote = True
    connection = KIND
    Options = GoogleDocsOptions

    async def render(
        self,
        document: ExportDocument,
        options: ExportOptions,
        *,
        connection: Connection | None = None,
    ) -> ExportLink:
        if connection is None:
            raise Invalid("Connect your Google account first.", fields={"connection": KIND})
        chosen = options if isinstance(options, GoogleDocsOptions) else GoogleDocsOptions()
        drive = Drive(_settings(connection.config), connection.access_token)
        page = document_html(document, chosen)
        fields = {"uploadType": "multipart", "fields": "id,name,webViewLink"}
        try:
            made = None
            if connection.remote_id:
                try:
                    made = await drive.request(
                        "PATCH",
                        f"/upload/drive/v3/files/{connection.remote_id}",
                        params=fields,
                        body=({"name": document.title}, page),
                    )
                except DriveError as exc:
                    if exc.status != 404:  # deleted since: make a new one
                        raise
            if made is None:
                metadata: dict[str, Any] = {"name": document.title, "mimeType": DOC}
                picked = (connection.data.get("destination") or {}).get("id")
                folder = connection.parent_id or chosen.folder_id or picked
                if folder:
                    metadata["parents"] = [folder]
                made = await drive.request(
                    "POST", "/upload/drive/v3/files", params=fields, body=(metadata, page)
                )
        except DriveError as exc:
            if exc.status == 404 and chosen.folder_id:
                raise Invalid(
                    "Google Drive has no such folder that this app may use.",
                    fields={"folder_id": "not found"},
                ) from exc
            raise ProviderBadResponse(f"Google Drive refused the document: {exc.message}") from exc
        file_id = str(made.get("id") or "")
        url = str(made.get("webViewLink") or f"https://docs.google.com/document/d/{file_id}/edit")
        if not file_id:
            raise ProviderBadResponse("Google Drive did not say which document it made.")
        return ExportLink(url=url, remote_id=file_id)

    async def container(
        self,
        title: str,
        link: str | None,
        options: ExportOptions,
        *,
        connection: Connection,
    ) -> ExportLink:
        """A folder's Drive folder (its notes' documents go in it, its subfolders' folders
        too): made once, in the folder above or the chosen one, renamed when exported again."""
        chosen = options if isinstance(options, GoogleDocsOptions) else GoogleDocsOptions()
        drive = Drive(_settings(connection.config), connection.access_token)
        fields = {"fields": "id,name,webViewLink,trashed"}
        name = title or "Untitled folder"
        try:
            made = None
            if connection.remote_id:
                try:
                    made = await drive.request(
                        "PATCH",
                        f"/drive/v3/files/{connection.remote_id}",
                        params=fields,
                        metadata={"name": name},
                    )
                except DriveError as exc:
                    if exc.status != 404:  # deleted since: make a new one
                        raise
                if made is not None and made.get("trashed"):
                    made = None
            if made is None:
                metadata: dict[str, Any] = {"name": name, "mimeType": FOLDER}
                if link:
                    metadata["description"] = f"Notes of this folder in MultinotesAI: {link}"
                picked = (connection.data.get("destination") or {}).get("id")
                parent = connection.parent_id or chosen.folder_id or picked
                if parent:
                    metadata["parents"] = [parent]
                made = await drive.request(
                    "POST", "/drive/v3/files", params=fields, metadata=metadata
                )
        except DriveError as exc:
            if exc.status == 404 and chosen.folder_id:
                raise Invalid(
                    "Google Drive has no such folder that this app may use.",
                    fields={"folder_id": "not found"},
                ) from exc
            raise ProviderBadResponse(f"Google Drive refused the folder: {exc.message}") from exc
        folder_id = str(made.get("id") or "")
        if not folder_id:
            raise ProviderBadResponse("Google Drive did not say which folder it made.")
        url = str(made.get("webViewLink") or f"https://drive.google.com/drive/folders/{folder_id}")
        return ExportLink(url=url, remote_id=folder_id)


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(GoogleDocsSettings)


@hookimpl
def register_connections(register: ConnectionRegistrar) -> None:
    register(GoogleConnection())


@hookimpl
def register_exporters(register: ExporterRegistrar) -> None:
    register(GoogleDocsExporter())


@hookimpl
def register_actions(register: ActionRegistrar) -> None:
    """Export → Google Docs on a note, an answer, a prompt's comparison, a conversation and a
    folder (connecting Google first when needed)."""
    for action in export_actions(GoogleDocsExporter()):
        register(action)
