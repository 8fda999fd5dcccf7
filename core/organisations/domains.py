"""Domain auto-join: an organisation claims email domains, and whoever verifies an address on
a verified one joins it (policy "join") or is offered to (policy "offer": the offer shows on
their organisations page and as a notification, to accept or decline).

A claim is proved by a DNS TXT record ``multinotes-verification=<token>`` on the domain itself,
looked up by ``app[TXT_RESOLVER]`` (dnspython's resolver; a test double in tests), or set
directly by an instance administrator. Only one organisation can hold a verified domain, and
public mail domains (gmail.com, outlook.com, ...) cannot be claimed at all: everyone has an
address there.

Identity does not call this module: it publishes ``account.email_verified`` and ``subscribe``
reacts, so joining never runs inside the verification's transaction.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiohttp import web
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from multinotes.db import Database, new_id, rows_affected, utcnow
from multinotes.domain_events import EMAIL_VERIFIED, DomainEvent, EventBus
from multinotes.errors import Conflict, Invalid, NotFound
from multinotes.identity.models import User
from multinotes.keys import DB
from multinotes.organisations import seats
from multinotes.organisations.models import (
    JOIN_POLICIES,
    Organisation,
    OrganisationDomain,
    OrganisationJoinOffer,
    OrganisationMember,
)
from multinotes.sharing.access import OrganisationAccess
from multinotes.sharing.notifications import notify

log = structlog.get_logger(__name__)

TXT_PREFIX = "multinotes-verification="
#: Mail providers anyone can get an address at: claiming one would pull strangers in.
PUBLIC_EMAIL_DOMAINS = frozenset(
    {
        "aol.com",
        "gmail.com",
        "googlemail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "hey.com",
        "hotmail.com",
        "hotmail.co.uk",
        "icloud.com",
        "live.com",
        "mac.com",
        "mail.com",
        "mail.ru",
        "me.com",
        "msn.com",
        "outlook.com",
        "pm.me",
        "proton.me",
        "protonmail.com",
        "qq.com",
        "tutanota.com",
        "web.de",
        "yahoo.com",
        "yahoo.co.uk",
        "yandex.com",
        "yandex.ru",
        "zoho.com",
    }
)
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class TxtResolver(Protocol):
    """Looks up a domain's TXT records: each record's text, or [] when there are none or the
    lookup failed (a failure reads as "the record is not there yet")."""

    async def txt(self, domain: str) -> list[str]: ...


class DnsTxtResolver:
    """The system's DNS, through dnspython's asyncio resolver (a dependency of email-validator,
    which the app already needs)."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    async def txt(self, domain: str) -> list[str]:
        import dns.asyncresolver
        import dns.exception

        try:
            answer = await dns.asyncresolver.resolve(domain, "TXT", lifetime=self.timeout)
        except dns.exception.DNSException:
            return []
        return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


TXT_RESOLVER = web.AppKey("txt_resolver", TxtResolver)


@dataclass(frozen=True)
class Offer:
    id: str
    organisation_id: str
    organisation_name: str
    domain: str
    created_at: Any


def normalize_domain(text: str) -> str:
    """A claimable domain in lower case (IDNA for non-ASCII), or ``Invalid`` naming ``domain``."""
    domain = text.strip().lower().rstrip(".")
    if domain.startswith("@"):
        domain = domain[1:]
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise Invalid(
            "That is not a domain name.", fields={"domain": "not a domain name"}
        ) from None
    labels = domain.split(".")
    if len(domain) > 253 or len(labels) < 2 or not all(_LABEL.match(part) for part in labels):
        raise Invalid(
            "That is not a domain name: give the part after @, like example.com.",
            fields={"domain": "not a domain name"},
        )
    if labels[-1].isdigit():
        raise Invalid("Give a domain name, not an address.", fields={"domain": "not a domain"})
    if domain in PUBLIC_EMAIL_DOMAINS:
        raise Invalid(
            f"{domain} is a public mail provider: anyone can have an address there, so it "
            "cannot be claimed.",
            code="public_domain",
            fields={"domain": "a public mail provider"},
        )
    return domain


def txt_record(row: OrganisationDomain) -> str:
    return TXT_PREFIX + row.token


async def list_domains(db: Database, who: OrganisationAccess) -> list[OrganisationDomain]:
    who.require("admin", "see the organisation's domains")
    async with db.read() as session:
        rows = await session.scalars(
            select(OrganisationDomain)
            .where(OrganisationDomain.organisation_id == who.organisation_id)
            .order_by(OrganisationDomain.domain)
        )
        return list(rows)


async def _taken_elsewhere(db: Database, organisation_id: str, domain: str) -> bool:
    async with db.read() as session:
        holder = await session.scalar(
            select(OrganisationDomain.organisation_id).where(
                OrganisationDomain.verified_domain == domain
            )
        )
    return holder is not None and holder != organisation_id


def _taken(domain: str) -> Conflict:
    return Conflict(
        f"{domain} belongs to another organisation.",
        code="domain_taken",
        fields={"domain": "verified by another organisation"},
    )


async def claim(db: Database, who: OrganisationAccess, text: str) -> OrganisationDomain:
    """Claim a domain (owner and admins): it waits for its TXT record."""
    who.require("admin", "claim domains")
    return await _claim(db, who.organisation_id, who.user_id, text, verified_by=None)


async def set_verified(
    db: Database, organisation_id: str, text: str, by: str
) -> OrganisationDomain:
    """An instance administrator gives the organisation a domain, verified at once (no DNS)."""
    async with db.read() as session:
        if await session.get(Organisation, organisation_id) is None:
            raise NotFound("No such organisation.")
    return await _claim(db, organisation_id, by, text, verified_by="admin")


async def _claim(
    db: Database, organisation_id: str, user_id: str, text: str, *, verified_by: str | None
) -> OrganisationDomain:
    domain = normalize_domain(text)
    if await _taken_elsewhere(db, organisation_id, domain):
        raise _taken(domain)
    now = utcnow()
    try:
        async with db.transaction() as session:
            existing = await session.scalar(
                select(OrganisationDomain).where(
                    OrganisationDomain.organisation_id == organisation_id,
                    OrganisationDomain.domain == domain,
                )
            )
            if existing is not None and verified_by is None:
                raise Conflict(
                    f"You claimed {domain} already.",
                    code="already_claimed",
                    fields={"domain": "claimed already"},
                )
            row = existing or OrganisationDomain(
                id=new_id(),
                organisation_id=organisation_id,
                domain=domain,
                token=secrets.token_urlsafe(24),
                created_by=user_id,
                created_at=now,
            )
            if verified_by is not None and row.verified_at is None:
                row.verified_domain = domain
                row.verified_by = verified_by
                row.verified_at = now
            if existing is None:
                session.add(row)
    except IntegrityError:
        raise _taken(domain) from None
    return row


async def _own_domain(db: Database, who: OrganisationAccess, domain_id: str) -> OrganisationDomain:
    async with db.read() as session:
        row = await session.scalar(
            select(OrganisationDomain).where(
                OrganisationDomain.id == domain_id,
                OrganisationDomain.organisation_id == who.organisation_id,
            )
        )
    if row is None:
        raise NotFound("No such domain.")
    return row


async def verify(
    app: web.Application, who: OrganisationAccess, domain_id: str
) -> OrganisationDomain:
    """Look for the claim's TXT record now; found, the domain is the organisation's."""
    who.require("admin", "verify domains")
    db = app[DB]
    row = await _own_domain(db, who, domain_id)
    if row.verified_at is not None:
        return row
    if await _taken_elsewhere(db, who.organisation_id, row.domain):
        raise _taken(row.domain)
    records = await app[TXT_RESOLVER].txt(row.domain)
    if txt_record(row) not in (record.strip() for record in records):
        raise Conflict(
            f'No TXT record "{txt_record(row)}" on {row.domain} yet. Add it at your DNS '
            "provider, wait for it to appear, and verify again.",
            code="dns_record_missing",
            fields={"domain": "TXT record not found"},
        )
    now = utcnow()
    try:
        async with db.transaction() as session:
            await session.execute(
                update(OrganisationDomain)
                .where(OrganisationDomain.id == row.id)
                .values(verified_domain=row.domain, verified_by="dns", verified_at=now)
            )
    except IntegrityError:
        raise _taken(row.domain) from None
    row.verified_domain, row.verified_by, row.verified_at = row.domain, "dns", now
    return row


async def remove(db: Database, who: OrganisationAccess, domain_id: str) -> OrganisationDomain:
    """Give a domain up: nobody joins through it any more (members stay)."""
    who.require("admin", "remove domains")
    row = await _own_domain(db, who, domain_id)
    async with db.transaction() as session:
        await session.execute(delete(OrganisationDomain).where(OrganisationDomain.id == row.id))
    return row


async def set_join_policy(db: Database, who: OrganisationAccess, policy: str) -> None:
    who.require("admin", "choose how people on its domains join")
    if policy not in JOIN_POLICIES:
        raise Invalid(fields={"join_policy": "join or offer"})
    async with db.transaction() as session:
        await session.execute(
            update(Organisation)
            .where(Organisation.id == who.organisation_id)
            .values(join_policy=policy)
        )


# -- people on a claimed domain -------------------------------------------------------------------


async def on_email_verified(app: web.Application, event: DomainEvent) -> None:
    """Someone verified an address: bring them into the organisation holding its domain."""
    if event.user_id is not None:
        await admit(app[DB], event.user_id)


async def admit(db: Database, user_id: str) -> str | None:
    """Join (or offer to join) the organisation holding the verified domain of ``user_id``'s
    address; returns "joined", "offered" or None (no such organisation, a member already, or
    offered before). The address is read again: the event only says a verification happened."""
    async with db.read() as session:
        user = await session.get(User, user_id)
        if user is None or user.email_verified_at is None or not user.is_active:
            return None
        domain = user.email.rpartition("@")[2].lower()
        row = (
            await session.execute(
                select(Organisation)
                .join(OrganisationDomain, OrganisationDomain.organisation_id == Organisation.id)
                .where(OrganisationDomain.verified_domain == domain)
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        member = await session.scalar(
            select(OrganisationMember.id).where(
                OrganisationMember.organisation_id == row.id,
                OrganisationMember.user_id == user_id,
            )
        )
        if member is not None:
            return None
    organisation: Organisation = row
    now = utcnow()
    try:
        async with db.transaction() as session:
            # A full organisation (every seat it bought taken) offers instead of joining.
            full = False
            try:
                await seats.require_free_seat_in(session, organisation.id, invitations=False)
            except Conflict:
                full = True
            if organisation.join_policy == "join" and not full:
                session.add(
                    OrganisationMember(
                        organisation_id=organisation.id,
                        user_id=user_id,
                        role="member",
                        joined_at=now,
                    )
                )
                title = f"You joined {organisation.name}"
                text = f"Your address on {domain} made you a member of {organisation.name}."
            else:
                session.add(
                    OrganisationJoinOffer(
                        id=new_id(),
                        organisation_id=organisation.id,
                        user_id=user_id,
                        domain=domain,
                        status="pending",
                        created_at=now,
                    )
                )
                title = f"Join {organisation.name}?"
                text = f"{organisation.name} invites everyone with an address on {domain}."
            notify(
                session,
                user_id=user_id,
                kind="organisation",
                actor_id=None,
                actor_name=organisation.name,
                object_type="organisation",
                object_id=organisation.id,
                title=title,
                url=(
                    f"/organisations/{organisation.id}"
                    if organisation.join_policy == "join"
                    else "/organisations"
                ),
                text=text,
            )
    except IntegrityError:
        return None  # joined meanwhile, or offered before (a declined offer is not repeated)
    log.info(
        "organisation_domain_admitted",
        organisation_id=organisation.id,
        user_id=user_id,
        policy=organisation.join_policy,
    )
    return "joined" if organisation.join_policy == "join" else "offered"


async def pending_offers(db: Database, user_id: str) -> list[Offer]:
    async with db.read() as session:
        rows = await session.execute(
            select(OrganisationJoinOffer, Organisation.name)
            .join(Organisation, Organisation.id == OrganisationJoinOffer.organisation_id)
            .where(
                OrganisationJoinOffer.user_id == user_id,
                OrganisationJoinOffer.status == "pending",
            )
            .order_by(OrganisationJoinOffer.created_at, OrganisationJoinOffer.id)
        )
        return [
            Offer(o.id, o.organisation_id, name, o.domain, o.created_at) for o, name in rows.all()
        ]


async def decide_offer(db: Database, user_id: str, offer_id: str, accept: bool) -> Organisation:
    """Accept (become a member) or decline one of your pending offers."""
    async with db.read() as session:
        row = (
            await session.execute(
                select(OrganisationJoinOffer, Organisation)
                .join(Organisation, Organisation.id == OrganisationJoinOffer.organisation_id)
                .where(
                    OrganisationJoinOffer.id == offer_id,
                    OrganisationJoinOffer.user_id == user_id,
                    OrganisationJoinOffer.status == "pending",
                )
            )
        ).one_or_none()
    if row is None:
        raise NotFound("No such offer.")
    offer, organisation = row
    now = utcnow()
    try:
        async with db.transaction() as session:
            decided = await session.execute(
                update(OrganisationJoinOffer)
                .where(
                    OrganisationJoinOffer.id == offer.id,
                    OrganisationJoinOffer.status == "pending",
                )
                .values(status="accepted" if accept else "declined", decided_at=now)
            )
            if rows_affected(decided) != 1:
                raise NotFound("No such offer.")
            if accept:
                await seats.require_free_seat_in(session, organisation.id, invitations=False)
                session.add(
                    OrganisationMember(
                        organisation_id=organisation.id,
                        user_id=user_id,
                        role="member",
                        joined_at=now,
                    )
                )
    except IntegrityError:
        raise Conflict("You are a member already.", code="already_member") from None
    return organisation


def subscribe(bus: EventBus) -> None:
    bus.subscribe(EMAIL_VERIFIED, on_email_verified)
