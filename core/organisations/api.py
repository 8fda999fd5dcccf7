"""The organisations JSON API under ``/api/orgs``: organisations, members, invitations, the
shared wallet and usage per member. A non-member gets 404 from every route that names an
organisation (as for one that does not exist); a member lacking the role gets 403."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes import audit
from multinotes.http.endpoint import endpoint
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.organisations import operations, service, storage
from multinotes.organisations.models import Organisation, OrganisationInvitation
from multinotes.organisations.schemas import (
    AcceptIn,
    CreditsIn,
    FundIn,
    InvitationIn,
    InvitationList,
    InvitationOut,
    MemberList,
    MemberPatch,
    OrganisationDetail,
    OrganisationIn,
    OrganisationList,
    OrganisationOut,
    StorageOut,
    StorageQuotaIn,
    TransferIn,
    UsageOut,
    UsageQuery,
    WalletOut,
)
from multinotes.sharing import access
from multinotes.wallet import service as wallet

routes = web.RouteTableDef()
TAGS = ["organisations"]


def organisation_out(organisation: Organisation, role: str) -> dict[str, Any]:
    return {
        "id": organisation.id,
        "name": organisation.name,
        "role": role,
        "owner_id": organisation.owner_id,
        "created_at": organisation.created_at.isoformat(),
        "seats": organisation.seats,
    }


def invitation_out(invitation: OrganisationInvitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "email": invitation.email,
        "role": invitation.role,
        "status": invitation.status,
        "created_at": invitation.created_at.isoformat(),
        "sent_at": invitation.sent_at.isoformat() if invitation.sent_at else None,
        "expires_at": invitation.expires_at.isoformat(),
    }


async def _membership(request: web.Request) -> access.OrganisationAccess:
    actor = require_user(request)
    return await access.organisation(request.app[DB], actor.user_id, request.match_info["id"])


async def _detail(request: web.Request, who: access.OrganisationAccess) -> dict[str, Any]:
    db = request.app[DB]
    organisation = await service.get(db, who)
    return {
        **organisation_out(organisation, who.role),
        "wallet": await wallet.organisation_summary(db, who.organisation_id),
        "monthly_limit": who.monthly_limit,
        "spent_this_month": await service.spent_this_month(db, who),
    }


@routes.get("/api/orgs", name="api_orgs")
@endpoint(access="user", response=OrganisationList, tags=TAGS)
async def list_organisations(request: web.Request) -> dict[str, Any]:
    """The organisations you belong to, with your role in each."""
    actor = require_user(request)
    memberships = await service.for_user(request.app[DB], actor.user_id)
    return {"organisations": [organisation_out(m.organisation, m.role) for m in memberships]}


@routes.post("/api/orgs", name="api_orgs_create")
@endpoint(access="user", body=OrganisationIn, response=OrganisationDetail, status=201, tags=TAGS)
async def create_organisation(request: web.Request, body: OrganisationIn) -> dict[str, Any]:
    """Create an organisation; you are its owner. Its wallet starts empty: add credits from
    your own wallet (`POST /api/orgs/{id}/wallet/fund`)."""
    actor = require_user(request)
    db = request.app[DB]
    organisation = await operations.create(request, actor.user_id, body.name)
    return await _detail(request, await access.organisation(db, actor.user_id, organisation.id))


@routes.post("/api/orgs/invitations/accept", name="api_orgs_accept")
@endpoint(access="user", body=AcceptIn, response=OrganisationOut, tags=TAGS, errors=[403, 409])
async def accept_invitation(request: web.Request, body: AcceptIn) -> dict[str, Any]:
    """Join through the link an invitation mailed you (the token from its `token=`), signed in
    with the invited address. A link works once; a resent invitation's older link does not."""
    actor = require_user(request)
    organisation = await service.accept(request.app[DB], actor.user_id, body.token)
    who = await access.organisation(request.app[DB], actor.user_id, organisation.id)
    return organisation_out(organisation, who.role)


@routes.get("/api/orgs/{id}", name="api_org")
@endpoint(access="user", response=OrganisationDetail, tags=TAGS, errors=[404])
async def get_organisation(request: web.Request) -> dict[str, Any]:
    """An organisation you belong to: your role, its wallet, your limit and spending."""
    return await _detail(request, await _membership(request))


@routes.patch("/api/orgs/{id}", name="api_org_update")
@endpoint(
    access="user", body=OrganisationIn, response=OrganisationDetail, tags=TAGS, errors=[403, 404]
)
async def rename_organisation(request: web.Request, body: OrganisationIn) -> dict[str, Any]:
    """Rename the organisation (owner and admins)."""
    who = await _membership(request)
    await service.rename(request.app[DB], who, body.name)
    return await _detail(request, who)


@routes.get("/api/orgs/{id}/members", name="api_org_members")
@endpoint(access="user", response=MemberList, tags=TAGS, errors=[404])
async def list_members(request: web.Request) -> dict[str, Any]:
    """Everyone in the organisation with their role and monthly limit."""
    who = await _membership(request)
    return await _members_out(request, who.organisation_id)


async def _members_out(request: web.Request, organisation_id: str) -> dict[str, Any]:
    rows = await service.members(request.app[DB], organisation_id)
    return {
        "members": [
            {
                "user_id": m.user_id,
                "name": m.name,
                "email": m.email,
                "role": m.role,
                "monthly_limit": m.monthly_limit,
                "joined_at": m.joined_at.isoformat(),
            }
            for m in rows
        ]
    }


@routes.patch("/api/orgs/{id}/members/{user_id}", name="api_org_member_update")
@endpoint(access="user", body=MemberPatch, response=MemberList, tags=TAGS, errors=[403, 404, 409])
async def update_member(request: web.Request, body: MemberPatch) -> dict[str, Any]:
    """Change a member's role (the owner) or monthly credit limit (owner and admins; null
    removes it)."""
    who = await _membership(request)
    await operations.update_member(request, who, request.match_info["user_id"], body)
    return await _members_out(request, who.organisation_id)


@routes.delete("/api/orgs/{id}/members/{user_id}", name="api_org_member_remove")
@endpoint(access="user", status=204, tags=TAGS, errors=[403, 404, 409])
async def remove_member(request: web.Request) -> None:
    """Remove a member (owner and admins; only the owner removes an admin). They lose access
    at their next request."""
    who = await _membership(request)
    await operations.remove_member(request, who, request.match_info["user_id"])


@routes.post("/api/orgs/{id}/leave", name="api_org_leave")
@endpoint(access="user", status=204, tags=TAGS, errors=[404, 409])
async def leave_organisation(request: web.Request) -> None:
    """Leave the organisation (the owner transfers ownership first: 409 otherwise)."""
    who = await _membership(request)
    await service.leave(request.app[DB], who)


@routes.post("/api/orgs/{id}/transfer", name="api_org_transfer")
@endpoint(
    access="user", body=TransferIn, response=OrganisationDetail, tags=TAGS, errors=[403, 404, 409]
)
async def transfer_ownership(request: web.Request, body: TransferIn) -> dict[str, Any]:
    """Make another member the owner (the owner only); you stay on as an admin."""
    who = await _membership(request)
    await operations.transfer(request, who, body.user_id)
    return await _detail(request, await _membership(request))


@routes.get("/api/orgs/{id}/invitations", name="api_org_invitations")
@endpoint(access="user", response=InvitationList, tags=TAGS, errors=[403, 404])
async def list_invitations(request: web.Request) -> dict[str, Any]:
    """Pending invitations (owner and admins)."""
    who = await _membership(request)
    who.require("admin", "see invitations")
    rows = await service.invitations(request.app[DB], who.organisation_id)
    return {"invitations": [invitation_out(i) for i in rows]}


@routes.post("/api/orgs/{id}/invitations", name="api_org_invite")
@endpoint(
    access="user",
    body=InvitationIn,
    response=InvitationOut,
    status=201,
    tags=TAGS,
    errors=[403, 404, 409],
)
async def invite(request: web.Request, body: InvitationIn) -> dict[str, Any]:
    """Invite someone by email (owner and admins; admins as members only). They are mailed a
    link that works once, for seven days."""
    who = await _membership(request)
    invitation = await operations.invite(request, who, str(body.email), body.role)
    return invitation_out(invitation)


@routes.post("/api/orgs/{id}/invitations/{invitation_id}/resend", name="api_org_invite_resend")
@endpoint(access="user", response=InvitationOut, tags=TAGS, errors=[403, 404, 409])
async def resend_invitation(request: web.Request) -> dict[str, Any]:
    """Mail a pending invitation again with a new link (the earlier link stops working) and
    seven more days."""
    who = await _membership(request)
    invitation = await operations.resend(request, who, request.match_info["invitation_id"])
    return invitation_out(invitation)


@routes.delete("/api/orgs/{id}/invitations/{invitation_id}", name="api_org_invite_revoke")
@endpoint(access="user", status=204, tags=TAGS, errors=[403, 404])
async def revoke_invitation(request: web.Request) -> None:
    """Revoke a pending invitation: its link stops working."""
    who = await _membership(request)
    await service.revoke(request.app[DB], who, request.match_info["invitation_id"])


@routes.get("/api/orgs/{id}/wallet", name="api_org_wallet")
@endpoint(access="user", response=WalletOut, tags=TAGS, errors=[404])
async def organisation_wallet(request: web.Request) -> dict[str, Any]:
    """The shared wallet: balance, credits held for answers in flight, what is available."""
    who = await _membership(request)
    return await wallet.organisation_summary(request.app[DB], who.organisation_id)


@routes.post("/api/orgs/{id}/wallet/fund", name="api_org_wallet_fund")
@endpoint(access="user", body=FundIn, response=WalletOut, tags=TAGS, errors=[402, 404])
async def fund_wallet(request: web.Request, body: FundIn) -> dict[str, Any]:
    """Move credits from your own wallet to the organisation's (any member may)."""
    who = await _membership(request)
    db = request.app[DB]
    reference = f"org-fund:{body.reference or service.new_reference()}"
    await wallet.fund_organisation(db, who.user_id, who.organisation_id, body.amount, reference)
    return await wallet.organisation_summary(db, who.organisation_id)


async def _usage(request: web.Request, query: UsageQuery) -> tuple[str, list[service.MemberUsage]]:
    who = await _membership(request)
    month, _, _ = service.month_bounds(query.month)
    return month, await service.usage(request.app[DB], who, query.month)


@routes.get("/api/orgs/{id}/usage", name="api_org_usage")
@endpoint(access="user", query=UsageQuery, response=UsageOut, tags=TAGS, errors=[403, 404])
async def usage(request: web.Request, query: UsageQuery) -> dict[str, Any]:
    """Credits each member spent from the shared wallet in a month (owner and admins)."""
    month, rows = await _usage(request, query)
    return {
        "month": month,
        "total": sum(r.credits for r in rows),
        "members": [r.__dict__ for r in rows],
    }


@routes.get("/api/orgs/{id}/usage.csv", name="api_org_usage_csv")
@endpoint(access="user", query=UsageQuery, tags=TAGS, errors=[403, 404], content_type="text/csv")
async def usage_csv(request: web.Request, query: UsageQuery) -> web.Response:
    """The same as CSV, to download."""
    month, rows = await _usage(request, query)
    return web.Response(
        text=service.usage_csv(month, rows),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="organisation-usage-{month}.csv"',
            "Cache-Control": "no-store",
        },
    )


@routes.post("/api/admin/orgs/{id}/credits", name="api_admin_org_credits")
@endpoint(access="admin", body=CreditsIn, response=WalletOut, tags=TAGS, errors=[404, 409])
async def adjust_credits(request: web.Request, body: CreditsIn) -> dict[str, Any]:
    """Grant (positive) or deduct (negative) an organisation's credits, with a reason
    (administrators)."""
    actor = require_user(request)
    db, organisation_id = request.app[DB], request.match_info["id"]
    await wallet.organisation_balance(db, organisation_id)  # 404 first
    await wallet.adjust_organisation(
        db, organisation_id, body.amount, body.reason, by=actor.user_id
    )
    await audit.record(
        request.app,
        request,
        "organisation.credits_adjusted",
        target_type="organisation",
        target_id=organisation_id,
        details={"amount": body.amount, "reason": body.reason},
    )
    return await wallet.organisation_summary(db, organisation_id)


@routes.get("/api/orgs/{id}/storage", name="api_org_storage")
@endpoint(access="user", response=StorageOut, tags=TAGS, errors=[404])
async def organisation_storage(request: web.Request) -> dict[str, Any]:
    """How much of the organisation's storage quota the files in its space use (upload into
    it with `POST /api/files?org_id=`)."""
    who = await _membership(request)
    return await storage.summary(request.app, who.organisation_id)


@routes.put("/api/admin/orgs/{id}/storage", name="api_admin_org_storage")
@endpoint(access="admin", body=StorageQuotaIn, response=StorageOut, tags=TAGS, errors=[404])
async def set_storage_quota(request: web.Request, body: StorageQuotaIn) -> dict[str, Any]:
    """Set an organisation's storage quota (administrators); null returns it to the default.
    Nothing stored is removed: a quota below what is used refuses new uploads."""
    organisation_id = request.match_info["id"]
    await storage.set_quota(request.app, organisation_id, body.quota_bytes)
    await audit.record(
        request.app,
        request,
        "organisation.storage_quota_set",
        target_type="organisation",
        target_id=organisation_id,
        details={"quota_bytes": body.quota_bytes},
    )
    return await storage.summary(request.app, organisation_id)
