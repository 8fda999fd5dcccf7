"""Tables of organisations: the organisation, its members (with their role and optional monthly
credit limit), pending invitations, the email domains it claims and the offers to join it made
to people who verified an address on one of them.

Membership is read from the database on every request (``multinotes.sharing.access``), so a
removed member loses access at the next request. An invitation stores only the SHA-256 of its
link's token; sending it again replaces the token, so an older link stops working.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import Base, UTCDateTime, new_id, utcnow

ROLES = ("owner", "admin", "member")
#: Roles an invitation or a role change may give (ownership is only ever transferred).
ASSIGNABLE_ROLES = ("admin", "member")


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    #: The one owner (also a member row with role "owner"); kept in step by transfers.
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: What happens to someone who verifies an address on one of its domains: "join" (they
    #: become a member at once) or "offer" (they are asked, and may decline).
    join_policy: Mapped[str] = mapped_column(String(8), default="offer", server_default="offer")
    #: Bytes its files may take (set by an administrator); None: the install's default.
    storage_quota_bytes: Mapped[int | None] = mapped_column(BigInteger)
    #: Seats bought with an organisation plan: at most this many members (and pending
    #: invitations); None: no plan bought, no cap.
    seats: Mapped[int | None] = mapped_column(Integer)


class OrganisationMember(Base):
    __tablename__ = "organisation_members"
    __table_args__ = (
        UniqueConstraint("organisation_id", "user_id", name="uq_organisation_members_org_user"),
        Index("ix_organisation_members_user_id", "user_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16), default="member")
    #: Credits this member may spend from the organisation's wallet per calendar month (UTC);
    #: None: no limit beyond the wallet itself.
    monthly_limit: Mapped[int | None] = mapped_column(BigInteger)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrganisationInvitation(Base):
    __tablename__ = "organisation_invitations"
    __table_args__ = (Index("ix_organisation_invitations_org_email", "organisation_id", "email"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), default="member")
    invited_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    #: SHA-256 of the link's token (None until the first mail is sent).
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: pending, accepted or revoked.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


JOIN_POLICIES = ("join", "offer")


class OrganisationDomain(Base):
    """An email domain an organisation claims. Claimed, it waits for the DNS TXT record
    ``multinotes-verification=<token>``; verified (by that record, or by an administrator), it
    brings people with an address on it in. ``verified_domain`` repeats ``domain`` once
    verified: its unique constraint lets several organisations claim a domain but only one
    prove it (NULLs do not collide, on SQLite and MySQL alike)."""

    __tablename__ = "organisation_domains"
    __table_args__ = (
        UniqueConstraint("organisation_id", "domain", name="uq_organisation_domains_org_domain"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(253))
    #: The value the TXT record must carry (not a secret: it proves control of the DNS zone).
    token: Mapped[str] = mapped_column(String(64))
    verified_domain: Mapped[str | None] = mapped_column(String(253), unique=True)
    #: "dns" or "admin".
    verified_by: Mapped[str | None] = mapped_column(String(8))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrganisationJoinOffer(Base):
    """An offer to join, made to someone who verified an address on a claimed domain of an
    organisation whose policy is "offer". One per person and organisation: a declined offer
    is not made again."""

    __tablename__ = "organisation_join_offers"
    __table_args__ = (
        UniqueConstraint("organisation_id", "user_id", name="uq_organisation_join_offers_org_user"),
        Index("ix_organisation_join_offers_user_status", "user_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(253))
    #: pending, accepted or declined.
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
