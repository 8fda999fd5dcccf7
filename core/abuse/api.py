"""The operator's abuse API: ``/api/admin/abuse`` (the review queue: list, get, act) and
``/api/admin/abuse/rules`` (each rule's switch, thresholds and action). Admins only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from multinotes.abuse import rules, service
from multinotes.abuse.models import AbuseHit
from multinotes.abuse.schemas import ActIn, HitList, HitOut, HitQuery, RuleIn, RuleList, RuleOut
from multinotes.http.endpoint import endpoint
from multinotes.keys import DB

routes = web.RouteTableDef()
TAGS = ["abuse"]


def hit_out(hit: AbuseHit, email: str | None) -> dict[str, Any]:
    return {
        "id": hit.id,
        "rule": hit.rule,
        "rule_label": rules.RULES[hit.rule][0] if hit.rule in rules.RULES else hit.rule,
        "status": hit.status,
        "action_taken": hit.action_taken,
        "user_id": hit.user_id,
        "user_email": email,
        "network": hit.network,
        "evidence": hit.evidence or {},
        "created_at": hit.created_at,
        "reviewed_by": hit.reviewed_by,
        "reviewed_at": hit.reviewed_at,
        "review_note": hit.review_note,
    }


def rule_out(settings: rules.RuleSettings) -> dict[str, Any]:
    return {
        "rule": settings.rule,
        "label": rules.RULES[settings.rule][0],
        "enabled": settings.enabled,
        "action": settings.action,
        "threshold": settings.threshold,
        "window_minutes": settings.window_minutes,
        "params": settings.params,
    }


@routes.get("/api/admin/abuse/rules", name="api_admin_abuse_rules")
@endpoint(access="admin", response=RuleList, tags=TAGS)
async def list_rules(request: web.Request) -> dict[str, Any]:
    """Every abuse rule with its current settings (defaults until an admin saves one)."""
    return {"rules": [rule_out(s) for s in await rules.all_settings(request.app[DB])]}


@routes.put("/api/admin/abuse/rules/{rule}", name="api_admin_abuse_rule")
@endpoint(access="admin", body=RuleIn, response=RuleOut, tags=TAGS, errors=[404])
async def save_rule(request: web.Request, body: RuleIn) -> dict[str, Any]:
    """Switch a rule on or off, set what trips it (`threshold` events in `window_minutes`;
    for `credit_drain` credits spent, for `api_key_misuse` networks one key is used from, plus
    `refusal_threshold` 403/429 answers) and what it does: `none` (flag for review),
    `rate_limit` (refuse: sign-ups from the network get 429, a throw-away address 422; for the
    rules about accounts in use, the account's generation requests get 429 `abuse_throttled`
    for the window) or `suspend` (the account is created blocked, or blocked at once; never an
    admin's)."""
    return rule_out(await service.save_rule(request, request.match_info["rule"], body))


@routes.get("/api/admin/abuse", name="api_admin_abuse")
@endpoint(access="admin", query=HitQuery, response=HitList, tags=TAGS)
async def list_hits(request: web.Request, query: HitQuery) -> dict[str, Any]:
    """The review queue, newest first, filtered by rule and status; evidence holds counts,
    truncated networks and masked addresses, never a full address."""
    rows, cursor = await service.list_hits(
        request.app[DB],
        rule=query.rule,
        status=query.status,
        limit=query.limit,
        before=query.before,
    )
    return {"hits": [hit_out(h, e) for h, e in rows], "next_cursor": cursor}


@routes.get("/api/admin/abuse/{id}", name="api_admin_abuse_hit")
@endpoint(access="admin", response=HitOut, tags=TAGS, errors=[404])
async def get_hit(request: web.Request) -> dict[str, Any]:
    """One hit with its evidence and review."""
    return hit_out(*await service.get_hit(request.app[DB], request.match_info["id"]))


@routes.post("/api/admin/abuse/{id}/actions", name="api_admin_abuse_act")
@endpoint(access="admin", body=ActIn, response=HitOut, tags=TAGS, errors=[404, 409])
async def act(request: web.Request, body: ActIn) -> dict[str, Any]:
    """Decide on a hit: `dismiss` it, `warn` its user (mailed and notified in the app, with
    `note` as the message) or `block` the account (`note` is the reason they are told at
    login; their sessions and API keys stop at the next request). Audited."""
    hit_id = request.match_info["id"]
    await service.act(request, hit_id, body.action, body.note)
    return hit_out(*await service.get_hit(request.app[DB], hit_id))
