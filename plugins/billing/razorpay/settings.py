"""The Razorpay plugin's settings (Plugins console, or ``MULTINOTES_PLUGINS__RAZORPAY__*``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, SecretStr

DEFAULT_API_BASE = "https://api.razorpay.com"
DEFAULT_CHECKOUT_SCRIPT = "https://checkout.razorpay.com/v1/checkout.js"


class RazorpaySettings(BaseModel):
    key_id: str | None = Field(
        default=None,
        max_length=64,
        title="Key id",
        description="rzp_live_... from dashboard.razorpay.com → Account & Settings → API keys. "
        "Not a secret: the checkout shows it to the buyer's browser.",
    )
    key_secret: SecretStr | None = Field(
        default=None, title="Key secret", description="The secret of that key."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        title="Webhook secret",
        description="The secret you chose for the webhook "
        "<your site>/api/billing/razorpay/webhook.",
    )
    api_base: str = Field(
        default=DEFAULT_API_BASE,
        title="API base",
        description="Change only for a server that speaks Razorpay's API (tests, a proxy).",
    )
    checkout_script: str = Field(
        default=DEFAULT_CHECKOUT_SCRIPT,
        title="Checkout script",
        description="Razorpay's checkout.js. Change only together with the API base.",
    )


def secret(config: Any, name: str) -> str | None:
    value = getattr(config, name, None)
    return value.get_secret_value() if isinstance(value, SecretStr) else value
