"""Mass assignment: fields a client must never set (role, admin flag, balance, owner, verified)
are refused in every JSON body, and ignored by every page form.

The JSON endpoints come from the router's ``@endpoint`` specs. The policy is "rejected": every
body model forbids unknown fields, so the request fails with 422 naming each extra field, and
the handler never runs.
"""

from __future__ import annotations

from typing import Any

from multinotes.testing import ApiClient
from tests.security.routes import Route, app_routes, error_code

EXTRAS: dict[str, Any] = {
    "role": "admin",
    "is_admin": True,
    "is_active": True,
    "balance": 10**9,
    "credits": 10**9,
    "user_id": "0" * 32,
    "owner_id": "0" * 32,
    "email_verified": True,
    "email_verified_at": "2020-01-01T00:00:00Z",
    "rate_limit_tier": "exempt",
}


#: Non-admin endpoints that take one of those names with another meaning, and what it means.
OTHER_MEANINGS: dict[str, dict[str, str]] = {
    "POST /api/shares": {"role": "the access a share grants on your own object: viewer or editor"},
    "PATCH /api/shares/{id}": {"role": "the access one of your shares grants: viewer or editor"},
    # An organisation's roles are its owner's and admins' to give (checked by
    # multinotes.sharing.access.organisation); none of them is the instance's admin role.
    "PATCH /api/orgs/{id}/members/{user_id}": {"role": "a member's role in your organisation"},
    "POST /api/orgs/{id}/invitations": {"role": "the organisation role an invitation offers"},
    "POST /api/orgs/{id}/transfer": {"user_id": "the member who is to own your organisation"},
}


def json_body_routes(api: ApiClient) -> list[Route]:
    return [r for r in app_routes(api.app) if r.spec.body is not None]


async def test_every_body_model_forbids_unknown_fields(api: ApiClient):
    routes = json_body_routes(api)
    assert len(routes) > 20
    lenient = [
        f"{r} ({r.spec.body.__name__})"  # type: ignore[union-attr]
        for r in routes
        if r.spec.body is not None and r.spec.body.model_config.get("extra") != "forbid"
    ]
    assert lenient == [], "give these body models model_config = ConfigDict(extra='forbid')"


async def test_extra_fields_are_rejected_by_every_json_endpoint(admin: ApiClient, make_client: Any):
    user: ApiClient = await make_client()
    await user.register_and_login("mallory@example.com")
    anonymous: ApiClient = await make_client()
    clients = {"admin": admin, "user": user, "public": anonymous}
    accepted = []
    for route in json_body_routes(admin):
        client = clients[route.access]
        assert route.spec.body is not None
        declared = set(route.spec.body.model_fields)
        for name, value in EXTRAS.items():
            if name in declared:  # an admin endpoint made to set it (checked below)
                continue
            # Only the extra field: it is named whatever else the body lacks.
            response = await client.request(route.method, route.url(), json={name: value})
            body = await response.json()
            fields = body.get("error", {}).get("fields") or {}
            if response.status != 422 or error_code(body) != "invalid" or name not in fields:
                accepted.append(f"{route} {name}: {response.status} {body}")
    assert accepted == []


async def test_only_admin_endpoints_declare_such_fields(api: ApiClient):
    """Setting a role or blocking is what an admin endpoint is for; no other may take them."""
    declaring = [
        r
        for r in json_body_routes(api)
        if r.spec.body is not None
        and set(EXTRAS) & set(r.spec.body.model_fields) - set(OTHER_MEANINGS.get(str(r), {}))
    ]
    assert "PATCH /api/admin/users/{id}" in [str(r) for r in declaring]
    assert [str(r) for r in declaring if r.access != "admin"] == []


async def test_a_valid_body_with_a_role_is_rejected_and_changes_nothing(api: ApiClient):
    user = await api.register_and_login("trudy@example.com")
    # The first account is the admin: take a second one.
    assert user["role"] == "admin"
    await api.register_and_login("oscar@example.com")
    response = await api.patch("/api/me", {"name": "Oscar", "role": "admin", "balance": 10**9})
    assert response.status == 422
    assert set((await response.json())["error"]["fields"]) == {"role", "balance"}
    me = await api.get_json("/api/me")
    assert me["role"] == "user" and me["name"] == "Test User"
    assert (await api.get_json("/api/wallet"))["balance"] < 10**9


async def test_page_forms_ignore_fields_they_do_not_know(api: ApiClient):
    await api.register_and_login("first@example.com")  # the admin
    await api.register_and_login("peggy@example.com")
    before = await api.get_json("/api/me")
    form = {
        "csrf_token": api.csrf or "",
        "name": "Peggy",
        "timezone": "UTC",
        "language": "en",
        **{k: str(v) for k, v in EXTRAS.items()},
        "email": "boss@example.com",
    }
    response = await api.client.post("/account/profile", data=form, allow_redirects=False)
    assert response.status == 303
    after = await api.get_json("/api/me")
    assert after["name"] == "Peggy"
    assert {k: after[k] for k in ("role", "email", "email_verified", "id")} == {
        k: before[k] for k in ("role", "email", "email_verified", "id")
    }
    wallet = await api.get_json("/api/wallet")
    assert wallet["balance"] < 10**9
