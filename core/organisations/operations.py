"""What a request does to an organisation, the same through the API and the pages: the service
call, the mail it queues and the audit record it leaves. Both doors call these, so a change made
from a page is audited like one made through the API."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes import audit
from multinotes.keys import DB
from multinotes.organisations import domains, service
from multinotes.organisations.models import Organisation, OrganisationInvitation
from multinotes.organisations.schemas import MemberPatch
from multinotes.sharing.access import OrganisationAccess


async def _record(
    request: web.Request, action: str, target_id: str, details: dict[str, Any] | None = None
) -> None:
    await audit.record(
        request.app,
        request,
        action,
        target_type="organisation",
        target_id=target_id,
        details=details,
    )


async def create(request: web.Request, user_id: str, name: str) -> Organisation:
    organisation = await service.create(request.app[DB], user_id, name)
    await _record(request, "organisation.created", organisation.id)
    return organisation


async def update_member(
    request: web.Request, who: OrganisationAccess, user_id: str, body: MemberPatch
) -> None:
    await service.update_member(
        request.app[DB],
        who,
        user_id,
        role=body.role,
        monthly_limit=body.monthly_limit,
        set_limit="monthly_limit" in body.model_fields_set,
    )
    details = {"user_id": user_id, **body.model_dump(exclude_unset=True)}
    await _record(request, "organisation.member_updated", who.organisation_id, details)


async def remove_member(request: web.Request, who: OrganisationAccess, user_id: str) -> None:
    await service.remove_member(request.app[DB], who, user_id)
    await _record(request, "organisation.member_removed", who.organisation_id, {"user_id": user_id})


async def transfer(request: web.Request, who: OrganisationAccess, new_owner_id: str) -> None:
    await service.transfer(request.app[DB], who, new_owner_id)
    await _record(request, "organisation.transferred", who.organisation_id, {"to": new_owner_id})


async def invite(
    request: web.Request, who: OrganisationAccess, email: str, role: str
) -> OrganisationInvitation:
    """Record the invitation and queue its mail (the task makes the link)."""
    invitation = await service.invite(request.app[DB], who, email, role)
    await service.queue_invitation(request.app, invitation.id)
    return invitation


async def resend(
    request: web.Request, who: OrganisationAccess, invitation_id: str
) -> OrganisationInvitation:
    """Mail a pending invitation again; the new link replaces the earlier one."""
    invitation = await service.prepare_resend(request.app[DB], who, invitation_id)
    await service.queue_invitation(request.app, invitation.id)
    return invitation


# -- email domains ------------------------------------------------------------------------------


async def claim_domain(request: web.Request, who: OrganisationAccess, domain: str) -> Any:
    row = await domains.claim(request.app[DB], who, domain)
    await _record(
        request, "organisation.domain_claimed", who.organisation_id, {"domain": row.domain}
    )
    return row


async def verify_domain(request: web.Request, who: OrganisationAccess, domain_id: str) -> Any:
    row = await domains.verify(request.app, who, domain_id)
    await _record(
        request, "organisation.domain_verified", who.organisation_id, {"domain": row.domain}
    )
    return row


async def remove_domain(request: web.Request, who: OrganisationAccess, domain_id: str) -> None:
    row = await domains.remove(request.app[DB], who, domain_id)
    await _record(
        request, "organisation.domain_removed", who.organisation_id, {"domain": row.domain}
    )


async def set_join_policy(request: web.Request, who: OrganisationAccess, policy: str) -> None:
    await domains.set_join_policy(request.app[DB], who, policy)
    await _record(
        request, "organisation.join_policy_set", who.organisation_id, {"join_policy": policy}
    )


async def decide_offer(
    request: web.Request, user_id: str, offer_id: str, accept: bool
) -> Organisation:
    organisation = await domains.decide_offer(request.app[DB], user_id, offer_id, accept)
    if accept:
        await _record(request, "organisation.offer_accepted", organisation.id)
    return organisation
