"""multinotes-paydemo: in the console as a billing backend, a checkout URL, and a signed webhook
that credits the wallet once; its routes answer 404 while the plugin is switched off."""

from __future__ import annotations

import json

import aiohttp
import multinotes_paydemo

from multinotes.testing import ApiClient, plugin_client

SECRET = "paydemo-webhook-secret-0123"


def signed(payment: dict[str, object], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """The webhook the payment service would send: the raw body and its signature header."""
    body = json.dumps(payment).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Paydemo-Signature": multinotes_paydemo.sign(secret, body),
    }
    return body, headers


async def deliver(api: ApiClient, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """Post the webhook as the payment service does: from outside, with no session cookie."""
    async with aiohttp.ClientSession() as outsider:
        url = api.client.make_url("/api/plugins/paydemo/webhook")
        async with outsider.post(url, data=body, headers=headers) as response:
            return response.status, await response.text()


async def test_a_paid_checkout_credits_the_wallet_once(tmp_path):
    async with plugin_client(tmp_path, [("paydemo", multinotes_paydemo)]) as api:
        await api.register_admin()
        [plugin] = await api.get_json("/api/admin/plugins")
        assert (plugin["name"], plugin["kinds"]) == ("paydemo", ["billing"])
        response = await api.patch(
            "/api/admin/plugins/paydemo", {"settings": {"webhook_secret": SECRET}}
        )
        assert response.status == 200, await response.text()
        assert SECRET not in await response.text()

        started = await multinotes_paydemo.BACKEND.create_checkout(
            user_id=api.user["id"],
            plan_id="starter",
            amount_cents=500,
            currency="usd",
            config=multinotes_paydemo.PaydemoSettings(),
        )
        assert started.url.startswith("https://pay.paydemo.example/checkout?reference=paydemo-")

        before = (await api.get_json("/api/wallet"))["balance"]
        payment = {
            "payment_id": "pay_1",
            "status": "paid",
            "user_id": api.user["id"],
            "amount_cents": 500,
        }
        body, headers = signed(payment)
        for _ in range(2):  # delivered twice, credited once
            status, text = await deliver(api, body, headers)
            assert status == 200, text
        assert (await api.get_json("/api/wallet"))["balance"] == before + 500_000

        body, headers = signed(payment, secret="not-the-secret")
        assert (await deliver(api, body, headers))[0] == 403


async def test_its_routes_vanish_while_it_is_switched_off(tmp_path):
    async with plugin_client(tmp_path, [("paydemo", multinotes_paydemo)]) as api:
        await api.register_admin()
        await api.patch("/api/admin/plugins/paydemo", {"enabled": False})
        body, headers = signed({"payment_id": "p", "status": "paid"})
        assert (await deliver(api, body, headers))[0] == 404
        await api.patch("/api/admin/plugins/paydemo", {"enabled": True})
        assert (await deliver(api, body, headers))[0] == 403  # back, and still checking signatures
