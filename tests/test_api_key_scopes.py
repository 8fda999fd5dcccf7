"""API key scopes and expiry.

A key holds scopes — read (GET of your data), notes (writes to notes, folders, files, shares,
comments), chat (conversations and generation), admin (the admin routes) — and never more than
its owner: only an administrator's key holds admin, and it stops counting when the owner is no
longer one. A key expires when asked to (401 ``api_key_expired``), can be narrowed but never
widened, and a password change revokes the account's keys unless told not to.

The route walk checks the decision for every route of the app against the table below, so a new
route must be placed in it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from multinotes.keys import DB
from multinotes.models import ApiKey, User
from multinotes.testing import DEFAULT_PASSWORD, ApiClient
from tests.security.routes import UNSAFE_METHODS, Route, app_routes, error_code

#: The writes the notes scope allows (method, route).
NOTES_WRITES = {
    ("PATCH", "/api/comments/{id}"),
    ("DELETE", "/api/comments/{id}"),
    ("POST", "/api/documents"),
    ("PATCH", "/api/documents/{id}"),
    ("DELETE", "/api/documents/{id}"),
    ("POST", "/api/documents/{id}/comments"),
    ("POST", "/api/documents/{id}/duplicate"),
    ("POST", "/api/documents/{id}/move-space"),
    ("POST", "/api/folders/{id}/move-space"),
    ("POST", "/api/templates/{id}/move-space"),
    ("POST", "/api/documents/{id}/restore"),
    ("POST", "/api/documents/{id}/versions/{n}/restore"),
    ("POST", "/api/exports"),
    ("POST", "/api/documents/{id}/export"),
    ("POST", "/exports/remote/{id}"),
    ("POST", "/exports/conversation/{id}"),
    ("POST", "/exports/folder/{id}"),
    ("POST", "/exports/comparison/{id}"),
    ("POST", "/exports/answer/{id}"),
    ("POST", "/api/files"),
    ("PATCH", "/api/files/{id}"),
    ("DELETE", "/api/files/{id}"),
    ("POST", "/api/folders"),
    ("PATCH", "/api/folders/{id}"),
    ("DELETE", "/api/folders/{id}"),
    ("POST", "/api/folders/{id}/restore"),
    ("POST", "/api/messages/{id}/save"),
    ("POST", "/api/messages/{id}/save-comparison"),
    ("POST", "/api/notifications/read"),
    ("DELETE", "/api/search/recent"),
    ("POST", "/api/shares"),
    ("PATCH", "/api/shares/{id}"),
    ("DELETE", "/api/shares/{id}"),
    ("POST", "/comments/{id}/delete"),
    ("POST", "/comments/{id}/edit"),
    ("POST", "/documents/{id}/comments"),
    ("POST", "/files/upload"),
    ("POST", "/files/{id}/delete"),
    ("POST", "/files/{id}/rename"),
    ("POST", "/notes/delete"),
    ("POST", "/notes/folders"),
    ("POST", "/notes/folders/{id}/rename"),
    ("POST", "/notes/move"),
    ("POST", "/notes/new"),
    ("POST", "/notes/preview"),
    ("POST", "/notes/share"),
    ("POST", "/notes/{id}/duplicate"),
    ("POST", "/notes/{id}/versions/{n}/restore"),
    ("POST", "/notifications/read"),
    ("POST", "/search/recent/clear"),
    ("POST", "/share/dialog"),
    ("POST", "/share/{id}/revoke"),
    ("POST", "/share/{id}/update"),
    ("POST", "/trash/restore"),
    ("POST", "/api/templates"),
    ("PATCH", "/api/templates/{id}"),
    ("DELETE", "/api/templates/{id}"),
    ("PUT", "/api/templates/{id}/favourite"),
    ("DELETE", "/api/templates/{id}/favourite"),
    ("POST", "/api/templates/{id}/render"),
    ("POST", "/prompts/new"),
    ("POST", "/prompts/{id}/edit"),
    ("POST", "/prompts/{id}/delete"),
    ("POST", "/prompts/{id}/favourite"),
    # A note's tags and summary, and the switch for automatic suggestions.
    ("PUT", "/api/documents/{id}/details"),
    ("POST", "/notes/{id}/assist/details"),
    ("POST", "/notes/{id}/assist/dismiss"),
    ("POST", "/notes/{id}/assist/automatic"),
    ("PATCH", "/api/me/assist"),
}
#: The writes the chat scope allows: everything that talks to models and spends credits.
CHAT_WRITES = {
    ("POST", "/api/conversations"),
    ("PATCH", "/api/conversations/{id}"),
    ("DELETE", "/api/conversations/{id}"),
    ("POST", "/api/conversations/{id}/move-space"),
    ("POST", "/api/conversations/{id}/messages"),
    ("POST", "/api/documents/{id}/rerun"),
    ("POST", "/api/generations/{id}/cancel"),
    ("POST", "/api/messages"),
    ("POST", "/api/messages/{id}/rating"),
    ("POST", "/api/messages/{id}/regenerate"),
    ("POST", "/api/me/model-favourites"),
    ("POST", "/api/comparisons"),
    ("POST", "/api/comparisons/{id}/vote"),
    ("POST", "/comparisons/{id}/vote"),
    ("POST", "/api/templates/{id}/uses"),
    ("POST", "/api/chains"),
    ("PATCH", "/api/chains/{id}"),
    ("DELETE", "/api/chains/{id}"),
    ("POST", "/api/chains/{id}/runs"),
    ("POST", "/api/chains/runs/{id}/cancel"),
    ("POST", "/api/chains/runs/{id}/rerun"),
    ("POST", "/chains/new"),
    ("POST", "/chains/{id}/edit"),
    ("POST", "/chains/{id}/delete"),
    ("POST", "/chains/{id}/run"),
    ("POST", "/chains/runs/{id}/cancel"),
    ("POST", "/chains/runs/{id}/rerun"),
    # A cheap model suggests a note's tags and summary on the owner's credits.
    ("POST", "/api/documents/{id}/suggestion"),
    ("DELETE", "/api/documents/{id}/suggestion"),
    ("POST", "/notes/{id}/assist/suggest"),
    # Batch runs: every row a prompt on the owner's credits.
    ("POST", "/api/batches"),
    ("POST", "/api/batches/upload"),
    ("POST", "/api/batches/{id}/cancel"),
    ("POST", "/batches"),
    ("POST", "/batches/{id}/cancel"),
    # Schedules run templates on the owner's credits, unattended: chat.
    ("POST", "/api/schedules"),
    ("PATCH", "/api/schedules/{id}"),
    ("DELETE", "/api/schedules/{id}"),
    ("POST", "/api/schedules/{id}/pause"),
    ("POST", "/api/schedules/{id}/resume"),
    ("POST", "/api/schedules/{id}/run"),
    ("POST", "/schedules/new"),
    ("POST", "/schedules/{id}/edit"),
    ("POST", "/schedules/{id}/pause"),
    ("POST", "/schedules/{id}/resume"),
    ("POST", "/schedules/{id}/run"),
    ("POST", "/schedules/{id}/delete"),
}
#: Writes to the account itself: only a full key (read + notes + chat) may make them.
ACCOUNT_WRITES = {
    ("POST", "/account/avatar"),
    ("POST", "/account/avatar/delete"),
    ("POST", "/account/email"),
    ("POST", "/account/keys"),
    ("POST", "/account/keys/{id}/revoke"),
    ("POST", "/account/keys/{id}/scopes"),
    ("POST", "/account/oauth/identities/{id}/unlink"),
    ("POST", "/account/oauth/{provider}/link"),
    ("POST", "/account/password"),
    ("POST", "/account/privacy/delete"),
    ("POST", "/account/privacy/export"),
    ("POST", "/account/profile"),
    ("POST", "/account/sessions/revoke-all"),
    ("POST", "/account/sessions/{id}/revoke"),
    ("POST", "/account/verification/resend"),
    # Presence for a live SSE stream (it changes nothing stored; a full key, like the session).
    ("POST", "/api/live/presence"),
    # Connecting an account elsewhere lets this app act there for the owner: a full key.
    ("DELETE", "/api/connections/{id}"),
    ("PATCH", "/api/connections/{id}"),
    ("POST", "/connections/{id}/destination"),
    ("POST", "/api/connections"),
    ("POST", "/connections/{kind}/token"),
    ("POST", "/connections/{kind}/connect"),
    ("POST", "/connections/{id}/disconnect"),
    ("POST", "/api/auth/logout"),
    ("DELETE", "/api/auth/oauth/identities/{id}"),
    ("POST", "/api/auth/oauth/{provider}/link"),
    ("POST", "/api/auth/password/change"),
    ("POST", "/api/keys"),
    ("PATCH", "/api/keys/{id}"),
    ("DELETE", "/api/keys/{id}"),
    ("DELETE", "/api/me"),
    ("PATCH", "/api/me"),
    ("POST", "/api/me/avatar"),
    ("DELETE", "/api/me/avatar"),
    ("POST", "/api/me/email"),
    ("POST", "/api/me/export"),
    ("POST", "/api/sessions/revoke-all"),
    ("DELETE", "/api/sessions/{id}"),
    ("POST", "/logout"),
    # Buying and managing a subscription spend money: a full key.
    ("POST", "/api/billing/quote"),
    ("POST", "/api/billing/checkout"),
    ("POST", "/api/billing/portal"),
    ("POST", "/api/billing/orders/{id}/cancel"),
    ("POST", "/api/billing/orders/{id}/confirm"),
    ("POST", "/billing/checkout"),
    ("POST", "/billing/portal"),
    ("POST", "/billing/orders/{id}/cancel"),
    ("POST", "/billing/referral"),
    ("PUT", "/api/billing/auto-reload"),
    ("POST", "/billing/auto-reload"),
    # Webhooks send the owner's events to an address outside: only a full key may set them up.
    ("POST", "/api/webhooks"),
    ("PATCH", "/api/webhooks/{id}"),
    ("DELETE", "/api/webhooks/{id}"),
    ("POST", "/api/webhooks/{id}/disable"),
    ("POST", "/api/webhooks/{id}/enable"),
    ("POST", "/api/webhooks/{id}/rotate-secret"),
    ("POST", "/api/webhooks/{id}/test"),
    ("POST", "/api/webhooks/{id}/deliveries/{delivery_id}/retry"),
    ("POST", "/integrations/webhooks"),
    ("POST", "/integrations/webhooks/{id}/edit"),
    ("POST", "/integrations/webhooks/{id}/test"),
    ("POST", "/integrations/webhooks/{id}/on"),
    ("POST", "/integrations/webhooks/{id}/off"),
    ("POST", "/integrations/webhooks/{id}/delete"),
    ("POST", "/integrations/webhooks/{id}/rotate"),
    ("POST", "/integrations/webhooks/{id}/deliveries/{delivery_id}/retry"),
    # A linked Slack or Discord account spends the owner's credits: only a full key links it.
    ("POST", "/integrations/slack/link"),
    ("POST", "/integrations/slack/links/{id}/unlink"),
    ("POST", "/integrations/slack/links/{id}/model"),
    ("POST", "/integrations/slack/installs/{team}/remove"),
    ("POST", "/integrations/discord/link"),
    ("POST", "/integrations/discord/links/{id}/unlink"),
    ("POST", "/integrations/discord/links/{id}/model"),
    # Support tickets and announcement banners concern the account, not notes or chat.
    ("POST", "/api/tickets"),
    ("POST", "/api/tickets/{id}/messages"),
    ("POST", "/support"),
    ("POST", "/support/{id}/messages"),
    ("POST", "/api/announcements/{id}/dismiss"),
    ("POST", "/announcements/{id}/dismiss"),
    # Asking for your experiment variant records that you saw it: about the account.
    ("POST", "/api/me/experiments/{name}"),
    # Organisations: membership, invitations and moving credits to a shared wallet concern the
    # account (and its money): a full key.
    ("POST", "/api/orgs"),
    ("POST", "/api/orgs/invitations/accept"),
    ("PATCH", "/api/orgs/{id}"),
    ("PATCH", "/api/orgs/{id}/members/{user_id}"),
    ("DELETE", "/api/orgs/{id}/members/{user_id}"),
    ("POST", "/api/orgs/{id}/leave"),
    ("POST", "/api/orgs/{id}/transfer"),
    ("POST", "/api/orgs/{id}/invitations"),
    ("POST", "/api/orgs/{id}/invitations/{invitation_id}/resend"),
    ("DELETE", "/api/orgs/{id}/invitations/{invitation_id}"),
    ("POST", "/api/orgs/{id}/wallet/fund"),
    ("POST", "/organisations"),
    ("POST", "/organisations/invitations/accept"),
    ("POST", "/organisations/workspace/personal"),
    ("POST", "/organisations/{id}/workspace"),
    ("POST", "/organisations/{id}/fund"),
    # Buying seats spends money, as any checkout: a full key.
    ("POST", "/organisations/{id}/seats"),
    ("POST", "/organisations/{id}/invitations"),
    ("POST", "/organisations/{id}/invitations/{invitation_id}/resend"),
    ("POST", "/organisations/{id}/invitations/{invitation_id}/revoke"),
    ("POST", "/organisations/{id}/members/{user_id}"),
    ("POST", "/organisations/{id}/members/{user_id}/remove"),
    ("POST", "/organisations/{id}/leave"),
    ("POST", "/organisations/{id}/transfer"),
    # Email domains bring people into an organisation; an offer makes the account a member.
    ("POST", "/api/orgs/{id}/domains"),
    ("POST", "/api/orgs/{id}/domains/{domain_id}/verify"),
    ("DELETE", "/api/orgs/{id}/domains/{domain_id}"),
    ("PUT", "/api/orgs/{id}/join-policy"),
    ("POST", "/api/me/org-offers/{offer_id}/accept"),
    ("POST", "/api/me/org-offers/{offer_id}/decline"),
    ("POST", "/organisations/{id}/domains"),
    ("POST", "/organisations/{id}/domains/{domain_id}/verify"),
    ("POST", "/organisations/{id}/domains/{domain_id}/remove"),
    ("POST", "/organisations/{id}/join-policy"),
    ("POST", "/organisations/offers/{offer_id}/accept"),
    ("POST", "/organisations/offers/{offer_id}/decline"),
    # The space one works in (its wallet pays), and moving items from the organisation's
    # page: a full key.
    ("POST", "/workspace"),
    ("POST", "/organisations/{id}/space/move"),
}
FULL = {"read", "notes", "chat"}
#: Routes a single-scope key may reach but the walk must not call: they end the session the
#: walk's own admin uses (covered with a full key below and in tests/test_sessions.py).
NOT_CALLED = {
    ("POST", "/admin/plugins/{name}/toggle"),
    # Streams until the client leaves; tests/test_live.py checks its scope (read) instead.
    ("GET", "/api/live/sse"),
}


def expected_scopes(route: Route) -> set[str]:
    """The table, as the specification says it."""
    key = (route.method, route.path)
    if route.access == "public":
        return set()
    if route.access == "admin":
        return {"admin"}
    if route.method not in UNSAFE_METHODS:
        return {"read"}
    if key in NOTES_WRITES:
        return {"notes"}
    if key in CHAT_WRITES:
        return {"chat"}
    assert key in ACCOUNT_WRITES, f"say which scope {route} needs (tests/test_api_key_scopes.py)"
    return FULL


async def make_key(api: ApiClient, scopes: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"key {scopes}", **extra}
    if scopes is not None:
        body["scopes"] = scopes
    response = await api.post("/api/keys", body)
    created = await response.json()
    assert response.status == 201, created
    return dict(created)


async def bearer(make_client: Any, key: str) -> ApiClient:
    client: ApiClient = await make_client()
    client.use_key(key)
    return client


async def test_every_route_allows_exactly_the_scopes_of_the_table(
    admin: ApiClient, make_client: Any
):
    await admin.mark_verified()
    keys = {scope: await make_key(admin, [scope]) for scope in ("read", "notes", "chat", "admin")}
    clients = {scope: await bearer(make_client, k["key"]) for scope, k in keys.items()}
    wrong = []
    walked = 0
    for route in app_routes(admin.app):
        if (route.method, route.path) in NOT_CALLED:
            continue
        needed = expected_scopes(route)
        if not needed:
            continue
        for scope, client in clients.items():
            response = await client.request(
                route.method,
                route.url(),
                json={} if route.method in UNSAFE_METHODS else None,
                headers={"Accept": "application/json"},
                allow_redirects=False,
            )
            try:
                body = await response.json()
            except Exception:
                body = None
            refused = response.status == 403 and error_code(body) == "insufficient_scope"
            if refused == needed.issubset({scope}):
                wrong.append(f"{route} with a {scope} key: {response.status} {error_code(body)}")
            walked += 1
    assert walked > 400
    assert wrong == []


async def test_the_table_places_every_write(api: ApiClient):
    for route in app_routes(api.app):
        expected_scopes(route)  # fails naming a route nobody placed


async def test_a_full_key_makes_account_writes_and_a_narrow_one_cannot(
    admin: ApiClient, make_client: Any
):
    full = await bearer(make_client, (await make_key(admin))["key"])
    response = await full.patch("/api/me", {"name": "Renamed By Key"})
    assert response.status == 200, await response.json()
    reader = await bearer(make_client, (await make_key(admin, ["read", "notes"]))["key"])
    refused = await reader.patch("/api/me", {"name": "Nope"})
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "insufficient_scope"
    assert (await reader.get_json("/api/me"))["name"] == "Renamed By Key"


async def test_a_key_cannot_create_a_wider_key(admin: ApiClient, make_client: Any):
    full = await bearer(make_client, (await make_key(admin))["key"])
    response = await full.post("/api/keys", {"name": "escalate", "scopes": ["admin"]})
    assert response.status == 422
    assert "scopes" in (await response.json())["error"]["fields"]
    narrower = await full.post("/api/keys", {"name": "reader", "scopes": ["read"]})
    assert narrower.status == 201


async def test_only_an_administrators_key_holds_admin(admin: ApiClient, make_client: Any):
    assert (await make_key(admin, ["admin"]))["scopes"] == ["admin"]
    person = await make_client()
    await person.register_and_login("plain@example.com")
    response = await person.post("/api/keys", {"name": "sneaky", "scopes": ["read", "admin"]})
    body = await response.json()
    assert response.status == 422, body
    assert body["error"]["code"] == "scope_not_allowed" and "scopes" in body["error"]["fields"]
    assert (await make_key(person))["scopes"] == ["read", "notes", "chat"]


async def test_a_key_loses_admin_when_its_owner_does(admin: ApiClient, make_client: Any):
    key = await make_key(admin, ["read", "admin"])
    client = await bearer(make_client, key["key"])
    assert (await client.get("/api/admin/users")).status == 200
    async with admin.app[DB].transaction() as session:
        await session.execute(update(User).values(role="user"))
    refused = await client.get("/api/admin/users")
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "insufficient_scope"
    assert (await client.get("/api/me")).status == 200  # what it still may do, it does
    listed = {k["id"]: k for k in await admin.get_json("/api/keys")}
    assert listed[key["id"]]["scopes"] == ["read"]


async def test_a_demoted_admins_keys_lose_admin_for_good(admin: ApiClient, make_client: Any):
    other = await make_client()
    promoted = await other.register_and_login("second@example.com")
    patch = f"/api/admin/users/{promoted['id']}"
    assert (await admin.patch(patch, {"role": "admin"})).status == 200
    await other.login("second@example.com")
    key = await make_key(other, ["read", "admin"])
    assert (await admin.patch(patch, {"role": "user"})).status == 200
    assert (await admin.patch(patch, {"role": "admin"})).status == 200
    client = await bearer(make_client, key["key"])
    refused = await client.get("/api/admin/users")
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "insufficient_scope"


async def test_an_expired_key_is_a_401_that_says_so(admin: ApiClient, make_client: Any):
    soon = datetime.now(UTC) + timedelta(hours=1)
    key = await make_key(admin, expires_at=soon.isoformat())
    client = await bearer(make_client, key["key"])
    assert (await client.get("/api/me")).status == 200
    async with admin.app[DB].transaction() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == key["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    response = await client.get("/api/me")
    body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] == "api_key_expired" and "expired" in body["error"]["message"]
    listed = {k["id"]: k for k in await admin.get_json("/api/keys")}
    assert listed[key["id"]]["expired"] is True


async def test_an_expiry_in_the_past_is_refused(admin: ApiClient):
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    response = await admin.post("/api/keys", {"name": "late", "expires_at": past})
    assert response.status == 422
    assert "expires_at" in (await response.json())["error"]["fields"]


async def test_keys_are_listed_with_scopes_last_use_and_expiry(admin: ApiClient, make_client: Any):
    key = await make_key(admin, ["read"])
    listed = (await admin.get_json("/api/keys"))[0]
    assert listed["scopes"] == ["read"] and listed["last_used_at"] is None
    assert listed["expires_at"] is None and listed["expired"] is False
    await (await bearer(make_client, key["key"])).get("/api/me")
    assert (await admin.get_json("/api/keys"))[0]["last_used_at"] is not None


async def test_a_key_can_be_narrowed_but_never_widened(admin: ApiClient, make_client: Any):
    key = await make_key(admin, ["read", "notes"])
    client = await bearer(make_client, key["key"])
    assert (await client.post("/api/folders", {"name": "By key"})).status == 201

    narrowed = await admin.patch(f"/api/keys/{key['id']}", {"scopes": ["read"]})
    assert narrowed.status == 200
    assert (await narrowed.json())["scopes"] == ["read"]
    refused = await client.post("/api/folders", {"name": "Again"})
    assert refused.status == 403
    assert (await client.get("/api/folders")).status == 200

    widened = await admin.patch(f"/api/keys/{key['id']}", {"scopes": ["read", "notes"]})
    body = await widened.json()
    assert widened.status == 422 and "scopes" in body["error"]["fields"], body
    assert (await admin.patch(f"/api/keys/{key['id']}", {"scopes": []})).status == 422
    other = await make_client()
    await other.register_and_login("other@example.com")
    assert (await other.patch(f"/api/keys/{key['id']}", {"scopes": ["read"]})).status == 404
    assert (await admin.get_json("/api/keys"))[0]["scopes"] == ["read"]


async def test_a_password_change_revokes_the_keys_unless_asked_not_to(
    admin: ApiClient, make_client: Any
):
    kept = await make_key(admin)
    response = await admin.post(
        "/api/auth/password/change",
        {
            "current_password": DEFAULT_PASSWORD,
            "new_password": "another long passphrase 1",
            "revoke_api_keys": False,
        },
    )
    assert response.status == 200
    assert (await response.json())["api_keys_revoked"] == 0
    assert (await (await bearer(make_client, kept["key"])).get("/api/me")).status == 200

    response = await admin.post(
        "/api/auth/password/change",
        {"current_password": "another long passphrase 1", "new_password": "a third passphrase 2"},
    )
    assert response.status == 200
    assert (await response.json())["api_keys_revoked"] == 1
    gone = await (await bearer(make_client, kept["key"])).get("/api/me")
    assert gone.status == 401
    assert await admin.get_json("/api/keys") == []


async def test_the_account_page_password_form_revokes_keys_when_ticked(
    admin: ApiClient, make_client: Any
):
    key = await make_key(admin)
    page = await (await admin.get("/account")).text()
    assert (
        'name="revoke_api_keys"' in page
        and "checked" in page.split('name="revoke_api_keys"')[1][:40]
    )
    response = await admin.client.post(
        "/account/password",
        data={
            "csrf_token": admin.csrf,
            "current_password": DEFAULT_PASSWORD,
            "new_password": "another long passphrase 1",
            "new_password_confirm": "another long passphrase 1",
            "revoke_api_keys": "true",
        },
        allow_redirects=False,
    )
    assert response.status == 303
    assert (await (await bearer(make_client, key["key"])).get("/api/me")).status == 401
