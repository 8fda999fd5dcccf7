"""Abuse detection on accounts in use (issue #19 item 9): an account draining credits, prompts
refused again and again by a content filter, and an API key used from many networks or refused
again and again. Each trips once per window, is logged with its evidence in the review queue,
and does what its rule says: only report it, throttle the account's generation requests (429
``abuse_throttled`` with Retry-After, lifted when the report is dismissed), or suspend the
account (never an administrator's). Counted in the rate-limit storage: memory in embedded mode,
Redis in production."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.errors import ContentFiltered
from multinotes.testing import DEFAULT_PASSWORD, ApiClient
from tests.support.scripted_provider import Script, scripted_plugins
from tests.support.sse import parse_sse
from tests.support.waiting import eventually
from tests.test_abuse import hits, set_rule

MODEL = "script/echo"
# 10 input tokens at 1 credit + 3 output tokens at 2 credits.
ANSWER_COST = 16


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def plugins(script: Script) -> Any:
    return scripted_plugins({MODEL: script})


@pytest.fixture
def settings(make_settings: Any) -> Any:
    """Requests come from the addresses X-Forwarded-For names (the test client is loopback,
    which the rules never count as a network)."""
    return make_settings(trusted_proxies=["127.0.0.1/32"])


@pytest.fixture
async def admin(api: ApiClient) -> ApiClient:
    await api.register_admin("admin@example.com")
    await api.mark_verified()
    return api


async def member(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email)
    await client.mark_verified()
    return client


async def ask(client: ApiClient, **kw: Any) -> Any:
    made = await client.post("/api/conversations", {}, **kw)
    assert made.status == 201, await made.text()
    conversation = (await made.json())["id"]
    return await client.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "Hello there", "models": [MODEL]},
        **kw,
    )


async def answered(client: ApiClient) -> dict[str, Any]:
    response = await ask(client)
    assert response.status == 200, await response.text()
    return next(d for n, d in parse_sse(await response.text()) if n == "done")


async def hit_of(admin: ApiClient, rule: str, count: int = 1) -> dict[str, Any]:
    async def there() -> bool:
        return len(await hits(admin, f"?rule={rule}")) >= count

    await eventually(there)
    found = await hits(admin, f"?rule={rule}")
    assert len(found) == count, found
    return found[0]


async def test_the_rules_about_accounts_in_use_are_listed_with_their_defaults(admin: ApiClient):
    rules = {r["rule"]: r for r in (await admin.get_json("/api/admin/abuse/rules"))["rules"]}
    assert {
        name: (r["enabled"], r["action"], r["threshold"])
        for name, r in rules.items()
        if name in ("credit_drain", "moderation_flags", "api_key_misuse")
    } == {
        "credit_drain": (True, "none", 1_000_000),
        "moderation_flags": (True, "none", 5),
        "api_key_misuse": (True, "none", 5),
    }
    assert rules["api_key_misuse"]["params"] == {"refusal_threshold": 50}
    saved = await set_rule(admin, "api_key_misuse", refusal_threshold=7)
    assert saved["params"] == {"refusal_threshold": 7}
    zero = await admin.request(
        "PUT",
        "/api/admin/abuse/rules/api_key_misuse",
        json={
            "enabled": True,
            "action": "none",
            "threshold": 5,
            "window_minutes": 60,
            "refusal_threshold": 0,
        },
    )
    assert zero.status == 422
    assert "refusal_threshold" in (await zero.json())["error"]["fields"]


async def test_credit_draining_is_reported_and_throttles_the_accounts_generations(
    admin: ApiClient, make_client: Any
):
    await set_rule(
        admin, "credit_drain", threshold=2 * ANSWER_COST + 1, window_minutes=30, action="rate_limit"
    )
    drainer = await member(make_client, "drainer@example.com")
    assert (await answered(drainer))["cost"] == ANSWER_COST
    await answered(drainer)
    assert await hits(admin, "?rule=credit_drain") == []  # 32 credits: under the threshold
    await answered(drainer)  # 48: over it

    hit = await hit_of(admin, "credit_drain")
    assert hit["user_email"] == "drainer@example.com" and hit["status"] == "open"
    assert hit["action_taken"] == "rate_limited"
    evidence = hit["evidence"]
    assert evidence["credits_in_window"] == 3 * ANSWER_COST
    assert evidence["threshold"] == 2 * ANSWER_COST + 1 and evidence["window_minutes"] == 30
    assert evidence["last_model"] == MODEL and evidence["throttled_for_seconds"] == 30 * 60

    # The next generation request is refused before it holds anything; other routes still work.
    refused = await ask(drainer)
    assert refused.status == 429
    error = (await refused.json())["error"]
    assert error["code"] == "abuse_throttled" and "unusual activity" in error["message"]
    assert 0 < int(refused.headers["Retry-After"]) <= 30 * 60
    assert (await drainer.get("/api/wallet")).status == 200
    # Someone else is not throttled.
    assert (await answered(admin))["status"] == "complete"

    # One report per window, however much more is spent.
    assert len(await hits(admin, "?rule=credit_drain")) == 1

    # Dismissing the report (a false alarm) lifts the throttle at once.
    done = await admin.post(f"/api/admin/abuse/{hit['id']}/actions", {"action": "dismiss"})
    assert done.status == 200
    assert (await answered(drainer))["status"] == "complete"


async def test_repeated_content_filter_refusals_suspend_the_account(
    admin: ApiClient, make_client: Any, script: Script
):
    await set_rule(admin, "moderation_flags", threshold=2, window_minutes=60, action="suspend")
    script.failures = [ContentFiltered("The provider's safety system refused the prompt.")] * 5
    flagged = await member(make_client, "flagged@example.com")

    first = await ask(flagged)
    events = parse_sse(await first.text())
    error = next(d for n, d in events if n == "error")
    assert error["code"] == "content_filtered"
    assert next(d for n, d in events if n == "done")["status"] == "failed"
    assert await hits(admin, "?rule=moderation_flags") == []
    await (await ask(flagged)).text()

    hit = await hit_of(admin, "moderation_flags")
    assert hit["user_email"] == "flagged@example.com" and hit["action_taken"] == "suspended"
    assert hit["evidence"]["refusals_in_window"] == 2 and hit["evidence"]["last_model"] == MODEL

    # Blocked: the session ends, and logging in says why.
    assert (await flagged.get("/api/wallet")).status == 401
    login = await flagged.post(
        "/api/auth/login", {"email": "flagged@example.com", "password": DEFAULT_PASSWORD}
    )
    assert login.status == 403
    body = (await login.json())["error"]
    assert body["code"] == "account_blocked" and "content filter" in body["message"]


async def test_an_administrator_is_reported_but_never_suspended_automatically(
    admin: ApiClient,
):
    await set_rule(admin, "credit_drain", threshold=1, action="suspend")
    await answered(admin)
    hit = await hit_of(admin, "credit_drain")
    assert hit["action_taken"] == "none"
    assert hit["evidence"]["not_suspended"] == "an administrator's account"
    assert (await admin.get("/api/wallet")).status == 200


async def make_key(client: ApiClient, scopes: list[str]) -> str:
    response = await client.post("/api/keys", {"name": "script", "scopes": scopes})
    assert response.status == 201, await response.text()
    return str((await response.json())["key"])


async def test_an_api_key_used_from_many_networks_is_reported_once(
    admin: ApiClient, make_client: Any
):
    await set_rule(admin, "api_key_misuse", threshold=3, window_minutes=60)
    owner = await member(make_client, "keys@example.com")
    scripted = await make_client()
    scripted.use_key(await make_key(owner, ["read"]))

    def from_(ip: str) -> dict[str, Any]:
        return {"headers": {"X-Forwarded-For": ip}}

    for _ in range(3):  # one network, again and again: nothing
        assert (await scripted.get("/api/wallet", **from_("198.51.100.7"))).status == 200
    assert (await scripted.get("/api/wallet", **from_("198.51.100.99"))).status == 200
    assert (await scripted.get("/api/wallet", **from_("203.0.113.4"))).status == 200
    assert await hits(admin, "?rule=api_key_misuse") == []
    assert (await scripted.get("/api/wallet", **from_("2001:db8:5::1"))).status == 200

    hit = await hit_of(admin, "api_key_misuse")
    assert hit["user_email"] == "keys@example.com" and hit["action_taken"] == "none"
    assert hit["network"] == "2001:db8:5::/64"
    assert hit["evidence"]["signal"] == "many networks"
    assert hit["evidence"]["networks_in_window"] == 3
    for ip in ("192.0.2.1", "192.0.3.1"):
        assert (await scripted.get("/api/wallet", **from_(ip))).status == 200
    assert len(await hits(admin, "?rule=api_key_misuse")) == 1
    assert "198.51.100.7" not in str(hit)


async def test_a_key_refused_again_and_again_throttles_its_account(
    admin: ApiClient, make_client: Any
):
    await set_rule(
        admin, "api_key_misuse", action="rate_limit", window_minutes=10, refusal_threshold=3
    )
    owner = await member(make_client, "prober@example.com")
    prober = await make_client()
    prober.use_key(await make_key(owner, ["read"]))
    for _ in range(3):  # a read-only key trying to write
        refused = await prober.post("/api/conversations", {})
        assert refused.status == 403

    hit = await hit_of(admin, "api_key_misuse")
    assert hit["action_taken"] == "rate_limited"
    evidence = hit["evidence"]
    assert evidence["signal"] == "many refusals" and evidence["refusals_in_window"] == 3
    assert evidence["last_status"] == 403 and evidence["last_code"] == "insufficient_scope"

    # The account's generation requests wait, whatever the credential.
    throttled = await ask(owner)
    assert throttled.status == 429
    assert (await throttled.json())["error"]["code"] == "abuse_throttled"
    assert 0 < int(throttled.headers["Retry-After"]) <= 600


async def test_the_rules_can_be_switched_off(admin: ApiClient):
    await set_rule(admin, "credit_drain", threshold=1, enabled=False)
    await answered(admin)
    await answered(admin)
    assert await hits(admin, "?rule=credit_drain") == []


async def test_the_rules_page_sets_the_new_rules_thresholds(admin: ApiClient):
    page = await (await admin.get("/admin/abuse/rules")).text()
    assert "Credits one account may spend" in page
    assert "Content-filter refusals of one account" in page
    assert "Networks one API key may be used from" in page

    form = {"enabled": "on", "action": "rate_limit", "threshold": "250000", "window_minutes": "15"}
    saved = await admin.post("/admin/abuse/rules/credit_drain", data=form, allow_redirects=False)
    assert saved.status == 303, await saved.text()
    rules = {r["rule"]: r for r in (await admin.get_json("/api/admin/abuse/rules"))["rules"]}
    drain = rules["credit_drain"]
    assert (drain["action"], drain["threshold"], drain["window_minutes"]) == (
        "rate_limit",
        250_000,
        15,
    )

    bad = {**form, "threshold": "5", "refusal_threshold": "0"}
    refused = await admin.post("/admin/abuse/rules/api_key_misuse", data=bad)
    assert refused.status == 422
    assert 'id="api_key_misuse-refusals"' in (text := await refused.text())
    assert 'aria-invalid="true"' in text
    rules = {r["rule"]: r for r in (await admin.get_json("/api/admin/abuse/rules"))["rules"]}
    assert rules["api_key_misuse"]["threshold"] == 5 and rules["api_key_misuse"]["action"] == "none"
