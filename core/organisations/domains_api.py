"""Domain auto-join in the JSON API: an organisation's email domains under
``/api/orgs/{id}/domains`` (owner and admins: claim, verify by DNS TXT record, remove; the join
policy), an administrator's direct grant of a domain, and the offers to join a person received
(``/api/me/org-offers``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes import audit
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.organisations import domains, operations
from multinotes.organisations.api import organisation_out
from multinotes.organisations.models import Organisation, OrganisationDomain
from multinotes.organisations.schemas import (
    DomainIn,
    DomainList,
    DomainOut,
    JoinPolicyIn,
    OfferList,
    OrganisationOut,
)
from multinotes.sharing import access

routes = web.RouteTableDef()
TAGS = ["organisations"]


def domain_out(row: OrganisationDomain) -> dict[str, Any]:
    return {
        "id": row.id,
        "domain": row.domain,
        "status": "verified" if row.verified_at is not None else "pending",
        "txt_record": domains.txt_record(row),
        "verified_by": row.verified_by,
        "verified_at": row.verified_at.isoformat() if row.verified_at else None,
        "created_at": row.created_at.isoformat(),
    }


async def _membership(request: web.Request) -> access.OrganisationAccess:
    actor = require_user(request)
    return await access.organisation(request.app[DB], actor.user_id, request.match_info["id"])


async def _domain_list(request: web.Request, who: access.OrganisationAccess) -> dict[str, Any]:
    db = request.app[DB]
    rows = await domains.list_domains(db, who)
    async with db.read() as session:
        organisation = await session.get(Organisation, who.organisation_id)
    assert organisation is not None  # the membership was just read
    return {"join_policy": organisation.join_policy, "domains": [domain_out(r) for r in rows]}


@routes.get("/api/orgs/{id}/domains", name="api_org_domains")
@endpoint(access="user", response=DomainList, tags=TAGS, errors=[403, 404])
async def list_domains(request: web.Request) -> dict[str, Any]:
    """The email domains the organisation claims, verified or waiting for their DNS record,
    and what happens to people on them (owner and admins)."""
    return await _domain_list(request, await _membership(request))


@routes.post("/api/orgs/{id}/domains", name="api_org_domain_claim")
@endpoint(
    access="user",
    body=DomainIn,
    response=DomainOut,
    status=201,
    tags=TAGS,
    errors=[403, 404, 409],
)
async def claim_domain(request: web.Request, body: DomainIn) -> dict[str, Any]:
    """Claim an email domain (owner and admins). Add the TXT record it answers with
    (`multinotes-verification=...`) on the domain, then verify. Public mail providers
    (gmail.com, outlook.com, ...) are refused (422, code `public_domain`); a domain another
    organisation verified is 409 `domain_taken`."""
    who = await _membership(request)
    return domain_out(await operations.claim_domain(request, who, body.domain))


@routes.post("/api/orgs/{id}/domains/{domain_id}/verify", name="api_org_domain_verify")
@endpoint(access="user", response=DomainOut, tags=TAGS, errors=[403, 404, 409])
async def verify_domain(request: web.Request) -> dict[str, Any]:
    """Look the claim's TXT record up now: found, the domain is verified and people who verify
    an address on it from then on join (or are offered to). Not found yet: 409
    `dns_record_missing`."""
    who = await _membership(request)
    row = await operations.verify_domain(request, who, request.match_info["domain_id"])
    return domain_out(row)


@routes.delete("/api/orgs/{id}/domains/{domain_id}", name="api_org_domain_remove")
@endpoint(access="user", status=204, tags=TAGS, errors=[403, 404])
async def remove_domain(request: web.Request) -> None:
    """Give a domain up (owner and admins): nobody joins through it any more; members stay."""
    who = await _membership(request)
    await operations.remove_domain(request, who, request.match_info["domain_id"])


@routes.put("/api/orgs/{id}/join-policy", name="api_org_join_policy")
@endpoint(access="user", body=JoinPolicyIn, response=DomainList, tags=TAGS, errors=[403, 404])
async def set_join_policy(request: web.Request, body: JoinPolicyIn) -> dict[str, Any]:
    """`join`: people who verify an address on a verified domain become members at once;
    `offer` (the default): they are offered to join, and may decline (owner and admins)."""
    who = await _membership(request)
    await operations.set_join_policy(request, who, body.join_policy)
    return await _domain_list(request, who)


@routes.post("/api/admin/orgs/{id}/domains", name="api_admin_org_domain")
@endpoint(
    access="admin", body=DomainIn, response=DomainOut, status=201, tags=TAGS, errors=[404, 409]
)
async def admin_set_domain(request: web.Request, body: DomainIn) -> dict[str, Any]:
    """Give an organisation an email domain, verified at once without DNS (administrators)."""
    actor = require_user(request)
    organisation_id = request.match_info["id"]
    row = await domains.set_verified(request.app[DB], organisation_id, body.domain, actor.user_id)
    await audit.record(
        request.app,
        request,
        "organisation.domain_set",
        target_type="organisation",
        target_id=organisation_id,
        details={"domain": row.domain},
    )
    return domain_out(row)


@routes.get("/api/me/org-offers", name="api_org_offers")
@endpoint(access="user", response=OfferList, tags=TAGS)
async def list_offers(request: web.Request) -> dict[str, Any]:
    """Organisations offering you to join, because you verified an address on their domain."""
    actor = require_user(request)
    offers = await domains.pending_offers(request.app[DB], actor.user_id)
    return {
        "offers": [
            {**offer.__dict__, "created_at": offer.created_at.isoformat()} for offer in offers
        ]
    }


@routes.post("/api/me/org-offers/{offer_id}/accept", name="api_org_offer_accept")
@endpoint(access="user", response=OrganisationOut, tags=TAGS, errors=[404, 409])
async def accept_offer(request: web.Request) -> dict[str, Any]:
    """Join the organisation that offered it (as a member)."""
    actor = require_user(request)
    organisation = await operations.decide_offer(
        request, actor.user_id, request.match_info["offer_id"], accept=True
    )
    return organisation_out(organisation, "member")


@routes.post("/api/me/org-offers/{offer_id}/decline", name="api_org_offer_decline")
@endpoint(access="user", status=204, tags=TAGS, errors=[404])
async def decline_offer(request: web.Request) -> None:
    """Decline an offer: it is not made again."""
    actor = require_user(request)
    await operations.decide_offer(
        request, actor.user_id, request.match_info["offer_id"], accept=False
    )
