"""API keys resolved from memory (``multinotes.identity.key_cache``): a key read once is not
read again, and whatever changes what it resolves to takes effect on the next request in this
process and, through Redis pub/sub, within moments in every other process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update

from multinotes.app import create_app
from multinotes.identity import key_cache
from multinotes.identity import service as identity
from multinotes.keys import API_KEY_CACHE, DB
from multinotes.models import User
from multinotes.testing import ApiClient, app_client
from tests.support.statements import Statements, selects_from


async def new_key(api: ApiClient, scopes: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "cached"}
    if scopes is not None:
        body["scopes"] = scopes
    response = await api.post("/api/keys", body)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def bearer(make_client: Callable[[], Any], key: str) -> ApiClient:
    client: ApiClient = await make_client()
    client.use_key(key)
    return client


async def test_a_key_is_read_once_then_served_from_memory(api: ApiClient, make_client):
    await api.register_and_login("cache@example.com")
    client = await bearer(make_client, (await new_key(api))["key"])
    cache = api.app[API_KEY_CACHE]
    with Statements(api.app, selects_from("api_keys")) as reads:
        for _ in range(3):
            assert (await client.get_json("/api/me"))["email"] == "cache@example.com"
    assert len(reads) == 1
    assert cache.hits >= 2
    # Recording the last use writes the row but changes nothing the key resolves to.
    assert len(cache) == 1


async def test_a_revoked_key_stops_working_at_once(api: ApiClient, make_client):
    await api.register_and_login("revoke@example.com")
    created = await new_key(api)
    client = await bearer(make_client, created["key"])
    assert (await client.get("/api/me")).status == 200  # now cached
    assert (await api.delete(f"/api/keys/{created['id']}")).status == 204
    response = await client.get("/api/me")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_a_narrowed_key_loses_the_scope_at_once(api: ApiClient, make_client):
    await api.register_and_login("narrow@example.com")
    created = await new_key(api, ["read", "notes"])
    client = await bearer(make_client, created["key"])
    assert (await client.get("/api/me")).status == 200
    narrowed = await api.patch(f"/api/keys/{created['id']}", {"scopes": ["read"]})
    assert narrowed.status == 200
    response = await client.post("/api/folders", {"name": "Not allowed"})
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "insufficient_scope"


async def test_blocking_the_owner_stops_the_key_at_once(admin: ApiClient, make_client):
    person = await make_client()
    registered = await person.register_and_login("blocked@example.com")
    client = await bearer(make_client, (await new_key(person))["key"])
    assert (await client.get("/api/me")).status == 200
    blocked = await admin.patch(f"/api/admin/users/{registered['id']}", {"is_active": False})
    assert blocked.status == 200, await blocked.text()
    assert (await client.get("/api/me")).status == 401


async def test_any_committed_change_to_the_user_drops_the_entry(api: ApiClient, make_client):
    """Not only the known paths: a write to the users table from anywhere (here a bare
    statement in a transaction) is noticed, and a rolled-back one is not."""
    registered = await api.register_and_login("anywhere@example.com")
    client = await bearer(make_client, (await new_key(api))["key"])
    assert (await client.get("/api/me")).status == 200
    cache = api.app[API_KEY_CACHE]
    db = api.app[DB]

    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(
                update(User).where(User.id == registered["id"]).values(name="Rolled back")
            )
            raise RuntimeError("abandon")
    assert len(cache) == 1

    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.id == registered["id"]).values(name="Renamed")
        )
    assert len(cache) == 0
    assert (await client.get_json("/api/me"))["name"] == "Renamed"


async def test_a_change_to_someone_else_keeps_other_entries(api: ApiClient, make_client):
    await api.register_and_login("keeps@example.com")
    mine = await bearer(make_client, (await new_key(api))["key"])
    other = await make_client()
    registered = await other.register_and_login("changes@example.com")
    theirs = await bearer(make_client, (await new_key(other))["key"])
    assert (await mine.get("/api/me")).status == 200
    assert (await theirs.get("/api/me")).status == 200
    cache = api.app[API_KEY_CACHE]
    assert len(cache) == 2
    async with api.app[DB].transaction() as session:
        await session.execute(update(User).where(User.id == registered["id"]).values(name="X"))
    assert len(cache) == 1


async def test_a_fill_racing_an_invalidation_is_not_kept(api: ApiClient, monkeypatch):
    """A request that read the key just before it was revoked must not put the old row back
    into the cache after the revocation dropped it."""
    await api.register_and_login("race@example.com")
    key = (await new_key(api))["key"]
    cache = key_cache.ApiKeyCache()
    real = identity.resolve_api_key

    async def resolve_then_revoked(db: Any, digest: str) -> Any:
        found = await real(db, digest)
        cache.invalidate(None)  # the revocation commits while this read was in flight
        return found

    monkeypatch.setattr(identity, "resolve_api_key", resolve_then_revoked)
    assert await cache.actor(api.app[DB], key) is not None
    assert len(cache) == 0


async def test_an_entry_lives_at_most_the_ttl(api: ApiClient):
    await api.register_and_login("ttl@example.com")
    key = (await new_key(api))["key"]
    cache = key_cache.ApiKeyCache(ttl=0.05)
    db = api.app[DB]
    await cache.actor(db, key)
    await cache.actor(db, key)
    assert (cache.hits, cache.misses) == (1, 1)
    await asyncio.sleep(0.06)
    await cache.actor(db, key)
    assert cache.misses == 2


@pytest.mark.parametrize("mode", ["production"])
async def test_a_key_revoked_in_one_process_stops_in_another(
    api: ApiClient, settings: Any, make_client
):
    """Two apps sharing MariaDB and Redis, as two web processes would: B has the key cached
    when A revokes it; B refuses it as soon as the pub/sub message arrives."""
    await api.register_and_login("twoapps@example.com")
    created = await new_key(api)
    other_app = create_app(settings)
    async with app_client(other_app) as other:
        other.use_key(created["key"])
        assert (await other.get("/api/me")).status == 200
        assert len(other_app[API_KEY_CACHE]) == 1
        assert (await api.delete(f"/api/keys/{created['id']}")).status == 204
        status = 200
        for _ in range(40):
            if len(other_app[API_KEY_CACHE]) == 0:
                status = (await other.get("/api/me")).status
                break
            await asyncio.sleep(0.05)
        assert status == 401
