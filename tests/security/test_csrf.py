"""CSRF: every unsafe route (generated from the router), called with the session cookie but
without the token, or from a foreign origin, is refused with 403 ``csrf_failed`` before its
handler runs; a bearer API key is unaffected."""

from __future__ import annotations

from typing import Any

from multinotes.testing import ApiClient
from tests.security.routes import UNSAFE_METHODS, Route, app_routes, error_code

JSON = {"Accept": "application/json"}  # pages answer errors as JSON when asked to


def unsafe_routes(api: ApiClient) -> list[Route]:
    routes = [r for r in app_routes(api.app) if r.method in UNSAFE_METHODS]
    assert len(routes) > 40
    return routes


async def refusal(response: Any) -> str | None:
    try:
        body = await response.json()
    except Exception:
        return None
    return error_code(body)


async def logged_in(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email)
    await client.mark_verified()
    return client


async def test_cookie_writes_without_the_token_are_refused(admin: ApiClient, make_client: Any):
    user = await logged_in(make_client, "carol@example.com")
    passed = []
    for client in (admin, user):
        for route in unsafe_routes(client):
            response = await client.client.request(
                route.method, route.url(), json={}, headers=JSON, allow_redirects=False
            )
            if response.status != 403 or await refusal(response) != "csrf_failed":
                passed.append(f"{route}: {response.status}")
            wrong = await client.client.request(
                route.method,
                route.url(),
                json={},
                headers={**JSON, "X-CSRF-Token": "not-the-token"},
                allow_redirects=False,
            )
            if wrong.status != 403 or await refusal(wrong) != "csrf_failed":
                passed.append(f"{route} (wrong token): {wrong.status}")
    assert passed == []
    assert (await user.get("/api/me")).status == 200  # nothing ran: still logged in


async def test_cookie_writes_from_a_foreign_origin_are_refused(admin: ApiClient, make_client: Any):
    anonymous: ApiClient = await make_client()
    passed = []
    for route in unsafe_routes(admin):
        for origin in ("https://evil.example", "null"):
            response = await admin.client.request(
                route.method,
                route.url(),
                json={},
                # The right token: only the origin is wrong.
                headers={**JSON, "X-CSRF-Token": admin.csrf or "", "Origin": origin},
                allow_redirects=False,
            )
            if response.status != 403 or await refusal(response) != "csrf_failed":
                passed.append(f"{route} from {origin}: {response.status}")
        # No cookie at all (a login or sign-up form posted from another site).
        response = await anonymous.client.request(
            route.method,
            route.url(),
            json={},
            headers={**JSON, "Origin": "https://evil.example"},
            allow_redirects=False,
        )
        if response.status != 403 or await refusal(response) != "csrf_failed":
            passed.append(f"{route} anonymous from a foreign origin: {response.status}")
    assert passed == []
    assert (await admin.get("/api/me")).status == 200


async def test_bearer_clients_need_no_token_and_no_origin(admin: ApiClient, make_client: Any):
    user = await logged_in(make_client, "dave@example.com")
    key = (await (await user.post("/api/keys", {"name": "cli"})).json())["key"]
    bearer: ApiClient = await make_client()
    bearer.use_key(key)
    refused = []
    for route in unsafe_routes(admin):
        response = await bearer.client.request(
            route.method,
            route.url(),
            json={},
            headers={**JSON, "Authorization": f"Bearer {key}", "Origin": "https://evil.example"},
            allow_redirects=False,
        )
        code = await refusal(response)
        # Whatever the route answers to an empty body, it is not a CSRF refusal, and the key
        # was accepted (no route revoked it along the way).
        if code in ("csrf_failed", "invalid_api_key"):
            refused.append(f"{route}: {response.status} {code}")
    assert refused == []
    assert (await bearer.get("/api/me")).status == 200  # the key still works
