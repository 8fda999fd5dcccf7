"""The billing API's and pages' request and response models, in one place: the JSON API
declares them on its endpoints, and the pages validate their forms and query strings with the
same models, so a page and its endpoint accept exactly the same input."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

CURRENCY = Field(pattern="^[A-Za-z]{3}$", description="ISO 4217 code, e.g. USD.")


class PlanIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    kind: Literal["credits", "storage", "organisation"] = Field(
        description="`organisation`: priced per seat, bought for an organisation (`credits` "
        "and `price` are per seat; the credits go to its wallet, the seats cap its members)."
    )
    credits: int | None = Field(default=None, ge=1, le=10**12)
    storage_bytes: int | None = Field(default=None, ge=1, le=10**15)
    price: int = Field(ge=1, le=10**10, description="In the currency's minor unit (cents).")
    currency: str = CURRENCY
    interval: Literal["once", "month", "year"] = "once"
    duration_days: int | None = Field(default=None, ge=1, le=3660)
    description: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _fits_kind(self) -> PlanIn:
        if self.kind in ("credits", "organisation") and self.credits is None:
            raise ValueError(f"credits: a {self.kind} plan needs its number of credits")
        if self.kind == "storage" and self.storage_bytes is None:
            raise ValueError("storage_bytes: a storage plan needs its storage limit")
        return self

    def plan_values(self) -> dict[str, Any]:
        """The columns of the new plan: the currency upper case, and only the amount its kind
        sells (a storage plan grants no credits; a credits plan sets no storage limit)."""
        values = self.model_dump()
        values["currency"] = values["currency"].upper()
        if self.kind == "storage":
            values["credits"] = 0
        else:
            values["storage_bytes"] = None
        return values


class PlanPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=120)
    credits: int | None = Field(default=None, ge=1, le=10**12)
    storage_bytes: int | None = Field(default=None, ge=1, le=10**15)
    price: int | None = Field(default=None, ge=1, le=10**10)
    duration_days: int | None = Field(default=None, ge=1, le=3660)
    description: str | None = Field(default=None, max_length=500)

    @field_validator("name", "credits", "storage_bytes", "price", "description")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Left out means "unchanged"; an explicit null would blank what the plan is sold as.
        if value is None:
            raise ValueError("Cannot be empty.")
        return value


class PlanOut(BaseModel):
    id: str
    name: str
    kind: str
    credits: int | None
    storage_bytes: int | None
    price: int
    currency: str
    interval: str
    duration_days: int | None
    description: str
    archived: bool


class CouponIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=2, max_length=40, pattern="^[A-Za-z0-9_-]+$")
    percent_off: int | None = Field(default=None, ge=1, le=100)
    amount_off: int | None = Field(default=None, ge=1, le=10**10)
    max_discount: int | None = Field(default=None, ge=1, le=10**10)
    min_order: int | None = Field(default=None, ge=1, le=10**10)
    bonus_credits: int = Field(default=0, ge=0, le=10**12)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    max_uses: int | None = Field(default=None, ge=1, le=10**9)
    max_uses_per_user: int | None = Field(default=None, ge=1, le=10**9)

    @model_validator(mode="after")
    def _one_discount(self) -> CouponIn:
        if (self.percent_off is None) == (self.amount_off is None):
            raise ValueError("percent_off: give exactly one of percent_off and amount_off")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at: must be after starts_at")
        return self


class CouponOut(BaseModel):
    id: str
    code: str
    percent_off: int | None
    amount_off: int | None
    max_discount: int | None
    min_order: int | None
    bonus_credits: int
    starts_at: datetime | None
    ends_at: datetime | None
    max_uses: int | None
    max_uses_per_user: int | None
    uses: int
    archived: bool


class QuoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan_id: str = Field(min_length=1, max_length=32)
    coupon_code: str | None = Field(default=None, max_length=40)
    org_id: str | None = Field(
        default=None,
        pattern=r"^[0-9A-Za-z_-]{1,32}$",
        description="An organisation plan: the organisation it is bought for (you are its owner "
        "or an admin). Other plans: leave out.",
    )
    seats: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="An organisation plan: how many seats (its price and credits are per seat; "
        "at least its members and pending invitations).",
    )


class QuoteOut(BaseModel):
    plan_id: str
    currency: str
    subtotal: int
    discount: int
    total: int
    credits: int
    bonus_credits: int
    coupon_code: str | None
    seats: int = Field(default=1, description="Seats bought (1 for a plan that is not per seat).")


class CheckoutIn(QuoteIn):
    backend: str | None = Field(default=None, max_length=64)


class CheckoutOut(BaseModel):
    order_id: str
    url: str


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)],
        Annotated[str, StringConstraints(max_length=512)],
    ] = Field(
        max_length=10,
        description="What the provider's checkout handed the page, as it handed it (Razorpay: "
        "razorpay_payment_id, razorpay_order_id or razorpay_subscription_id, "
        "razorpay_signature).",
    )


class OrderOut(BaseModel):
    id: str
    plan_id: str
    plan_name: str
    backend: str
    status: str
    subtotal: int
    discount: int
    total: int
    currency: str
    credits: int
    bonus_credits: int
    organisation_id: str | None = Field(
        default=None, description="An organisation plan's order: the organisation it is for."
    )
    seats: int | None = Field(default=None, description="An organisation plan's seats.")
    subscription_status: str | None = Field(
        description="Recurring plans: active, cancelling (ends with the period), cancelled, "
        "past_due (a renewal failed: credits stay until the period and its grace end)."
    )
    created_at: datetime
    paid_at: datetime | None


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)
    amount: int | None = Field(
        default=None,
        ge=1,
        le=10**10,
        description="How much to refund, in the currency's minor unit; left out: all that is "
        "left. A part takes back the same part of the order's credits (what is unspent).",
    )


class ManualPaymentIn(BaseModel):
    """An offline payment (a bank transfer) an administrator saw arrive for an order."""

    model_config = ConfigDict(extra="forbid")

    amount: int = Field(
        ge=1,
        le=10**10,
        description="What arrived, in the order currency's minor unit: the order's total.",
    )
    reference: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
    ] = Field(description="The bank's reference for the transfer (kept with the order).")
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)] = ""


class RefundOut(BaseModel):
    id: str
    amount: int = Field(description="Refunded by this refund, in minor units.")
    refunded_total: int = Field(description="The order's refunded money after this refund.")
    currency: str
    credits_due: int = Field(description="Credits this refund takes back, in proportion.")
    credits_taken: int = Field(description="What was still available to take back.")
    shortfall: int = Field(
        description="Credits already spent, so not taken back (the balance never goes below "
        "zero; there is no debt)."
    )
    provider_refund_id: str | None
    reason: str
    created_at: datetime


class UrlOut(BaseModel):
    url: str


class WebhookOut(BaseModel):
    received: bool
    outcome: str


#: What an order's ``status`` can be searched for (``expired``: a pending order past its time).
OrderStatusFilter = Literal["pending", "paid", "failed", "expired", "refunded", "disputed"]


class OrdersQuery(BaseModel):
    """The administrator's order search (the console's filters and the admin API's query)."""

    model_config = ConfigDict(extra="forbid")

    status: OrderStatusFilter | None = None
    user: str | None = Field(
        default=None, max_length=320, description="The buyer's user id, or part of their email."
    )
    plan_id: str | None = Field(default=None, max_length=32)
    coupon: str | None = Field(default=None, max_length=40, description="A coupon's code.")
    since: date | None = Field(default=None, description="Placed on or after this day (UTC).")
    until: date | None = Field(default=None, description="Placed on or before this day (UTC).")
    before: str | None = Field(default=None, max_length=32, description="`next_cursor`.")
    limit: int = Field(default=50, ge=1, le=200)

    @model_validator(mode="after")
    def _window(self) -> OrdersQuery:
        if self.since and self.until and self.until < self.since:
            raise ValueError("until: must not be before since")
        return self


class RevenueQuery(BaseModel):
    """Which figures the revenue page shows: one currency, by day (30 days) or month (12)."""

    model_config = ConfigDict(extra="forbid")

    currency: str | None = Field(default=None, pattern="^[A-Za-z]{3}$")
    by: Literal["day", "month"] = "day"
