"""What the organisations API and the pages' forms take and give."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field


def _not_blank(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be empty")
    return value


Name = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_not_blank)]
AssignableRole = Literal["admin", "member"]
Month = Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (UTC)")]


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name


class OrganisationOut(BaseModel):
    id: str
    name: str
    role: Literal["owner", "admin", "member"] = Field(description="Your role in it.")
    owner_id: str
    created_at: str
    seats: int | None = Field(
        default=None,
        description="Seats bought with an organisation plan (they cap members and pending "
        "invitations); null: none bought, no cap.",
    )


class OrganisationList(BaseModel):
    organisations: list[OrganisationOut]


class WalletOut(BaseModel):
    balance: int
    reserved: int
    available: int


class OrganisationDetail(OrganisationOut):
    wallet: WalletOut
    monthly_limit: int | None = Field(description="Your monthly credit limit here, if any.")
    spent_this_month: int = Field(description="Credits you spent from its wallet this month.")


class MemberOut(BaseModel):
    user_id: str
    name: str
    email: str
    role: Literal["owner", "admin", "member"]
    monthly_limit: int | None
    joined_at: str


class MemberList(BaseModel):
    members: list[MemberOut]


class MemberPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: AssignableRole | None = Field(default=None, description="The owner only.")
    monthly_limit: int | None = Field(
        default=None,
        ge=0,
        le=10**12,
        description="Credits per calendar month (UTC); null removes the limit.",
    )


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=32, description="The member to own it.")


class InvitationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(max_length=320)
    role: AssignableRole = "member"


class InvitationOut(BaseModel):
    id: str
    email: str
    role: AssignableRole
    status: Literal["pending", "accepted", "revoked"]
    created_at: str
    sent_at: str | None
    expires_at: str


class InvitationList(BaseModel):
    invitations: list[InvitationOut]


class AcceptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=200)


class FundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(gt=0, le=10**12, description="Credits moved from your own wallet.")
    reference: str | None = Field(
        default=None,
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Makes the transfer idempotent: a repeat with the same reference moves "
        "nothing.",
    )


class CreditsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(description="Positive grants, negative deducts (never below zero).")
    reason: str = Field(min_length=1, max_length=500)


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    month: Month | None = None


class MemberUsageOut(BaseModel):
    user_id: str
    name: str
    email: str
    role: str
    credits: int
    answers: int
    monthly_limit: int | None


class UsageOut(BaseModel):
    month: str
    total: int
    members: list[MemberUsageOut]


# -- email domains and offers to join ----------------------------------------------------------

JoinPolicy = Literal["join", "offer"]


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(
        min_length=1, max_length=253, description="The part after @, like example.com."
    )


class DomainOut(BaseModel):
    id: str
    domain: str
    status: Literal["pending", "verified"]
    txt_record: str = Field(
        description="Add this TXT record on the domain, then verify (pending claims)."
    )
    verified_by: Literal["dns", "admin"] | None
    verified_at: str | None
    created_at: str


class DomainList(BaseModel):
    join_policy: JoinPolicy = Field(
        description="join: people who verify an address on a verified domain become members "
        "at once; offer: they are asked and may decline."
    )
    domains: list[DomainOut]


class JoinPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    join_policy: JoinPolicy


class OfferOut(BaseModel):
    id: str
    organisation_id: str
    organisation_name: str
    domain: str
    created_at: str


class OfferList(BaseModel):
    offers: list[OfferOut]


# -- storage -----------------------------------------------------------------------------------


class StorageOut(BaseModel):
    used: int = Field(description="Bytes of the files in the organisation's space.")
    quota: int = Field(description="Bytes its space may hold.")
    available: int


class StorageQuotaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quota_bytes: int | None = Field(
        ge=0, le=10**15, description="Bytes; null: the install's default for organisations."
    )
