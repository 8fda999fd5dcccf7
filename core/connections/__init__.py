"""Connected accounts: a user's account at an outside service (Notion, Google, ...) that plugins
act on for them, connected through OAuth 2.0's authorization-code flow.

A plugin describes the service with a ``ConnectionKind`` (``register_connections``): where its
authorize and token endpoints are (from the plugin's settings: client id, secret, API base),
whether it takes PKCE, how the client authenticates at the token endpoint, and how to name the
account that was connected. The core runs the flow (state bound to the browser's session, PKCE,
one use, ten minutes), stores the tokens encrypted (``multinotes.secretbox``), refreshes an
expired access token with the refresh token, and shows, lists and disconnects the accounts on
``/account`` and under ``/api/connections``. Tokens never leave the server.

A plugin that needs an account says so: an ``Exporter`` with ``connection = "<kind id>"`` gets a
``Connection`` (a fresh access token and the account's data) when it runs, and raises
``ConnectionRejected`` when the service refuses the token; the core then refreshes once and tries
again, or marks the connection as needing to be reconnected and tells the user.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from multinotes.errors import Conflict


@dataclass(frozen=True)
class OAuthEndpoints:
    """Where to send the browser and where to exchange the code, and the client's credentials
    (from the plugin's settings). ``client_secret`` may be empty for a public PKCE client."""

    authorize_url: str
    token_url: str
    client_id: str
    client_secret: str = ""


@dataclass(frozen=True)
class ConnectedAccount:
    """Who was connected: the service's id of the account (or workspace), a name to show, and
    whatever the plugin wants to keep with it (a workspace id, a default parent page...)."""

    account_id: str
    name: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Connection:
    """What a plugin gets when it acts for a user: a current access token, the account, the
    plugin's settings (``config``) and, for an export, the remote id of what an earlier export
    of the same thing created (``remote_id``: update it rather than make another) and, in a
    folder's export, the remote id of the place made for that folder (``parent_id``: a Notion
    page, a Drive folder), where a new page goes instead of the default destination."""

    kind: str
    access_token: str
    account_id: str
    account_name: str
    data: dict[str, Any]
    config: Any = None
    remote_id: str | None = None
    parent_id: str | None = None


@dataclass(frozen=True)
class Destination:
    """A place at the service where a plugin may put things (a Notion page, a Drive folder),
    as the user picks it on ``/account``: the service's id and a name to show."""

    id: str
    name: str


class ConnectionKind(ABC):
    """An outside service users connect to, registered by ``register_connections``.

    Declare ``kind_id`` (unique; also the ``connection`` an exporter names), ``name`` (shown:
    "Notion"), ``scopes``, ``pkce`` (send an S256 code challenge), ``token_auth`` (``"basic"``:
    client id and secret as HTTP Basic, like Notion; ``"body"``: in the form, like Google),
    ``token_format`` (``"form"`` or ``"json"`` request body) and ``authorize_params`` (more query
    parameters, e.g. ``access_type=offline``). Implement ``endpoints(config)`` (sync: from the
    plugin's settings; raise ``ConnectionUnavailable`` when they are missing) and ``async
    account(tokens, config)`` (the token response as the service sent it; may call the service
    with ``tokens["access_token"]``)."""

    kind_id: ClassVar[str]
    name: ClassVar[str]
    scopes: ClassVar[tuple[str, ...]] = ()
    pkce: ClassVar[bool] = True
    token_auth: ClassVar[Literal["basic", "body"]] = "body"
    token_format: ClassVar[Literal["form", "json"]] = "form"
    authorize_params: ClassVar[dict[str, str]] = {}
    #: The separator of scopes in the authorize URL (space per RFC 6749).
    scope_separator: ClassVar[str] = " "
    #: What a ``Destination`` is called ("Parent page", "Folder"); None: nothing to pick, and
    #: ``destinations`` is never called. The chosen one is ``Connection.data["destination"]``
    #: (``{"id", "name"}``).
    destination_label: ClassVar[str | None] = None
    #: What to call a token the user may paste instead of going through OAuth (Notion's
    #: "Internal integration secret"); None: OAuth only. A pasted token has no refresh token:
    #: when the service refuses it, the user pastes a new one.
    pasted_token_label: ClassVar[str | None] = None

    @property
    def id(self) -> str:
        return self.kind_id

    @abstractmethod
    def endpoints(self, config: Any) -> OAuthEndpoints:
        """The service's authorize and token URLs and the client's id and secret, from the
        plugin's settings ``config``; raise ``ConnectionUnavailable`` when they are missing."""

    @abstractmethod
    async def account(self, tokens: dict[str, Any], config: Any) -> ConnectedAccount:
        """Who was connected. ``tokens`` is the token endpoint's answer, or only
        ``{"access_token"}`` for a pasted token. Raise ``ConnectionRejected`` when the
        service refuses the token."""

    async def destinations(self, connection: Connection) -> list[Destination]:
        """Where the user may have things put (at most a few hundred, best first), when
        ``destination_label`` is set. Raise ``ConnectionRejected`` for a refused token."""
        return []


class ConnectionRejected(Exception):
    """Raised by a plugin when the service refused the access token (401, revoked, expired).
    The core refreshes the token and calls again once; if that fails too, the user is asked to
    reconnect."""


class ConnectionUnavailable(Conflict):
    """The service cannot be connected now (the admin has not configured the plugin)."""

    code = "connection_unavailable"
    default_message = "This service is not set up on this server yet. Ask an administrator."


class NotConnected(Conflict):
    """The user has not connected an account of the kind this needs."""

    code = "not_connected"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"Connect your {name} account first (Account → Connected accounts).",
            fields={"connection": kind},
        )
        self.kind = kind


class ReconnectRequired(Conflict):
    """The service no longer accepts the stored tokens (revoked, or the refresh failed)."""

    code = "reconnect_required"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"{name} no longer accepts this connection (it was revoked or expired). "
            f"Reconnect your {name} account and try again.",
            fields={"connection": kind},
        )
        self.kind = kind


__all__ = [
    "ConnectedAccount",
    "Connection",
    "ConnectionKind",
    "ConnectionRejected",
    "ConnectionUnavailable",
    "Destination",
    "NotConnected",
    "OAuthEndpoints",
    "ReconnectRequired",
]
