"""Segments of users: who a targeted feature is for, by plan, organisation and sign-up date.

One set of rules for every feature that targets a part of the users (feature flags and
announcements): a ``Segment`` says which users it takes, ``traits_of``
reads what a user is in one short read, and ``Segment.matches`` decides without further I/O.
An empty segment takes everyone. Within a rule any listed value matches (plan A or plan B); a
user must pass every rule that is set (a plan listed *and* signed up after a date).

A user's plans are their own current credit plan and the current plan of every organisation
they are a member of (any role): a segment naming an organisation plan takes all its members,
and ``"none"`` takes only users with neither. An organisation's current plan is the plan of its
latest paid (not refunded) organisation order whose subscription has not been cancelled (a
one-off plan with a duration: until it runs out).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.billing.models import Order, Plan, PlanPeriod
from multinotes.db import Database, utcnow
from multinotes.errors import Invalid
from multinotes.identity.models import User
from multinotes.organisations.models import Organisation, OrganisationMember

#: In ``Segment.plans``: users without a current plan, neither their own credit plan (nothing
#: bought, or it expired) nor an organisation's plan through membership.
NO_PLAN = "none"


def _utc(value: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC (what the console's form says it is).
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC) if value is not None else None


def _distinct(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


Ids = Annotated[list[str], Field(max_length=100), AfterValidator(_distinct)]


class Segment(BaseModel):
    """Who is in: every rule that is set must hold (none set: everyone)."""

    model_config = ConfigDict(extra="forbid")

    plans: Ids = Field(
        default_factory=list,
        description=(
            f'Plan ids; "{NO_PLAN}" for users without a current plan. Any of them. A member '
            "of an organisation is on its organisation plan too."
        ),
    )
    organisations: Ids = Field(
        default_factory=list, description="Organisation ids: a member of any of them."
    )
    signed_up_after: Annotated[datetime | None, AfterValidator(_utc)] = Field(
        default=None, description="Accounts created at or after this time (UTC)."
    )
    signed_up_before: Annotated[datetime | None, AfterValidator(_utc)] = Field(
        default=None, description="Accounts created before this time (UTC)."
    )

    @field_validator("signed_up_before")
    @classmethod
    def _before_after_after(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        after = info.data.get("signed_up_after")
        if value is not None and after is not None and value <= after:
            raise ValueError("must be after signed_up_after")
        return value

    @property
    def everyone(self) -> bool:
        return not (
            self.plans or self.organisations or self.signed_up_after or self.signed_up_before
        )

    def matches(self, traits: Traits) -> bool:
        if self.plans and not traits.plans.intersection(self.plans):
            return False
        if self.organisations and not traits.organisations.intersection(self.organisations):
            return False
        if self.signed_up_after is not None and traits.signed_up_at < self.signed_up_after:
            return False
        return self.signed_up_before is None or traits.signed_up_at < self.signed_up_before


@dataclass(frozen=True)
class Traits:
    """What segments look at, about one user."""

    user_id: str
    email: str
    signed_up_at: datetime
    #: The current credit plan (None: none, or it expired).
    plan_id: str | None
    organisations: frozenset[str]
    #: The current plans of the organisations they are a member of.
    organisation_plans: frozenset[str] = frozenset()

    @property
    def plans(self) -> frozenset[str]:
        """Every plan they are on (``NO_PLAN`` alone when none)."""
        own = {self.plan_id} if self.plan_id else set()
        return frozenset(own | self.organisation_plans) or frozenset({NO_PLAN})


async def traits_of(db: Database, user_id: str) -> Traits | None:
    """``user_id``'s traits (None: no such user)."""
    now = utcnow()
    async with db.read() as session:
        user = await session.scalar(select(User).where(User.id == user_id))
        if user is None:
            return None
        period = await session.scalar(select(PlanPeriod).where(PlanPeriod.user_id == user_id))
        orgs = await session.scalars(
            select(OrganisationMember.organisation_id).where(OrganisationMember.user_id == user_id)
        )
        member_of = frozenset(orgs)
        org_plans = await _organisation_plans(session, member_of, now) if member_of else set()
    plan_id = None
    if (
        period is not None
        and period.plan_id
        and (period.expires_at is None or period.expires_at > now)
    ):
        plan_id = period.plan_id
    return Traits(
        user.id, user.email.lower(), user.created_at, plan_id, member_of, frozenset(org_plans)
    )


async def _organisation_plans(
    session: AsyncSession, organisations: frozenset[str], now: datetime
) -> set[str]:
    """The current plan of each of ``organisations`` that has one (the rule in the module's
    docstring), in one read."""
    rows = await session.execute(
        select(
            Order.organisation_id,
            Order.plan_id,
            Order.paid_at,
            Order.subscription_status,
            Plan.interval,
            Plan.duration_days,
        )
        .join(Plan, Plan.id == Order.plan_id)
        .where(
            Order.organisation_id.in_(organisations),
            Order.status == "paid",
            Plan.kind == "organisation",
        )
        .order_by(Order.paid_at.desc(), Order.id.desc())
    )
    latest: dict[str | None, str | None] = {}
    for org_id, plan_id, paid_at, subscription, interval, duration_days in rows:
        if org_id in latest:
            continue  # an older order: the latest one decides
        if interval != "once":
            current = subscription != "cancelled"
        else:
            paid = _utc(paid_at)
            current = duration_days is None or (
                paid is not None and paid + timedelta(days=duration_days) > now
            )
        latest[org_id] = plan_id if current else None
    return {plan for plan in latest.values() if plan}


async def check_exists(db: Database, segment: Segment, *, field: str = "segment") -> None:
    """422 naming the rule when a segment lists a plan or an organisation that does not exist
    (a typo would otherwise target nobody, silently)."""
    plans = [p for p in segment.plans if p != NO_PLAN]
    async with db.read() as session:
        known_plans = set(await session.scalars(select(Plan.id).where(Plan.id.in_(plans))))
        known_orgs = set(
            await session.scalars(
                select(Organisation.id).where(Organisation.id.in_(segment.organisations))
            )
        )
    errors: dict[str, str] = {}
    missing_plans = [p for p in plans if p not in known_plans]
    if missing_plans:
        errors[f"{field}.plans"] = "no such plan: " + ", ".join(missing_plans)
    missing_orgs = [o for o in segment.organisations if o not in known_orgs]
    if missing_orgs:
        errors[f"{field}.organisations"] = "no such organisation: " + ", ".join(missing_orgs)
    if errors:
        raise Invalid(fields=errors)


@dataclass(frozen=True)
class Choice:
    id: str
    label: str


async def choices(db: Database) -> tuple[list[Choice], list[Choice]]:
    """What a console form offers to target: the credit and organisation plans (with "no plan"
    first) and the organisations (by name, at most 500)."""
    async with db.read() as session:
        plans = list(
            await session.scalars(
                select(Plan)
                .where(Plan.kind.in_(("credits", "organisation")))
                .order_by(Plan.kind, Plan.price, Plan.id)
            )
        )
        orgs = list(
            await session.scalars(select(Organisation).order_by(Organisation.name).limit(500))
        )
    plan_choices = [Choice(NO_PLAN, "No current plan")]
    plan_choices += [
        Choice(
            p.id,
            p.name
            + (" (organisation plan)" if p.kind == "organisation" else "")
            + (" (archived)" if p.archived_at else ""),
        )
        for p in plans
    ]
    return plan_choices, [Choice(o.id, o.name) for o in orgs]
