"""The policy of every outgoing HTTP request (providers' SDK clients, sign-in providers, S3,
webhooks and other integrations): redirects are never followed, and every connection goes only
to an address the operator allows.

Redirects: a redirect names a new target the server chose, not the operator: an upstream (or
anyone who can answer in its place) could send a request that carries a provider key, a signed
S3 request or an OAuth code to another port, host or an internal address. Following one would
need the target checked like the original; refusing them all is simpler and stricter, and no
API we call needs one. A refused redirect surfaces as the 3xx answer itself, which each caller
reports as a clear error (``redirect_error`` for providers).

Addresses: a base URL an admin typed, a webhook URL a user typed, or a public host name whose
DNS answer changes between check and connect (DNS rebinding) must not reach the machine's own
services or the cloud metadata endpoint. So the check runs where the connection is made, on
every address the name resolved to, on every attempt: ``guard_httpx_client`` puts it into an
httpx client's connection pool (the openai, together and any httpx-based SDK), ``connector``
builds an aiohttp connector that applies it (sign-in, S3, google-genai, webhooks), and
``client_session`` a session with it that refuses redirects whoever makes the request. A refused
connection raises ``OutgoingRefused``, a ``ProviderError`` (502) whose message names the address
and the ``MULTINOTES_OUTGOING_ALLOW`` setting.

Refused unless allowed: loopback, private (RFC 1918, unique local), shared (CGNAT 100.64/10),
link-local (with the metadata addresses 169.254.169.254 and fd00:ec2::254), multicast,
unspecified and every other non-global range, also written as an IPv4-mapped IPv6 address or a
decimal/octal IPv4 form (those are checked after resolution, so they are the same address).
``MULTINOTES_OUTGOING_ALLOW`` (also read as ``MULTINOTES_OUTBOUND_ALLOW``) lists CIDRs and host
names that are allowed anyway;
``MULTINOTES_OUTGOING_ALLOW_PRIVATE`` (default: on in embedded mode, off in production) allows
loopback, private and shared addresses, never link-local, multicast or unspecified ones.

The policy is process-wide: SDK clients are built deep inside provider plugins, and a process
serves one app. ``create_app`` installs the one its settings describe; until then the strict
default applies.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from aiohttp.abc import ResolveResult

from multinotes.errors import ProviderError

#: For httpx-based clients (``openai.DefaultAsyncHttpxClient``, ``together``'s, ``httpx``);
#: pass the client to ``guard_httpx_client`` too.
HTTPX_CLIENT_ARGS: Final[dict[str, Any]] = {"follow_redirects": False}
#: For each aiohttp request (``session.request(..., **AIOHTTP_REQUEST_ARGS)``), and for
#: google-genai's ``HttpOptions.async_client_args`` (passed to aiohttp per request).
AIOHTTP_REQUEST_ARGS: Final[dict[str, Any]] = {"allow_redirects": False}

SETTING: Final = "MULTINOTES_OUTGOING_ALLOW"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_SHARED: Final = ipaddress.ip_network("100.64.0.0/10")
#: What ``allow_private`` allows: a machine's own and its LAN's services.
_PRIVATE_KINDS: Final = frozenset({"loopback", "private", "shared (CGNAT)"})


def is_redirect(status: int | None) -> bool:
    return status is not None and 300 <= status < 400


def redirect_error(provider: str, status: int) -> ProviderError:
    """The error for a provider that answered with a redirect (which was not followed)."""
    return ProviderError(
        f"{provider} answered with a redirect (HTTP {status}), which is not followed. "
        "Check the provider's base URL in the Plugins console.",
        code="provider_redirect",
    )


class OutgoingRefused(ProviderError):
    """A connection to an address the outgoing policy does not allow was not made."""

    code = "outgoing_refused"

    def __init__(self, host: str, address: str, kind: str) -> None:
        super().__init__(
            f"Refused to connect to {host} ({address}, a {kind} address): outgoing requests "
            f"to internal addresses are blocked. If this server is meant to be reached, an "
            f"operator can allow it with the {SETTING} setting (a CIDR such as "
            f"{address}/32 or the host name {host})."
        )
        self.host = host
        self.address = address
        self.kind = kind


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_kind(address: IPAddress) -> str | None:
    """Why ``address`` is internal ("loopback", "metadata", ...), or None for a public one."""
    address = _unmapped(address)
    if address in _METADATA:
        return "cloud metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "shared (CGNAT)"
    if address.is_private:
        return "private"
    if not address.is_global or address.is_reserved:
        return "reserved"
    return None


def _host_key(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class OutgoingPolicy:
    """Which addresses outgoing connections may reach (see the module docstring)."""

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_hosts: frozenset[str] = field(default_factory=frozenset)
    allow_private: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str], *, allow_private: bool = False) -> OutgoingPolicy:
        """From ``MULTINOTES_OUTGOING_ALLOW`` entries: CIDRs / addresses, or host names."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                name = _host_key(entry)
                if not name or any(c in name for c in "/: @") or name.startswith("*"):
                    raise ValueError(f"not a CIDR or a host name: {entry!r}") from None
                hosts.add(name)
        return cls(tuple(networks), frozenset(hosts), allow_private)

    @classmethod
    def from_settings(cls, settings: Any) -> OutgoingPolicy:
        allow_private = settings.outgoing_allow_private
        if allow_private is None:
            allow_private = not settings.is_production
        return cls.parse(settings.outgoing_allow, allow_private=allow_private)

    def refusal(self, host: str, address: str) -> OutgoingRefused | None:
        """The error for connecting to ``address`` (what ``host`` resolved to), or None."""
        if _host_key(host) in self.allow_hosts:
            return None
        ip = _unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
        kind = address_kind(ip)
        if kind is None:
            return None
        if any(ip.version == net.version and ip in net for net in self.allow_networks):
            return None
        if self.allow_private and kind in _PRIVATE_KINDS:
            return None
        return OutgoingRefused(host, str(ip), kind)

    def allowed(self, host: str, addresses: Sequence[str]) -> list[str]:
        """The ``addresses`` ``host`` may be reached at; raises when there is none."""
        kept = [a for a in addresses if self.refusal(host, a) is None]
        if not kept and addresses:
            refusal = self.refusal(host, addresses[0])
            assert refusal is not None
            raise refusal
        return kept


_current: OutgoingPolicy = OutgoingPolicy()


def install(policy: OutgoingPolicy) -> None:
    """Make ``policy`` the one every guarded client checks against from now on."""
    global _current
    _current = policy


def policy() -> OutgoingPolicy:
    return _current


def refusal_in(exc: BaseException | None) -> OutgoingRefused | None:
    """The ``OutgoingRefused`` behind ``exc`` (SDKs wrap what their transport raised)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OutgoingRefused):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (an IP literal in any form resolves to itself)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# -- httpx / httpcore ---------------------------------------------------------------------------


class _GuardedBackend:
    """An httpcore network backend that resolves, checks and then connects to the checked
    address itself (TLS still verifies and sends the original host name)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        addresses = _current.allowed(host, await resolve(host, port))
        error: BaseException | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, *args, **kwargs)
            except Exception as exc:  # try the next address, like a resolver-aware connect
                error = exc
        assert error is not None
        raise error

    def __getattr__(self, name: str) -> Any:  # connect_unix_socket, sleep
        return getattr(self._inner, name)


def guard_httpx_client(client: Any) -> Any:
    """Apply the policy to every connection ``client`` (httpx or httpx2) makes; returns it."""
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise TypeError(f"cannot guard {type(transport).__name__}: no connection pool")
        if not isinstance(pool._network_backend, _GuardedBackend):
            pool._network_backend = _GuardedBackend(pool._network_backend)
    return client


# -- aiohttp ------------------------------------------------------------------------------------


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that only connects to addresses the policy allows. aiohttp answers IP
    literals without its resolver, so the check sits after resolution, not in a resolver."""

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        kept = set(_current.allowed(host, [r["host"] for r in results]))
        return [r for r in results if r["host"] in kept]


def connector(**kwargs: Any) -> aiohttp.TCPConnector:
    """The connector every aiohttp ``ClientSession`` for outgoing requests must use."""
    return GuardedConnector(**kwargs)


class RedirectRefused(ProviderError):
    """An answer redirected elsewhere, and the redirect was not followed."""

    code = "outgoing_redirect"

    def __init__(self, status: int, location: str) -> None:
        super().__init__(
            f"The remote service answered with a redirect (HTTP {status}) to "
            f"{location[:200] or 'nowhere'}, which is not followed."
        )
        self.redirect_status = status
        self.location = location


async def _refuse_redirect(
    _session: aiohttp.ClientSession, _context: Any, params: aiohttp.TraceRequestRedirectParams
) -> None:
    response = params.response
    location = response.headers.get("Location", "")
    response.close()
    raise RedirectRefused(response.status, location)


def client_session(**kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp ``ClientSession`` for outgoing requests: the guarded connector, and no
    redirect followed even by code that does not pass ``AIOHTTP_REQUEST_ARGS`` (an SDK given
    the session, such as slack-sdk's clients): such a request raises ``RedirectRefused``
    instead of sending anything to the new target. ``kwargs`` go to ``ClientSession``."""
    refuse = aiohttp.TraceConfig()
    refuse.on_request_redirect.append(_refuse_redirect)
    kwargs.setdefault("connector", connector())
    return aiohttp.ClientSession(trace_configs=[refuse, *kwargs.pop("trace_configs", [])], **kwargs)


# -- requests (synchronous SDKs, e.g. razorpay) -------------------------------------------------


@functools.cache
def _requests_adapter() -> type[Any]:
    """An ``HTTPAdapter`` whose connections resolve, check and then connect to the checked
    address (TLS still verifies the original host name). Built on first use, so core does not
    need ``requests`` unless a plugin does."""
    import requests.adapters
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import NameResolutionError, NewConnectionError

    class GuardedConnection:
        _dns_host: str
        host: str
        port: int

        def _new_conn(self) -> socket.socket:
            host = self._dns_host
            try:
                infos = socket.getaddrinfo(host.strip("[]"), self.port, type=socket.SOCK_STREAM)
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
            addresses = _current.allowed(host, list(dict.fromkeys(str(i[4][0]) for i in infos)))
            error: Exception | None = None
            for address in addresses:
                self._dns_host = address  # what urllib3 connects to; TLS keeps self.host
                try:
                    return super()._new_conn()  # type: ignore[misc]
                except NewConnectionError as exc:  # the next address, as a resolver-aware connect
                    error = exc
                finally:
                    self._dns_host = host
            assert error is not None
            raise error

    class GuardedHTTP(GuardedConnection, HTTPConnection):
        pass

    class GuardedHTTPS(GuardedConnection, HTTPSConnection):
        pass

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTP

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPS

    class GuardedAdapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": GuardedHTTPPool,
                "https": GuardedHTTPSPool,
            }

    return GuardedAdapter


def requests_session(timeout: float = 30.0) -> Any:
    """A ``requests.Session`` for synchronous SDKs that take one (razorpay's ``Client(session=
    ...)``): every connection checked like the others, redirects not followed (the 3xx comes
    back as it is), no proxies from the environment (through one, only the proxy's address
    would be checked), and ``timeout`` seconds unless a call
    names its own (requests waits forever by default)."""
    import requests

    class GuardedSession(requests.Session):
        def request(self, method: str, url: str | bytes, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs["allow_redirects"] = False
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            return super().request(method, url, **kwargs)

    session = GuardedSession()
    session.trust_env = False
    adapter = _requests_adapter()
    session.mount("http://", adapter())
    session.mount("https://", adapter())
    return session
