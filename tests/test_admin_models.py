"""The admin's side of the model catalog: switch single models off, override prices, set a
markup, test the connection — and what users see and pay as a result."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes import hookimpl
from multinotes.errors import ProviderUnavailable
from multinotes.testing import ApiClient
from tests.support.scripted_provider import (
    Script,
    ScriptedModel,
    ScriptedProvider,
    scripted_plugins,
)
from tests.support.sse import by_model, parse_sse

A, B, DOWN = "script/alpha", "script/beta", "down/gamma"


class DownProvider(ScriptedProvider):
    provider_id = "down"
    name = "Downstream"

    async def check(self, config: Any) -> str:
        raise ProviderUnavailable("Downstream is not answering.")


class DownPlugin:
    def __init__(self, *models: Any) -> None:
        self.provider = DownProvider(list(models))

    @hookimpl
    def register_providers(self, register: Any) -> None:
        register(self.provider)


@pytest.fixture
def scripts():
    return {A: Script(chunks=["a", "b", "c"]), B: Script(chunks=["x", "y", "z"])}


@pytest.fixture
def plugins(scripts):
    return [
        *scripted_plugins(scripts, context_window=1000, max_output=100),
        ("down", DownPlugin(ScriptedModel(DOWN, Script()))),
    ]


async def models(api: ApiClient, path: str = "/api/models") -> dict[str, dict]:
    return {m["id"]: m for m in await api.get_json(path)}


async def generate(api: ApiClient, model: str) -> tuple[int, Any]:
    """One prompt ("Hi": 10 input tokens as scripted, 3 output tokens); the model's cost or
    the HTTP error."""
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]
    response = await api.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [model]}
    )
    if response.status != 200:
        return response.status, await response.json()
    done = by_model(parse_sse(await response.text()))[model][-1][1]
    return 200, done["cost"]


async def patch(api: ApiClient, model: str, body: dict) -> dict:
    response = await api.patch(f"/api/admin/models/{model}", body)
    data = await response.json()
    assert response.status == 200, data
    return data


async def test_a_disabled_model_leaves_the_catalog_and_cannot_be_used(user: ApiClient, scripts):
    assert (await generate(user, A))[0] == 200
    updated = await patch(user, A, {"enabled": False})
    assert updated["enabled"] is False and updated["available"] is False
    assert A not in await models(user)
    assert (await models(user, "/api/admin/models"))[A]["enabled"] is False

    calls = scripts[A].calls
    status, body = await generate(user, A)
    assert status == 422
    assert "unknown or disabled" in body["error"]["fields"]["models.0"]
    assert scripts[A].calls == calls

    await patch(user, A, {"enabled": True})
    assert A in await models(user)
    assert (await generate(user, A))[0] == 200


async def test_price_overrides_and_markup_set_the_price_and_the_charge(user: ApiClient):
    # Provider prices: 1 credit per input token, 2 per output token.
    assert await generate(user, A) == (200, 10 + 2 * 3)

    updated = await patch(user, A, {"pricing": {"output_per_million": 4_000_000}})
    assert updated["pricing"]["output_per_million"] == 4_000_000
    assert updated["base_pricing"]["output_per_million"] == 4_000_000
    assert updated["pricing"]["input_per_million"] == 1_000_000  # untouched
    assert (await models(user))[A]["pricing"]["output_per_million"] == 4_000_000
    assert await generate(user, A) == (200, 10 + 4 * 3)

    updated = await patch(user, A, {"markup_percent": 50})
    assert updated["markup_percent"] == 50
    assert updated["pricing"]["input_per_million"] == 1_500_000
    assert updated["pricing"]["output_per_million"] == 6_000_000
    assert await generate(user, A) == (200, 15 + 6 * 3)

    # The global markup applies to models without their own.
    response = await user.patch("/api/admin/pricing", {"markup_percent": 100})
    assert (await response.json())["markup_percent"] == 100
    listed = await models(user)
    assert listed[B]["pricing"]["output_per_million"] == 4_000_000
    assert listed[A]["pricing"]["output_per_million"] == 6_000_000
    assert await generate(user, B) == (200, 20 + 4 * 3)


async def test_reset_returns_a_model_to_the_provider_prices_and_the_global_markup(
    user: ApiClient,
):
    await user.patch("/api/admin/pricing", {"markup_percent": 10})
    await patch(user, A, {"pricing": {"input_per_million": 9}, "markup_percent": 0})
    reset = await patch(user, A, {"reset": True})
    assert reset["base_pricing"]["input_per_million"] == 1_000_000
    assert reset["markup_percent"] == 10
    assert reset["pricing"]["input_per_million"] == pytest.approx(1_100_000)
    assert reset["enabled"] is True


async def test_invalid_price_changes_are_refused(user: ApiClient):
    before = (await models(user, "/api/admin/models"))[A]
    for body, field in (
        ({"pricing": {"input_per_million": -1}}, "pricing.input_per_million"),
        ({"markup_percent": -150}, "markup_percent"),
        ({"pricing": {"per_token": 1}}, "pricing.per_token"),
    ):
        response = await user.patch(f"/api/admin/models/{A}", body)
        assert response.status == 422
        assert field in (await response.json())["error"]["fields"]
    assert (await models(user, "/api/admin/models"))[A] == before
    assert (await user.patch("/api/admin/models/nope/model", {"enabled": False})).status == 404


async def test_test_connection_reports_result_and_latency(user: ApiClient):
    response = await user.post("/api/admin/models/test", {"model": A})
    ok = await response.json()
    assert response.status == 200, ok
    assert ok["ok"] is True and ok["provider"] == "script"
    assert ok["result"] == "2 model(s) available" and ok["latency_ms"] >= 0

    failed = await (await user.post("/api/admin/models/test", {"model": DOWN})).json()
    assert failed["ok"] is False and failed["result"] == "Downstream is not answering."
    assert failed["latency_ms"] >= 0

    assert (await user.post("/api/admin/models/test", {"model": "nope/x"})).status == 404


async def test_only_admins_manage_models(admin: ApiClient, make_client):
    member = await make_client()
    await member.register_and_login("member@example.com")
    assert (await member.get("/api/admin/models")).status == 403
    assert (await member.patch(f"/api/admin/models/{A}", {"enabled": False})).status == 403
    assert (await member.post("/api/admin/models/test", {"model": A})).status == 403
    assert (await member.patch("/api/admin/pricing", {"markup_percent": 1})).status == 403
    assert (await member.get("/admin/models", allow_redirects=False)).status == 403
    assert A in await models(member)


async def test_the_console_page_switches_prices_and_tests_without_javascript(user: ApiClient):
    page = await user.get("/admin/models")
    text = await page.text()
    assert page.status == 200 and 'role="switch"' in text and "Downstream" in text

    response = await user.post(
        "/admin/models/toggle", data={"model": B, "enabled": "false"}, allow_redirects=False
    )
    assert response.status == 303
    assert B not in await models(user)
    row = await user.post(
        "/admin/models/toggle", data={"model": B, "enabled": "true"}, headers={"HX-Request": "true"}
    )
    assert row.status == 200 and 'aria-checked="true"' in await row.text()
    assert B in await models(user)

    form = {"model": A, "output_per_million": "3000000", "markup_percent": "", "action": "save"}
    response = await user.post("/admin/models/prices", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/admin/models/{A}"
    assert (await models(user))[A]["pricing"]["output_per_million"] == 3_000_000
    detail = await (await user.get(f"/admin/models/{A}")).text()
    assert "Prices of Alpha saved." in detail

    bad = await user.post("/admin/models/prices", data={**form, "input_per_million": "-4"})
    assert bad.status == 422 and "Nothing was saved" in await bad.text()
    response = await user.post(
        "/admin/models/prices", data={"model": A, "action": "reset"}, allow_redirects=False
    )
    assert response.status == 303
    assert (await models(user))[A]["pricing"]["output_per_million"] == 2_000_000

    tested = await user.post(
        "/admin/models/test", data={"model": DOWN}, headers={"HX-Request": "true"}
    )
    fragment = await tested.text()
    assert "failed" in fragment and "Downstream is not answering." in fragment and " ms" in fragment

    response = await user.post(
        "/admin/pricing",
        data={"markup_percent": "5", "trial_credits": "777", "low_balance_credits": "50"},
        allow_redirects=False,
    )
    assert response.status == 303
    pricing = await user.get_json("/api/admin/pricing")
    assert pricing == {"markup_percent": 5, "trial_credits": 777, "low_balance_credits": 50}
    response = await user.post("/admin/pricing", data={"trial_credits": "-1"})
    assert response.status == 422
    assert (await user.get_json("/api/admin/pricing"))["trial_credits"] == 777


async def test_a_generation_prices_only_the_models_it_asks_for(
    user: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    """Providers list hundreds of models; pricing each of them (overrides, markup, status) on
    every prompt cost ~10 µs a model before the first token (issue #17)."""
    from multinotes.catalog import Catalog

    priced: list[str] = []
    price = Catalog._entry

    def counting(self: Catalog, model: Any, *args: Any) -> Any:
        priced.append(model.model_id)
        return price(self, model, *args)

    conversation = (await (await user.post("/api/conversations", {})).json())["id"]
    monkeypatch.setattr(Catalog, "_entry", counting)
    response = await user.post(
        f"/api/conversations/{conversation}/messages", {"content": "Hi", "models": [B]}
    )
    assert response.status == 200
    await response.read()
    assert priced == [B]
