"""Personal API keys: shown once, stored hashed, used as Bearer, revocable."""

from __future__ import annotations

from sqlalchemy import select

from multinotes.keys import DB
from multinotes.models import ApiKey
from multinotes.testing import ApiClient


async def test_key_is_shown_once_and_works_as_bearer(api: ApiClient, make_client):
    await api.register_and_login("key@example.com")
    response = await api.post("/api/keys", {"name": "laptop"})
    assert response.status == 201
    created = await response.json()
    assert created["key"].startswith("mn_") and created["name"] == "laptop"

    listed = await api.get_json("/api/keys")
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and created["key"] not in str(listed)

    bearer = await make_client()
    bearer.use_key(created["key"])
    me = await bearer.get_json("/api/me")
    assert me["email"] == "key@example.com"
    # Bearer clients need no CSRF token.
    another = await bearer.post("/api/keys", {"name": "from-script"})
    assert another.status == 201


async def test_only_a_hash_is_stored(api: ApiClient):
    await api.register_and_login("hash@example.com")
    created = await (await api.post("/api/keys", {"name": "k"})).json()
    async with api.app[DB].read() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.id == created["id"]))
    assert row is not None
    assert created["key"] not in (row.key_hash, row.prefix)
    assert len(row.key_hash) == 64


async def test_revoked_key_stops_working(api: ApiClient, make_client):
    await api.register_and_login("rev@example.com")
    created = await (await api.post("/api/keys", {"name": "k"})).json()
    assert (await api.delete(f"/api/keys/{created['id']}")).status == 204
    assert await api.get_json("/api/keys") == []
    bearer = await make_client()
    bearer.use_key(created["key"])
    response = await bearer.get("/api/me")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_cannot_revoke_someone_elses_key(api: ApiClient, make_client):
    await api.register_and_login("owner@example.com")
    created = await (await api.post("/api/keys", {"name": "k"})).json()
    other = await make_client()
    await other.register_and_login("other@example.com")
    response = await other.delete(f"/api/keys/{created['id']}")
    assert response.status == 404
    assert len(await api.get_json("/api/keys")) == 1


async def test_key_name_is_required(api: ApiClient):
    await api.register_and_login("name@example.com")
    response = await api.post("/api/keys", {"name": ""})
    assert response.status == 422
    assert "name" in (await response.json())["error"]["fields"]
