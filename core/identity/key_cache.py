"""API keys and session cookies resolved from memory: one database read per credential and
process every few seconds instead of one (plus a session's overhead) on every request.

``ApiKeyCache.actor(db, key)`` and ``SessionCache.actor(db, token, idle_timeout=...)`` answer
what ``identity.actor_from_api_key`` and ``identity.actor_from_session`` answer; the auth
middleware calls them (``app[API_KEY_CACHE]``, ``app[SESSION_CACHE]``).

An entry is filled on a miss and lives at most ``TTL_SECONDS``. Whatever changes what a
credential resolves to — a revoked or narrowed key, a revoked session (logout, "sign out
everywhere", a password change), a blocked, demoted, deleted or edited user, written by any code
through ``Database.transaction`` — drops the owner's entries when that transaction commits: in
this process at once, in every other process through the bus (Redis pub/sub in production,
in-process in embedded mode). A write that does not pin the owner (a logout names only its
session) drops every entry. The TTL bounds what a lost message or a write from outside the app
(a CLI command in another embedded process) can leave behind. Expiry, idle time and the
last-use touch (at most every ``identity.TOUCH_INTERVAL``) are checked on every use, from the
entry.

Only live credentials are cached: an unknown or revoked one reads the database every time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import replace
from datetime import timedelta
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, ColumnElement
from sqlalchemy.sql.visitors import iterate

from multinotes.bus import Bus
from multinotes.db import Database, utcnow
from multinotes.identity import service as identity
from multinotes.identity.actor import Actor
from multinotes.identity.models import ApiKey, AuthSession, User

log = structlog.get_logger(__name__)

#: The bus channel: ``{"users": [user ids]}``, or ``{"users": null}`` for everyone.
CHANNEL = "identity.credentials"
TTL_SECONDS = 10.0
MAX_ENTRIES = 10_000
#: ``session.info`` key: the user ids whose credentials the transaction changed; ``None`` in
#: the set stands for "someone, unknown who".
CHANGED = "credentials_changed"
#: The tables whose rows make up a resolved key, and the column naming the user in each.
_OWNER_COLUMN = {"users": "id", "api_keys": "user_id", "sessions": "user_id"}


Resolved = TypeVar("Resolved", identity.ResolvedKey, identity.ResolvedSession)


class _CredentialCache(Generic[Resolved]):
    """Digest of a credential → what it resolved to, least recently used evicted first."""

    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Resolved]] = OrderedDict()
        # Bumped by every invalidation: a fill that read the database before one must not
        # store what it read (it may be the row the invalidation was about).
        self._epoch = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _cached(self, digest: str) -> Resolved | None:
        cached = self._entries.get(digest)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            self.hits += 1
            self._entries.move_to_end(digest)
            return cached[1]
        self.misses += 1
        return None

    def _replace(self, digest: str, old: Resolved, new: Resolved) -> None:
        """After a touch: keep the entry (and its age) with the new last-use time."""
        entry = self._entries.get(digest)
        if entry is not None and entry[1] is old:
            self._entries[digest] = (entry[0], new)

    def _store(self, digest: str, resolved: Resolved) -> None:
        self._entries[digest] = (time.monotonic(), resolved)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, user_ids: Iterable[str] | None) -> None:
        """Forget the credentials of these users (``None``: of everyone)."""
        self._epoch += 1
        if user_ids is None:
            self._entries.clear()
            return
        users = set(user_ids)
        for digest in [d for d, (_, r) in self._entries.items() if r.actor.user_id in users]:
            del self._entries[digest]


class ApiKeyCache(_CredentialCache[identity.ResolvedKey]):
    """API keys (``Authorization: Bearer``) resolved from memory."""

    async def actor(self, db: Database, key: str) -> Actor | None:
        """``identity.actor_from_api_key``, from memory when the key was resolved lately."""
        if not key.startswith(identity.API_KEY_PREFIX):
            return None
        digest = identity.token_hash(key)
        now = utcnow()
        resolved = self._cached(digest)
        if resolved is None:
            epoch = self._epoch
            resolved = await identity.resolve_api_key(db, digest)
            if resolved is None:
                self._entries.pop(digest, None)
                return None
            if epoch == self._epoch:
                self._store(digest, resolved)
        identity.check_key_expiry(resolved, now)
        if await identity.touch_api_key(db, resolved, now):
            self._replace(digest, resolved, replace(resolved, last_used_at=now))
        return resolved.actor


class SessionCache(_CredentialCache[identity.ResolvedSession]):
    """Session cookies resolved from memory."""

    async def actor(
        self, db: Database, token: str, *, idle_timeout: timedelta | None = None
    ) -> Actor | None:
        """``identity.actor_from_session``, from memory when the session was resolved lately."""
        digest = identity.token_hash(token)
        now = utcnow()
        resolved = self._cached(digest)
        if resolved is None:
            epoch = self._epoch
            resolved = await identity.resolve_session(db, digest)
            if resolved is None:
                self._entries.pop(digest, None)
                return None
            if epoch == self._epoch:
                self._store(digest, resolved)
        if not identity.session_usable(resolved, now, idle_timeout):
            return None
        if await identity.touch_session(db, resolved, now):
            self._replace(digest, resolved, replace(resolved, last_seen_at=now))
        return resolved.actor


# -- noticing changes ---------------------------------------------------------------------------


def _note(session: Session, user_id: str | None) -> None:
    session.info.setdefault(CHANGED, set()).add(user_id)


def _owner_in_where(statement: Any, table: str) -> str | None:
    """The user a statement's WHERE pins with ``<owner column> = <value>``, else None."""
    column_name = _OWNER_COLUMN[table]
    where = getattr(statement, "whereclause", None)
    if not isinstance(where, ColumnElement):
        return None
    for element in iterate(where):
        if not isinstance(element, BinaryExpression) or element.operator is not operators.eq:
            continue
        left, right = element.left, element.right
        if isinstance(left, BindParameter):
            left, right = right, left
        table_of = getattr(getattr(left, "table", None), "name", None)
        if table_of == table and getattr(left, "name", None) == column_name:
            value = getattr(right, "effective_value", None)
            if isinstance(value, str):
                return value
    return None


def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_update or state.is_delete):
        return
    if state.execution_options.get(identity.CREDENTIALS_UNCHANGED):
        return
    table = getattr(getattr(state.statement, "table", None), "name", None)
    if table in _OWNER_COLUMN:
        _note(state.session, _owner_in_where(state.statement, table))


def _on_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    # New rows change nothing a cached key resolved to (a new key is not cached yet).
    for instance in (*session.dirty, *session.deleted):
        if isinstance(instance, User):
            _note(session, instance.id)
        elif isinstance(instance, ApiKey | AuthSession):
            _note(session, instance.user_id)


def install(db: Database, cache: ApiKeyCache, bus: Bus, *others: SessionCache) -> None:
    """Watch ``db``'s transactions for credential changes; drop them here (from ``cache`` and
    ``others``) and tell the other processes (and listen for theirs)."""
    caches: tuple[_CredentialCache[Any], ...] = (cache, *others)
    event.listen(db.session_class, "do_orm_execute", _on_execute)
    event.listen(db.session_class, "before_flush", _on_flush)

    async def committed(info: dict[str, Any]) -> None:
        changed: set[str | None] | None = info.get(CHANGED)
        if not changed:
            return
        users = None if None in changed else sorted(u for u in changed if u is not None)
        for each in caches:
            each.invalidate(users)
        try:
            await bus.publish(CHANNEL, {"users": users})
        except Exception as exc:  # Redis away: the other processes' TTL still applies
            log.warning("credentials_publish_failed", error=f"{type(exc).__name__}: {exc}")

    async def heard(message: dict[str, Any]) -> None:
        users = message.get("users")
        for each in caches:
            each.invalidate(None if users is None else [str(u) for u in users])

    db.on_commit.append(committed)
    bus.subscribe(CHANNEL, heard)
