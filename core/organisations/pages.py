"""Organisations' pages: ``/organisations`` (yours and a form to create one),
``/organisations/{id}`` (wallet, members, invitations, leaving and transferring),
``/organisations/{id}/usage`` (usage per member, with its CSV) and the invitation link's page.
Plain forms with POST-redirect-GET; a refused form shows the page again with the error.

The workspace switch (``/organisations/{id}/workspace``) remembers in a cookie which wallet the
chat pays from (``multinotes.organisations.workspace``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from multinotes.billing import service as billing
from multinotes.billing.checkout import start_checkout
from multinotes.billing.schemas import QuoteIn
from multinotes.db import Database
from multinotes.errors import AppError, Invalid, NotFound
from multinotes.http.endpoint import page, validate
from multinotes.http.forms import form_field
from multinotes.http.responses import redirect, render
from multinotes.identity.actor import require_user
from multinotes.keys import DB
from multinotes.organisations import domains, operations, seats, service, spaces, storage
from multinotes.organisations.schemas import (
    DomainIn,
    FundIn,
    InvitationIn,
    JoinPolicyIn,
    MemberPatch,
    OrganisationIn,
    TransferIn,
    UsageQuery,
)
from multinotes.organisations.workspace import WORKSPACE_COOKIE, current_workspace
from multinotes.sharing import access
from multinotes.wallet import service as wallet

routes = web.RouteTableDef()


@routes.get("/organisations", name="organisations")
@page(access="user")
async def organisations_home(request: web.Request) -> web.Response:
    return await _home(request)


async def _home(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    actor = require_user(request)
    return render(
        request,
        "organisations/index.html",
        {
            "nav": "organisations",
            "memberships": await service.for_user(request.app[DB], actor.user_id),
            "offers": await domains.pending_offers(request.app[DB], actor.user_id),
            "workspace": await current_workspace(request),
            "form": {},
            **extra,
        },
        status=status,
    )


@routes.post("/organisations", name="organisations_create")
@page(access="user")
async def organisations_create(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    data = {"name": form_field(form, "name")}
    try:
        body = validate(OrganisationIn, data)
    except Invalid as exc:
        return await _home(request, exc.status, form=data, errors=exc.fields, error=exc.message)
    organisation = await operations.create(request, actor.user_id, body.name)
    return redirect(f"/organisations/{organisation.id}", "Organisation created.")


async def _membership(request: web.Request) -> access.OrganisationAccess:
    actor = require_user(request)
    return await access.organisation(request.app[DB], actor.user_id, request.match_info["id"])


async def _seats_taken(db: Database, organisation_id: str) -> int:
    async with db.read() as session:
        return await seats.taken_in(session, organisation_id, invitations=True)


async def _organisation(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    who = await _membership(request)
    db: Database = request.app[DB]
    organisation = await service.get(db, who)
    return render(
        request,
        "organisations/organisation.html",
        {
            "nav": "organisations",
            "organisation": organisation,
            "who": who,
            "members": await service.members(db, who.organisation_id),
            "invitations": (
                await service.invitations(db, who.organisation_id) if who.can_manage else []
            ),
            "wallet": await wallet.organisation_summary(db, who.organisation_id),
            "spent": await service.spent_this_month(db, who),
            "domains": await domains.list_domains(db, who) if who.can_manage else [],
            "storage": await storage.summary(request.app, who.organisation_id),
            "space": await spaces.contents(db, who.organisation_id),
            "my_notes": await spaces.own_personal_notes(db, who.user_id),
            "shared_work": await spaces.shared_work(db, who.organisation_id),
            "seat_plans": [p for p in await billing.list_plans(db) if p.kind == "organisation"]
            if who.can_manage
            else [],
            "seats_taken": await _seats_taken(db, who.organisation_id),
            "my_work": await spaces.own_personal_work(db, who.user_id),
            "txt_record": domains.txt_record,
            "workspace": await current_workspace(request),
            "form": {},
            **extra,
        },
        status=status,
    )


@routes.get("/organisations/{id}", name="organisation")
@page(access="user")
async def organisation_page(request: web.Request) -> web.Response:
    return await _organisation(request)


async def _act(
    request: web.Request,
    action: Callable[[], Awaitable[object]],
    done: str,
    target: str | None = None,
) -> web.Response:
    """Run ``action``; a refusal shows the organisation's page again with its message."""
    try:
        await action()
    except AppError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _organisation(request, exc.status, error=exc.message, errors=exc.fields)
    return redirect(target or f"/organisations/{request.match_info['id']}", done)


@routes.post("/organisations/{id}/invitations", name="organisation_invite")
@page(access="user")
async def organisation_invite(request: web.Request) -> web.Response:
    who = await _membership(request)
    form = await request.post()
    data = {"email": form_field(form, "email"), "role": form_field(form, "role") or "member"}

    async def action() -> None:
        body = validate(InvitationIn, data)
        await operations.invite(request, who, str(body.email), body.role)

    return await _act(request, action, f"Invitation sent to {data['email']}.")


@routes.post(
    "/organisations/{id}/invitations/{invitation_id}/resend", name="organisation_invite_resend"
)
@page(access="user")
async def organisation_invite_resend(request: web.Request) -> web.Response:
    who = await _membership(request)

    async def action() -> None:
        await operations.resend(request, who, request.match_info["invitation_id"])

    return await _act(request, action, "Invitation sent again, with a new link.")


@routes.post(
    "/organisations/{id}/invitations/{invitation_id}/revoke", name="organisation_invite_revoke"
)
@page(access="user")
async def organisation_invite_revoke(request: web.Request) -> web.Response:
    who = await _membership(request)

    async def action() -> None:
        await service.revoke(request.app[DB], who, request.match_info["invitation_id"])

    return await _act(request, action, "Invitation revoked.")


@routes.post("/organisations/{id}/members/{user_id}", name="organisation_member_update")
@page(access="user")
async def organisation_member_update(request: web.Request) -> web.Response:
    who = await _membership(request)
    form = await request.post()
    data: dict[str, Any] = {}
    if "monthly_limit" in form:
        raw = form_field(form, "monthly_limit")
        data["monthly_limit"] = raw or None
    if form_field(form, "role"):
        data["role"] = form_field(form, "role")

    async def action() -> None:
        body = validate(MemberPatch, data)
        await operations.update_member(request, who, request.match_info["user_id"], body)

    return await _act(request, action, "Member updated.")


@routes.post("/organisations/{id}/members/{user_id}/remove", name="organisation_member_remove")
@page(access="user")
async def organisation_member_remove(request: web.Request) -> web.Response:
    who = await _membership(request)

    async def action() -> None:
        await operations.remove_member(request, who, request.match_info["user_id"])

    return await _act(request, action, "Member removed.")


@routes.post("/organisations/{id}/leave", name="organisation_leave")
@page(access="user")
async def organisation_leave(request: web.Request) -> web.Response:
    who = await _membership(request)

    async def action() -> None:
        await service.leave(request.app[DB], who)

    return await _act(request, action, "You left the organisation.", target="/organisations")


@routes.post("/organisations/{id}/transfer", name="organisation_transfer")
@page(access="user")
async def organisation_transfer(request: web.Request) -> web.Response:
    who = await _membership(request)
    form = await request.post()

    async def action() -> None:
        body = validate(TransferIn, {"user_id": form_field(form, "user_id")})
        await operations.transfer(request, who, body.user_id)

    return await _act(request, action, "Ownership transferred.")


@routes.post("/organisations/{id}/fund", name="organisation_fund")
@page(access="user")
async def organisation_fund(request: web.Request) -> web.Response:
    who = await _membership(request)
    form = await request.post()

    async def action() -> None:
        body = validate(FundIn, {"amount": form_field(form, "amount") or None})
        await wallet.fund_organisation(
            request.app[DB],
            who.user_id,
            who.organisation_id,
            body.amount,
            f"org-fund:{service.new_reference()}",
        )

    return await _act(request, action, "Credits added to the shared wallet.")


@routes.post("/organisations/{id}/seats", name="organisation_buy_seats")
@page(access="user")
async def organisation_buy_seats(request: web.Request) -> web.StreamResponse:
    """Buy an organisation plan for this many seats (owner and admins): the same checkout as
    any plan, then the payment provider's page; the signed payment credits the wallet."""
    who = await _membership(request)
    form = await request.post()
    try:
        body = validate(
            QuoteIn,
            {
                "plan_id": form_field(form, "plan_id"),
                "org_id": who.organisation_id,
                "seats": form_field(form, "seats") or None,
            },
        )
        buyer = await seats.buyer(request.app[DB], who.user_id, body.org_id, body.seats)
        order_id, _ = await start_checkout(request, body.plan_id, None, None, buyer)
    except AppError as exc:
        if isinstance(exc, NotFound) and not exc.fields:
            raise
        return await _organisation(request, exc.status, error=exc.message, errors=exc.fields)
    # Our own page first (the CSP's form-action covers a form's redirects), as /pricing does.
    return web.Response(status=303, headers={"Location": f"/billing/pay?order={order_id}"})


@routes.post("/organisations/{id}/workspace", name="organisation_workspace")
@page(access="user")
async def organisation_workspace(request: web.Request) -> web.Response:
    """Work in this organisation: the chat pays from its wallet until you switch back."""
    who = await _membership(request)
    response = redirect("/chat", "You are working in the organisation: its wallet pays.")
    response.set_cookie(
        WORKSPACE_COOKIE,
        who.organisation_id,
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        path="/",
    )
    return response


@routes.post("/organisations/workspace/personal", name="organisation_workspace_personal")
@page(access="user")
async def personal_workspace(request: web.Request) -> web.Response:
    response = redirect("/organisations", "You are working in your personal space.")
    response.del_cookie(WORKSPACE_COOKIE, path="/")
    return response


@routes.post("/organisations/{id}/domains", name="organisation_domain_claim")
@page(access="user")
async def organisation_domain_claim(request: web.Request) -> web.Response:
    who = await _membership(request)
    form = await request.post()
    data = {"domain": form_field(form, "domain")}

    async def action() -> None:
        body = validate(DomainIn, data)
        await operations.claim_domain(request, who, body.domain)

    return await _act(request, action, "Domain claimed: add its TXT record, then verify it.")


@routes.post("/organisations/{id}/domains/{domain_id}/verify", name="organisation_domain_verify")
@page(access="user")
async def organisation_domain_verify(request: web.Request) -> web.Response:
    who = await _membership(request)

    async def action() -> None:
        await operations.verify_domain(request, who, request.match_info["domain_id"])

    return await _act(request, action, "Domain verified.")


@routes.post("/organisations/{id}/domains/{domain_id}/remove", name="organisation_domain_remove")
@page(access="user")
async def organisation_domain_remove(request: web.Request) -> web.Response:
    who = await _membership(request)

    async def action() -> None:
        await operations.remove_domain(request, who, request.match_info["domain_id"])

    return await _act(request, action, "Domain removed.")


@routes.post("/organisations/{id}/join-policy", name="organisation_join_policy")
@page(access="user")
async def organisation_join_policy(request: web.Request) -> web.Response:
    who = await _membership(request)
    form = await request.post()

    async def action() -> None:
        body = validate(JoinPolicyIn, {"join_policy": form_field(form, "join_policy")})
        await operations.set_join_policy(request, who, body.join_policy)

    return await _act(request, action, "Saved.")


@routes.post("/organisations/offers/{offer_id}/accept", name="organisation_offer_accept")
@page(access="user")
async def organisation_offer_accept(request: web.Request) -> web.Response:
    return await _decide_offer(request, accept=True)


@routes.post("/organisations/offers/{offer_id}/decline", name="organisation_offer_decline")
@page(access="user")
async def organisation_offer_decline(request: web.Request) -> web.Response:
    return await _decide_offer(request, accept=False)


async def _decide_offer(request: web.Request, accept: bool) -> web.Response:
    actor = require_user(request)
    try:
        organisation = await operations.decide_offer(
            request, actor.user_id, request.match_info["offer_id"], accept
        )
    except AppError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _home(request, exc.status, error=exc.message)
    if accept:
        return redirect(f"/organisations/{organisation.id}", f"Welcome to {organisation.name}.")
    return redirect("/organisations", "Offer declined.")


@routes.get("/organisations/{id}/usage", name="organisation_usage")
@page(access="user")
async def organisation_usage(request: web.Request) -> web.Response:
    who = await _membership(request)
    who.require("admin", "see usage per member")
    month_text = request.query.get("month", "").strip()
    error = None
    try:
        query = validate(UsageQuery, {"month": month_text} if month_text else {})
        month, _, _ = service.month_bounds(query.month)
        rows = await service.usage(request.app[DB], who, query.month)
    except Invalid as exc:
        error = "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) or exc.message
        month, _, _ = service.month_bounds(None)
        rows = []
    organisation = await service.get(request.app[DB], who)
    total = sum(r.credits for r in rows)
    top = max([r.credits for r in rows] or [0])
    return render(
        request,
        "organisations/usage.html",
        {
            "nav": "organisations",
            "organisation": organisation,
            "month": month,
            "rows": rows,
            "total": total,
            "top": top,
            "error": error,
        },
        status=422 if error else 200,
    )


@routes.get("/organisations/invitations/accept", name="organisation_accept")
@page(access="user")
async def accept_page(request: web.Request) -> web.Response:
    """What the mailed link opens: the invitation, and a button to accept it (a GET changes
    nothing)."""
    return await _accept_page(request, request.query.get("token", ""))


async def _accept_page(
    request: web.Request, token: str, status: int = 200, **extra: Any
) -> web.Response:
    require_user(request)
    invitation = organisation = None
    error = extra.pop("error", None)
    try:
        invitation, organisation = await service.invitation_for_token(request.app[DB], token)
    except Invalid as exc:
        error, status = error or exc.message, 400 if status == 200 else status
    return render(
        request,
        "organisations/accept.html",
        {
            "nav": "organisations",
            "invitation": invitation,
            "organisation": organisation,
            "token": token,
            "error": error,
            **extra,
        },
        status=status,
    )


@routes.post("/organisations/invitations/accept", name="organisation_accept_post")
@page(access="user")
async def accept_post(request: web.Request) -> web.Response:
    actor = require_user(request)
    form = await request.post()
    token = form_field(form, "token")
    try:
        organisation = await service.accept(request.app[DB], actor.user_id, token)
    except AppError as exc:
        return await _accept_page(request, token, exc.status, error=exc.message)
    return redirect(f"/organisations/{organisation.id}", f"Welcome to {organisation.name}.")
