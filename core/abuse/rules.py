"""The rules abuse detection runs, their defaults, and reading their current settings.

``signup_burst``: more than ``threshold`` sign-ups from one network (a /24 of IPv4, a /64 of
IPv6) within ``window_minutes``. ``rate_limit`` refuses further sign-ups from it (429) until the
window has room again; ``suspend`` lets them in blocked, for review. Loopback addresses are
never counted (the machine itself: the CLI, a local test run).

``disposable_email``: a sign-up with an address at a throw-away domain (the shipped list plus
the operator's ``extra_domains``). ``rate_limit`` refuses it (422 on the email field);
``suspend`` creates the account blocked; ``none`` only flags it.

The rules about accounts in use count in the rate-limit storage (in memory, or Redis in
production), never with SQL on the request or answer path (``multinotes.abuse.watch``):

``credit_drain``: an account spends more than ``threshold`` credits within ``window_minutes``
(answers, failed answers' partial charges). ``moderation_flags``: ``threshold`` prompts refused
by a content filter (``content_filtered``) within the window. ``api_key_misuse``: one API key
used from ``threshold`` networks within the window, or answered 403 / 429 ``refusal_threshold``
times (a key probing for what it may do, or hammering past its rate limit).

For these three, ``rate_limit`` throttles the account's generation requests (429
``abuse_throttled`` with Retry-After) for ``window_minutes``; ``suspend`` blocks the account as
the review queue's block does (admins are never suspended automatically).
"""

from __future__ import annotations

import functools
import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from multinotes.abuse.models import AbuseRule
from multinotes.db import Database


@dataclass(frozen=True)
class RuleSettings:
    rule: str
    enabled: bool
    action: str
    threshold: int
    window_minutes: int
    params: dict[str, Any] = field(default_factory=dict)


#: Each rule's label (for the console) and defaults.
RULES: dict[str, tuple[str, RuleSettings]] = {
    "signup_burst": (
        "Sign-up burst from one network",
        RuleSettings("signup_burst", True, "rate_limit", 10, 60),
    ),
    "disposable_email": (
        "Disposable email domain",
        RuleSettings("disposable_email", True, "rate_limit", 1, 60, {"extra_domains": []}),
    ),
    "credit_drain": (
        "Credits drained in a short time",
        # US$10 of usage within an hour (1 credit = US$0.00001): flag only, by default.
        RuleSettings("credit_drain", True, "none", 1_000_000, 60),
    ),
    "moderation_flags": (
        "Repeated content-filter refusals",
        RuleSettings("moderation_flags", True, "none", 5, 60),
    ),
    "api_key_misuse": (
        "API key misuse",
        RuleSettings("api_key_misuse", True, "none", 5, 60, {"refusal_threshold": 50}),
    ),
}

#: The rules about accounts in use, whose ``rate_limit`` throttles the account's generations.
ACCOUNT_RULES = ("credit_drain", "moderation_flags", "api_key_misuse")


async def settings_of(db: Database, rule: str) -> RuleSettings:
    """The rule's settings: its row when the operator saved one, else its defaults."""
    default = RULES[rule][1]
    async with db.read() as session:
        row = await session.get(AbuseRule, rule)
    if row is None:
        return default
    return RuleSettings(
        rule,
        row.enabled,
        row.action,
        row.threshold,
        row.window_minutes,
        {**default.params, **(row.params or {})},
    )


async def all_settings(db: Database) -> list[RuleSettings]:
    async with db.read() as session:
        rows = {r.rule: r for r in await session.scalars(select(AbuseRule))}
    out = []
    for name, (_label, default) in RULES.items():
        row = rows.get(name)
        out.append(
            default
            if row is None
            else RuleSettings(
                name,
                row.enabled,
                row.action,
                row.threshold,
                row.window_minutes,
                {**default.params, **(row.params or {})},
            )
        )
    return out


class RuleCache:
    """Every rule's settings, kept in this process for ``TTL`` seconds: the rules that run on
    each answer and each API-key request read them here instead of querying every time. Saving
    a rule clears this process's copy; other processes see the change within ``TTL``."""

    TTL = 5.0

    def __init__(self) -> None:
        self._settings: dict[str, RuleSettings] = {}
        self._until = 0.0

    async def get(self, db: Database, rule: str) -> RuleSettings:
        if time.monotonic() >= self._until:
            self._settings = {s.rule: s for s in await all_settings(db)}
            self._until = time.monotonic() + self.TTL
        return self._settings[rule]

    def clear(self) -> None:
        self._until = 0.0


RULE_CACHE = web.AppKey("abuse_rule_cache", RuleCache)


def network_of(ip: str | None) -> str | None:
    """The network an address belongs to for counting (/24 or /64); None for loopback or an
    address that is not one (a Unix socket)."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    prefix = 24 if address.version == 4 else 64
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@functools.lru_cache(maxsize=1)
def shipped_domains() -> frozenset[str]:
    path = Path(__file__).with_name("disposable_domains.txt")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


def is_disposable(email: str, extra_domains: list[str]) -> str | None:
    """The listed domain the address is at (itself or a parent domain), or None."""
    domain = email.rpartition("@")[2].strip().lower().rstrip(".")
    listed = shipped_domains() | {d.strip().lower() for d in extra_domains if d.strip()}
    parts = domain.split(".")
    for i in range(len(parts) - 1):
        candidate = ".".join(parts[i:])
        if candidate in listed:
            return candidate
    return None
