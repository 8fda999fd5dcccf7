"""Connecting, using, refreshing and disconnecting accounts at outside services.

The flow: ``begin`` stores a flow (the SHA-256 of a random ``state``, the session that asked,
a PKCE verifier) and returns the service's authorize URL; the browser comes back to the callback
with ``code`` and ``state``; ``finish`` takes the flow once (same user, same session, in time),
exchanges the code at the token endpoint, asks the plugin who was connected, and stores the
tokens encrypted. No database session is open during a call to the service.

``connection_for`` gives a plugin a current access token: one that expires within a minute is
refreshed first (``refresh_token`` grant); a refresh the service refuses marks the connection
``revoked`` and the user is asked to reconnect.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web
from sqlalchemy import delete, select, update

from multinotes import outgoing
from multinotes.connections import (
    Connection,
    ConnectionKind,
    ConnectionRejected,
    ConnectionUnavailable,
    Destination,
    NotConnected,
    ReconnectRequired,
)
from multinotes.connections.models import ConnectedAccountRow, ConnectionFlow
from multinotes.db import Database, rows_affected, utcnow
from multinotes.errors import Invalid, NotFound, ProviderUnavailable
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS, SECRETS

log = structlog.get_logger(__name__)

FLOW_TTL = timedelta(minutes=10)
#: A token this close to its expiry is refreshed before use.
REFRESH_MARGIN = timedelta(seconds=60)
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=20, connect=5)
T = TypeVar("T")


# -- the registered kinds -----------------------------------------------------------------------


def enabled_kinds(app: web.Application) -> dict[str, tuple[str, ConnectionKind]]:
    """``{kind id: (plugin, kind)}`` of the enabled plugins, right now."""
    return {k: (r.plugin, r.obj) for k, r in app[PLUGINS].registries.connections.items()}


def kind_of(app: web.Application, kind_id: str) -> tuple[str, ConnectionKind]:
    found = enabled_kinds(app).get(kind_id)
    if found is None:
        raise NotFound("No such service to connect.")
    return found


async def config_of(app: web.Application, plugin: str) -> Any:
    """The plugin's settings (secrets decrypted), or None when it declares none."""
    return await app[PLUGIN_SETTINGS].config(plugin)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


# -- the flow -----------------------------------------------------------------------------------


async def begin(
    app: web.Application,
    *,
    user_id: str,
    session_id: str,
    kind_id: str,
    redirect_uri: str,
    next_url: str,
) -> str:
    """Start connecting ``kind_id`` for this user in this session; the authorize URL."""
    plugin, kind = kind_of(app, kind_id)
    endpoints = kind.endpoints(await config_of(app, plugin))
    if not endpoints.client_id:
        raise ConnectionUnavailable()
    state = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48)  # 64 characters of the unreserved set (RFC 7636)
    params = {
        "client_id": endpoints.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "state": state,
        **kind.authorize_params,
    }
    if kind.scopes:
        params["scope"] = kind.scope_separator.join(kind.scopes)
    if kind.pkce:
        params["code_challenge"] = pkce_challenge(verifier)
        params["code_challenge_method"] = "S256"
    now = utcnow()
    async with app[DB].transaction() as session:
        # Abandoned flows are swept as new ones start.
        await session.execute(delete(ConnectionFlow).where(ConnectionFlow.expires_at < now))
        session.add(
            ConnectionFlow(
                state_hash=_sha256(state),
                session_hash=_sha256(session_id),
                user_id=user_id,
                kind=kind_id,
                code_verifier=verifier,
                redirect_uri=redirect_uri,
                next_url=next_url[:500],
                created_at=now,
                expires_at=now + FLOW_TTL,
            )
        )
    separator = "&" if "?" in endpoints.authorize_url else "?"
    return f"{endpoints.authorize_url}{separator}{urlencode(params)}"


class FlowFailed(Invalid):
    """The callback cannot complete the connection; the message says why."""

    code = "connection_failed"


async def _take_flow(
    db: Database, *, user_id: str, session_id: str, kind_id: str, state: str
) -> ConnectionFlow:
    if not state or len(state) > 200:
        raise FlowFailed("This link is missing its state. Start connecting again.")
    async with db.transaction() as session:
        flow = await session.scalar(
            select(ConnectionFlow).where(ConnectionFlow.state_hash == _sha256(state))
        )
        if (
            flow is None
            or flow.user_id != user_id
            or flow.session_hash != _sha256(session_id)
            or flow.kind != kind_id
        ):
            # Someone else's state, or another browser's: leave their flow alone.
            log.info("connection_state_rejected", kind=kind_id)
            raise FlowFailed(
                "This connection link is invalid, was already used, or was started in another "
                "browser. Start connecting again."
            )
        taken = await session.execute(delete(ConnectionFlow).where(ConnectionFlow.id == flow.id))
        if rows_affected(taken) != 1:
            raise FlowFailed("This connection link was already used. Start connecting again.")
    if flow.expires_at < utcnow():
        raise FlowFailed("This connection link expired. Start connecting again.")
    return flow


class TokenRefused(Exception):
    """The token endpoint refused the grant (``invalid_grant``, a bad client...)."""


async def token_request(kind: ConnectionKind, config: Any, grant: dict[str, str]) -> dict[str, Any]:
    """POST a grant to the service's token endpoint; its JSON answer (with ``access_token``)."""
    endpoints = kind.endpoints(config)
    body = dict(grant)
    headers = {"Accept": "application/json"}
    if kind.token_auth == "basic":
        pair = f"{endpoints.client_id}:{endpoints.client_secret}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(pair).decode('ascii')}"
    else:
        body["client_id"] = endpoints.client_id
        if endpoints.client_secret:
            body["client_secret"] = endpoints.client_secret
    payload: dict[str, Any] = {"json": body} if kind.token_format == "json" else {"data": body}
    try:
        async with (
            aiohttp.ClientSession(connector=outgoing.connector(), timeout=HTTP_TIMEOUT) as http,
            http.post(
                endpoints.token_url,
                headers=headers,
                **payload,
                **outgoing.AIOHTTP_REQUEST_ARGS,
            ) as response,
        ):
            text = await response.text()
            status = response.status
    except outgoing.OutgoingRefused:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ProviderUnavailable(f"{kind.name} could not be reached. Try again.") from exc
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if status in (400, 401, 403):
        error = answer.get("error") if isinstance(answer, dict) else None
        log.info("connection_token_refused", kind=kind.kind_id, status=status, error=error)
        raise TokenRefused(str(error or status))
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        raise ProviderUnavailable(f"{kind.name} did not issue a token. Try again.")
    return answer


def _expiry(answer: dict[str, Any]) -> Any:
    seconds = answer.get("expires_in")
    if isinstance(seconds, int | float) and seconds > 0:
        return utcnow() + timedelta(seconds=float(seconds))
    return None


async def finish(
    app: web.Application,
    *,
    user_id: str,
    session_id: str,
    kind_id: str,
    state: str,
    code: str,
    error: str = "",
) -> tuple[ConnectedAccountRow, str]:
    """Complete a flow from its callback; the stored connection and where to go next."""
    plugin, kind = kind_of(app, kind_id)
    flow = await _take_flow(
        app[DB], user_id=user_id, session_id=session_id, kind_id=kind_id, state=state
    )
    if error:
        # The person said no at the service (access_denied), or it refused the request.
        raise FlowFailed(f"{kind.name} was not connected ({error[:100]}).")
    if not code or len(code) > 2000:
        raise FlowFailed(f"{kind.name} sent no authorization code. Start connecting again.")
    config = await config_of(app, plugin)
    grant = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow.redirect_uri,
    }
    if kind.pkce:
        grant["code_verifier"] = flow.code_verifier
    try:
        answer = await token_request(kind, config, grant)
    except TokenRefused:
        raise FlowFailed(
            f"{kind.name} refused the authorization. Start connecting again."
        ) from None
    try:
        account = await kind.account(answer, config)
    except ConnectionRejected:
        raise FlowFailed(f"{kind.name} refused the new connection. Try again.") from None
    row = await _store(app, user_id=user_id, kind_id=kind_id, account=account, answer=answer)
    return row, flow.next_url


async def _store(
    app: web.Application,
    *,
    user_id: str,
    kind_id: str,
    account: Any,
    answer: dict[str, Any],
) -> ConnectedAccountRow:
    """Create or replace the user's connection of ``kind_id`` with these tokens."""
    box = app[SECRETS]
    now = utcnow()
    refresh = answer.get("refresh_token")
    scopes = answer.get("scope")
    _, kind = kind_of(app, kind_id)
    values = {
        "account_id": str(account.account_id)[:255],
        "account_name": str(account.name)[:255] or kind.name,
        "access_token": box.encrypt(str(answer["access_token"])),
        "refresh_token": box.encrypt(str(refresh)) if refresh else None,
        "expires_at": _expiry(answer),
        "scopes": str(scopes)[:1000] if isinstance(scopes, str) else "",
        "data": account.data,
        "status": "active",
        "updated_at": now,
    }
    async with app[DB].transaction() as session:
        row = await session.scalar(
            select(ConnectedAccountRow).where(
                ConnectedAccountRow.user_id == user_id, ConnectedAccountRow.kind == kind_id
            )
        )
        if row is None:
            row = ConnectedAccountRow(user_id=user_id, kind=kind_id, created_at=now, **values)
            session.add(row)
        else:
            if row.account_id != values["account_id"]:
                # Another account now: what the old one's exports made is not reachable.
                from multinotes.connections.models import RemoteExport

                await session.execute(
                    delete(RemoteExport).where(RemoteExport.connection_id == row.id)
                )
            for name, value in values.items():
                setattr(row, name, value)
    log.info("connection_connected", kind=kind_id, user_id=user_id)
    return row


async def connect_with_token(
    app: web.Application, *, user_id: str, kind_id: str, token: str
) -> ConnectedAccountRow:
    """Connect with a token the user pasted (an internal integration's secret), for kinds
    that take one; the service is asked who it is first, so a wrong token connects nothing."""
    plugin, kind = kind_of(app, kind_id)
    if kind.pasted_token_label is None:
        raise Invalid(
            f"{kind.name} is connected through its own sign-in, not with a pasted token.",
            fields={"kind": "takes no pasted token"},
        )
    token = token.strip()
    # A token goes into an Authorization header: printable ASCII without spaces only.
    if (
        not token
        or len(token) > 2000
        or not (token.isascii() and token.isprintable())
        or (" " in token)
    ):
        raise Invalid(fields={"access_token": f"Paste the {kind.pasted_token_label}."})
    answer = {"access_token": token}
    try:
        account = await kind.account(answer, await config_of(app, plugin))
    except ConnectionRejected:
        raise Invalid(
            f"{kind.name} does not accept this token.",
            fields={"access_token": "refused by the service"},
        ) from None
    return await _store(app, user_id=user_id, kind_id=kind_id, account=account, answer=answer)


# -- using a connection -------------------------------------------------------------------------


@dataclass(frozen=True)
class Usable:
    """A connection ready for a plugin, with the row id (for ``remote_exports``)."""

    id: str
    connection: Connection
    refreshable: bool


async def _row(db: Database, user_id: str, kind_id: str) -> ConnectedAccountRow | None:
    async with db.read() as session:
        return await session.scalar(
            select(ConnectedAccountRow).where(
                ConnectedAccountRow.user_id == user_id, ConnectedAccountRow.kind == kind_id
            )
        )


async def mark_revoked(db: Database, connection_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(ConnectedAccountRow)
            .where(ConnectedAccountRow.id == connection_id)
            .values(status="revoked", updated_at=utcnow())
        )


async def refresh(app: web.Application, user_id: str, kind_id: str) -> None:
    """Trade the refresh token for a new access token. A refusal marks the connection revoked
    and raises ``ReconnectRequired``; no refresh token at all is the same."""
    plugin, kind = kind_of(app, kind_id)
    row = await _row(app[DB], user_id, kind_id)
    if row is None:
        raise NotConnected(kind_id, kind.name)
    box = app[SECRETS]
    if not row.refresh_token:
        await mark_revoked(app[DB], row.id)
        raise ReconnectRequired(kind_id, kind.name)
    grant = {"grant_type": "refresh_token", "refresh_token": box.decrypt(row.refresh_token)}
    try:
        answer = await token_request(kind, await config_of(app, plugin), grant)
    except TokenRefused:
        await mark_revoked(app[DB], row.id)
        raise ReconnectRequired(kind_id, kind.name) from None
    values: dict[str, Any] = {
        "access_token": box.encrypt(str(answer["access_token"])),
        "expires_at": _expiry(answer),
        "status": "active",
        "updated_at": utcnow(),
    }
    if answer.get("refresh_token"):  # some services rotate it
        values["refresh_token"] = box.encrypt(str(answer["refresh_token"]))
    async with app[DB].transaction() as session:
        await session.execute(
            update(ConnectedAccountRow).where(ConnectedAccountRow.id == row.id).values(**values)
        )
    log.info("connection_refreshed", kind=kind_id, user_id=user_id)


async def connection_for(app: web.Application, user_id: str, kind_id: str) -> Usable:
    """The user's connection of ``kind_id`` with a current access token (refreshed first when
    it expires within a minute). ``NotConnected`` or ``ReconnectRequired`` otherwise."""
    plugin, kind = kind_of(app, kind_id)
    row = await _row(app[DB], user_id, kind_id)
    if row is None:
        raise NotConnected(kind_id, kind.name)
    if row.status != "active":
        raise ReconnectRequired(kind_id, kind.name)
    if row.expires_at is not None and row.expires_at - REFRESH_MARGIN <= utcnow():
        await refresh(app, user_id, kind_id)
        row = await _row(app[DB], user_id, kind_id)
        if row is None:
            raise NotConnected(kind_id, kind.name)
    return Usable(
        id=row.id,
        connection=Connection(
            kind=kind_id,
            access_token=app[SECRETS].decrypt(row.access_token),
            account_id=row.account_id,
            account_name=row.account_name,
            data=dict(row.data or {}),
            config=await config_of(app, plugin),
        ),
        refreshable=bool(row.refresh_token),
    )


async def with_connection(
    app: web.Application, user_id: str, kind_id: str, act: Callable[[Usable], Awaitable[T]]
) -> T:
    """Run ``act`` with the user's connection of ``kind_id``. When the service refuses the
    token (``ConnectionRejected``), refresh it and run ``act`` once more; refused again (or
    nothing to refresh with), the connection is marked revoked: ``ReconnectRequired``."""
    usable = await connection_for(app, user_id, kind_id)
    try:
        return await act(usable)
    except ConnectionRejected:
        log.info("connection_token_rejected", kind=kind_id, user_id=user_id)
    _, kind = kind_of(app, kind_id)
    if not usable.refreshable:
        await mark_revoked(app[DB], usable.id)
        raise ReconnectRequired(kind_id, kind.name)
    await refresh(app, user_id, kind_id)  # ReconnectRequired when the service refuses it
    usable = await connection_for(app, user_id, kind_id)
    try:
        return await act(usable)
    except ConnectionRejected:
        await mark_revoked(app[DB], usable.id)
        raise ReconnectRequired(kind_id, kind.name) from None


# -- destinations -------------------------------------------------------------------------------


async def owned(db: Database, user_id: str, connection_id: str) -> ConnectedAccountRow:
    """One of the user's connections; someone else's is as unknown as a made-up id."""
    async with db.read() as session:
        row = await session.scalar(
            select(ConnectedAccountRow).where(
                ConnectedAccountRow.id == connection_id, ConnectedAccountRow.user_id == user_id
            )
        )
    if row is None:
        raise NotFound("No such connection.")
    return row


async def destinations_of(
    app: web.Application, user_id: str, connection_id: str
) -> tuple[ConnectedAccountRow, ConnectionKind, list[Destination]]:
    """Where the connection's plugin may put things, as the service lists them now."""
    row = await owned(app[DB], user_id, connection_id)
    _, kind = kind_of(app, row.kind)
    if kind.destination_label is None:
        raise NotFound(f"There is nothing to choose for {kind.name}.")

    async def listed(usable: Usable) -> list[Destination]:
        return await kind.destinations(usable.connection)

    return row, kind, await with_connection(app, user_id, row.kind, listed)


async def choose_destination(
    app: web.Application, user_id: str, connection_id: str, destination_id: str
) -> ConnectedAccountRow:
    """Remember one of the listed destinations as where the plugin puts things by default."""
    row, kind, found = await destinations_of(app, user_id, connection_id)
    chosen = next((d for d in found if d.id == destination_id), None)
    if chosen is None:
        raise Invalid(
            f"Choose one of the places {kind.name} lists for this account.",
            fields={"destination_id": "not one of this connection's destinations"},
        )
    data = {**(row.data or {}), "destination": {"id": chosen.id, "name": chosen.name}}
    async with app[DB].transaction() as session:
        await session.execute(
            update(ConnectedAccountRow)
            .where(ConnectedAccountRow.id == row.id)
            .values(data=data, updated_at=utcnow())
        )
    row.data = data
    return row


# -- listing and disconnecting ------------------------------------------------------------------


async def list_connections(db: Database, user_id: str) -> list[ConnectedAccountRow]:
    async with db.read() as session:
        rows = await session.scalars(
            select(ConnectedAccountRow)
            .where(ConnectedAccountRow.user_id == user_id)
            .order_by(ConnectedAccountRow.kind)
        )
        return list(rows)


async def disconnect(db: Database, user_id: str, connection_id: str) -> ConnectedAccountRow:
    """Forget one of the user's connections (its tokens, and what its exports made); someone
    else's is as unknown as a made-up id."""
    async with db.transaction() as session:
        row = await session.scalar(
            select(ConnectedAccountRow).where(
                ConnectedAccountRow.id == connection_id, ConnectedAccountRow.user_id == user_id
            )
        )
        if row is None:
            raise NotFound("No such connection.")
        await session.delete(row)
    log.info("connection_disconnected", kind=row.kind, user_id=user_id)
    return row


@dataclass(frozen=True)
class Listed:
    """One line of the account page: a service, and the user's connection to it (if any)."""

    kind_id: str
    name: str
    row: ConnectedAccountRow | None
    enabled: bool
    destination_label: str | None = None
    pasted_token_label: str | None = None

    @property
    def destination(self) -> str | None:
        """The name of the chosen destination, if any."""
        chosen = ((self.row.data or {}) if self.row else {}).get("destination") or {}
        name = chosen.get("name") if isinstance(chosen, dict) else None
        return str(name) if name else None


async def overview(app: web.Application, user_id: str) -> list[Listed]:
    """Every service that can be connected now, and every connection the user has (also of a
    plugin switched off since, so it can still be disconnected)."""
    kinds = enabled_kinds(app)
    rows = {row.kind: row for row in await list_connections(app[DB], user_id)}
    listed = [
        Listed(
            kind_id,
            kind.name,
            rows.get(kind_id),
            True,
            kind.destination_label,
            kind.pasted_token_label,
        )
        for kind_id, (_, kind) in sorted(kinds.items(), key=lambda item: item[1][1].name)
    ]
    listed += [Listed(k, k, row, False) for k, row in sorted(rows.items()) if k not in kinds]
    return listed
