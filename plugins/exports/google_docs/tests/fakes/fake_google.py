"""A local Google: the OAuth 2.0 endpoints (consent, token) and the part of Drive v3 the Google
Docs exporter uses, speaking Google's wire format.

OAuth as Google does it for a web app: the authorize request must carry ``response_type=code``,
the ``drive.file`` scope, ``access_type=offline`` and an S256 PKCE challenge; the token endpoint
takes a form body with the client id and secret, checks the ``code_verifier`` against that
challenge, and answers refresh grants with a new access token (the refresh token stays the
same). Drive: ``GET /drive/v3/about`` and multipart uploads (``multipart/related``: JSON metadata,
then the media) to ``POST /upload/drive/v3/files`` and ``PATCH /upload/drive/v3/files/{id}``,
converting ``text/html`` to a Google Doc when the metadata asks for
``application/vnd.google-apps.document``; metadata-only JSON requests to ``POST /drive/v3/files``
(folders: ``application/vnd.google-apps.folder``) and ``PATCH /drive/v3/files/{id}`` (a rename).
Errors are Google's ``{"error": {"code", "message",
"errors": [{"reason"}], "status"}}``.

Tests steer it with ``next_failures`` (status, headers, reason), ``expire_access_tokens()`` and
``revoke_all()``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import BodyPartReader, web

DOC = "application/vnd.google-apps.document"
FOLDER = "application/vnd.google-apps.folder"
DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"


def _error(
    status: int, message: str, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    statuses = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
    }
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": statuses.get(status, "INTERNAL"),
        }
    }
    return web.json_response(body, status=status, headers=headers)


class FakeGoogle:
    def __init__(
        self,
        client_id: str = "google-client-id.apps.googleusercontent.com",
        client_secret: str = "google-client-secret",  # noqa: S107 (the fake's own)
    ) -> None:
        self.client_id, self.client_secret = client_id, client_secret
        self.email = "ann@gmail.example"
        self.codes: dict[str, dict[str, str]] = {}
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        self.uploads: list[tuple[str, str]] = []  # (method, path)
        self.next_failures: list[tuple[int, dict[str, str], str]] = []
        self.files: dict[str, dict[str, Any]] = {}
        self.folders = {"root": "My Drive", "folder-reports-0001": "Reports"}
        #: Each folder's parents (the ones this app made; the two above are at the top).
        self.folder_parents: dict[str, list[str]] = {}
        self.folder_descriptions: dict[str, str] = {}

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    def revoke_all(self) -> None:
        self.access_tokens.clear()
        self.refresh_tokens.clear()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/o/oauth2/v2/auth", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/drive/v3/about", self.about)
        app.router.add_get("/drive/v3/files", self.list_files)
        app.router.add_post("/drive/v3/files", self.create_folder)
        app.router.add_patch("/drive/v3/files/{id}", self.update_metadata)
        app.router.add_post("/upload/drive/v3/files", self.create)
        app.router.add_patch("/upload/drive/v3/files/{id}", self.update)
        return app

    # -- OAuth --------------------------------------------------------------------------------

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.authorize_requests.append(query)
        problems = [
            query.get("client_id") != self.client_id,
            query.get("response_type") != "code",
            DRIVE_FILE not in query.get("scope", "").split(),
            query.get("code_challenge_method") != "S256" or not query.get("code_challenge"),
            query.get("access_type") != "offline",
        ]
        if any(problems):
            return web.Response(status=400, text="Error 400: invalid_request")
        code = f"4/{secrets.token_urlsafe(16)}"
        self.codes[code] = {
            "redirect_uri": query.get("redirect_uri", ""),
            "challenge": query["code_challenge"],
        }
        back = urlencode({"code": code, "state": query.get("state", ""), "scope": DRIVE_FILE})
        raise web.HTTPFound(f"{query['redirect_uri']}?{back}")

    def _issue(self, refresh: str | None) -> dict[str, Any]:
        access = f"ya29.{secrets.token_urlsafe(16)}"
        self.access_tokens.add(access)
        answer: dict[str, Any] = {
            "access_token": access,
            "expires_in": 3599,
            "scope": DRIVE_FILE,
            "token_type": "Bearer",
        }
        if refresh:
            answer["refresh_token"] = refresh
        return answer

    async def token(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") == "authorization_code":
            issued = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if (
                issued is None
                or issued["redirect_uri"] != form.get("redirect_uri")
                or issued["challenge"] != challenge
            ):
                return web.json_response(
                    {"error": "invalid_grant", "error_description": "Bad Request"}, status=400
                )
            refresh = f"1//{secrets.token_urlsafe(16)}"
            self.refresh_tokens.add(refresh)
            return web.json_response(self._issue(refresh))
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return web.json_response(
                    {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    },
                    status=400,
                )
            return web.json_response(self._issue(None))
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    # -- Drive --------------------------------------------------------------------------------

    def _check(self, request: web.Request) -> web.Response | None:
        if self.next_failures:
            status, headers, reason = self.next_failures.pop(0)
            return _error(status, "Injected failure.", reason, headers)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.access_tokens:
            return _error(401, "Request had invalid authentication credentials.", "authError")
        return None

    async def about(self, request: web.Request) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        return web.json_response(
            {"user": {"displayName": "Ann", "emailAddress": self.email, "permissionId": "p1"}}
        )

    async def list_files(self, request: web.Request) -> web.StreamResponse:
        """Folders only (what the exporter asks for: ``q`` naming the folder type)."""
        refused = self._check(request)
        if refused is not None:
            return refused
        if "application/vnd.google-apps.folder" not in request.query.get("q", ""):
            return _error(400, "This fake lists folders only.", "invalidQuery")
        folders = [{"id": k, "name": v} for k, v in self.folders.items() if k != "root"]
        return web.json_response({"files": sorted(folders, key=lambda f: f["name"])})

    async def _upload(self, request: web.Request) -> tuple[dict[str, Any], str] | web.Response:
        if request.query.get("uploadType") != "multipart":
            return _error(400, "Unsupported upload type.", "badRequest")
        if not request.content_type.startswith("multipart/related"):
            return _error(400, "Expected multipart/related.", "badContent")
        reader = await request.multipart()
        metadata_part = await reader.next()
        if not isinstance(metadata_part, BodyPartReader):
            return _error(400, "Expected metadata and media.", "badContent")
        metadata = json.loads(await metadata_part.text())
        media_part = await reader.next()
        if not isinstance(media_part, BodyPartReader):
            return _error(400, "Expected metadata and media.", "badContent")
        media_type = media_part.headers.get("Content-Type", "")
        media = await media_part.text()
        if not media_type.startswith("text/html"):
            return _error(400, f"Cannot convert {media_type}.", "badContent")
        return metadata, media

    def _file_out(self, file_id: str) -> dict[str, Any]:
        found = self.files[file_id]
        return {
            "kind": "drive#file",
            "id": file_id,
            "name": found["name"],
            "mimeType": DOC,
            "webViewLink": f"https://docs.google.com/document/d/{file_id}/edit?usp=drivesdk",
        }

    async def create(self, request: web.Request) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        uploaded = await self._upload(request)
        if isinstance(uploaded, web.Response):
            return uploaded
        metadata, html = uploaded
        if metadata.get("mimeType") != DOC:
            return _error(400, "This fake converts to Google Docs only.", "badContent")
        for parent in metadata.get("parents") or []:
            if parent not in self.folders:
                return _error(404, f"File not found: {parent}.", "notFound")
        file_id = f"doc{secrets.token_hex(8)}"
        self.files[file_id] = {
            "name": metadata.get("name", "Untitled"),
            "html": html,
            "parents": metadata.get("parents") or [],
            "versions": 1,
        }
        self.uploads.append(("POST", request.path))
        return web.json_response(self._file_out(file_id))

    async def update(self, request: web.Request) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        file_id = request.match_info["id"]
        if file_id not in self.files or self.files[file_id].get("trashed"):
            return _error(404, f"File not found: {file_id}.", "notFound")
        uploaded = await self._upload(request)
        if isinstance(uploaded, web.Response):
            return uploaded
        metadata, html = uploaded
        found = self.files[file_id]
        found["html"] = html
        found["name"] = metadata.get("name", found["name"])
        found["versions"] += 1
        self.uploads.append(("PATCH", request.path))
        return web.json_response(self._file_out(file_id))

    # -- metadata only (folders) --------------------------------------------------------------

    async def create_folder(self, request: web.Request) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        if not request.content_type.startswith("application/json"):
            return _error(400, "Expected JSON metadata.", "badContent")
        metadata = await request.json()
        if metadata.get("mimeType") != FOLDER:
            return _error(400, "This fake makes folders only without media.", "badContent")
        if not str(metadata.get("name") or "").strip():
            return _error(400, "A folder needs a name.", "required")
        parents = metadata.get("parents") or []
        for parent in parents:
            if parent not in self.folders:
                return _error(404, f"File not found: {parent}.", "notFound")
        folder_id = f"folder{secrets.token_hex(8)}"
        self.folders[folder_id] = str(metadata["name"])
        self.folder_parents[folder_id] = list(parents)
        self.folder_descriptions[folder_id] = str(metadata.get("description") or "")
        self.uploads.append(("POST", request.path))
        return web.json_response(self._folder_out(folder_id))

    def _folder_out(self, folder_id: str) -> dict[str, Any]:
        return {
            "kind": "drive#file",
            "id": folder_id,
            "name": self.folders[folder_id],
            "mimeType": FOLDER,
            "trashed": False,
            "webViewLink": f"https://drive.google.com/drive/folders/{folder_id}",
        }

    async def update_metadata(self, request: web.Request) -> web.StreamResponse:
        refused = self._check(request)
        if refused is not None:
            return refused
        file_id = request.match_info["id"]
        metadata = await request.json()
        if file_id in self.folders and file_id != "root":
            if "name" in metadata:
                self.folders[file_id] = str(metadata["name"])
            self.uploads.append(("PATCH", request.path))
            return web.json_response(self._folder_out(file_id))
        if file_id not in self.files or self.files[file_id].get("trashed"):
            return _error(404, f"File not found: {file_id}.", "notFound")
        if "name" in metadata:
            self.files[file_id]["name"] = str(metadata["name"])
        return web.json_response(self._file_out(file_id))
