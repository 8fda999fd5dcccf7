"""Access control matrix: user B, using user A's ids, gets 404 from every route that takes an
object id (403 from admin routes), and nothing of A's changes.

The routes come from the router. Every route with a path parameter needs an entry in OBJECTS
saying which of A's objects its parameter names (or why it names none): a new endpoint without
one fails ``test_every_route_with_a_path_parameter_is_in_the_matrix`` until it is added here.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from sqlalchemy import or_, select
from yarl import URL

from multinotes.abuse.models import AbuseHit
from multinotes.announcements.models import Announcement
from multinotes.billing.models import Coupon, Order, Plan
from multinotes.connections.models import ConnectedAccountRow
from multinotes.db import Base, utcnow
from multinotes.files import signed
from multinotes.flags.models import Experiment, FeatureFlag
from multinotes.identity.oauth_models import OAuthIdentity
from multinotes.keys import DB, SECRETS
from multinotes.models_registry import import_all_models
from multinotes.organisations.models import Organisation, OrganisationJoinOffer
from multinotes.plugins.integrations.discord.tables import Link as DiscordLink
from multinotes.plugins.integrations.slack.tables import Install as SlackInstall
from multinotes.plugins.integrations.slack.tables import Link as SlackLink
from multinotes.search.tasks import embed_pending
from multinotes.sharing.models import Notification
from multinotes.testing import ApiClient
from tests.security.routes import Route, app_routes
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

#: Every route naming an organisation (``multinotes.sharing.access.organisation`` decides).
ORGANISATION_ROUTES = (
    "/api/orgs/{id}",
    "/api/orgs/{id}/members",
    "/api/orgs/{id}/members/{user_id}",
    "/api/orgs/{id}/leave",
    "/api/orgs/{id}/transfer",
    "/api/orgs/{id}/invitations",
    "/api/orgs/{id}/invitations/{invitation_id}",
    "/api/orgs/{id}/invitations/{invitation_id}/resend",
    "/api/orgs/{id}/wallet",
    "/api/orgs/{id}/wallet/fund",
    "/api/orgs/{id}/usage",
    "/api/orgs/{id}/usage.csv",
    "/api/orgs/{id}/domains",
    "/api/orgs/{id}/domains/{domain_id}",
    "/api/orgs/{id}/domains/{domain_id}/verify",
    "/api/orgs/{id}/join-policy",
    "/api/admin/orgs/{id}/credits",
    "/api/admin/orgs/{id}/domains",
    "/organisations/{id}",
    "/organisations/{id}/workspace",
    "/organisations/{id}/fund",
    "/organisations/{id}/seats",
    "/organisations/{id}/invitations",
    "/organisations/{id}/invitations/{invitation_id}/resend",
    "/organisations/{id}/invitations/{invitation_id}/revoke",
    "/organisations/{id}/members/{user_id}",
    "/organisations/{id}/members/{user_id}/remove",
    "/organisations/{id}/leave",
    "/organisations/{id}/transfer",
    "/organisations/{id}/usage",
    "/organisations/{id}/domains",
    "/organisations/{id}/domains/{domain_id}/verify",
    "/organisations/{id}/domains/{domain_id}/remove",
    "/organisations/{id}/join-policy",
    "/api/orgs/{id}/storage",
    "/api/admin/orgs/{id}/storage",
    "/api/orgs/{id}/space",
    "/organisations/{id}/space/move",
)

#: Path → the kind of A's object its parameters name (see ``a_objects``).
OBJECTS: dict[str, str] = {
    "/api/keys/{id}": "api_key",
    "/account/keys/{id}/revoke": "api_key",
    "/account/keys/{id}/scopes": "api_key",
    "/api/sessions/{id}": "session",
    "/account/sessions/{id}/revoke": "session",
    "/api/auth/oauth/identities/{id}": "oauth_identity",
    "/account/oauth/identities/{id}/unlink": "oauth_identity",
    "/api/conversations/{id}": "conversation",
    "/api/conversations/{id}/messages": "conversation",
    "/chat/{id}": "conversation",
    "/chat/{id}/thread": "conversation",
    "/api/messages/{id}/regenerate": "answer",
    "/api/messages/{id}/rating": "answer",
    "/api/messages/{id}/stream": "answer",
    "/api/generations/{id}/cancel": "generation",
    "/api/media/{id}": "media",
    "/api/me/exports/{id}": "export",
    "/api/me/exports/{id}/download": "export",
    "/api/files/{id}": "file",
    "/api/files/{id}/content": "file",
    "/api/files/{id}/preview": "file",
    "/api/folders/{id}": "folder",
    "/api/folders/{id}/restore": "folder",
    "/api/documents/{id}": "document",
    "/api/documents/{id}/restore": "document",
    "/api/documents/{id}/duplicate": "document",
    "/api/documents/{id}/rerun": "document",
    "/api/documents/{id}/versions": "document",
    # {n} gets the document id too: not a version number, so it names nothing (404).
    "/api/documents/{id}/versions/{n}": "document",
    "/api/documents/{id}/versions/{n}/diff": "document",
    "/api/documents/{id}/versions/{n}/restore": "document",
    "/api/documents/{id}/collab": "document",
    "/api/documents/{id}/export": "document",
    "/api/exports/{id}": "note_export",
    "/api/exports/{id}/download": "note_export",
    "/exports/folder/{id}": "folder",
    "/exports/conversation/{id}": "conversation",
    "/exports/comparison/{id}": "prompt",
    "/exports/answer/{id}": "answer",
    "/exports/{id}": "note_export",
    "/exports/{id}/progress": "note_export",
    "/exports/remote/{id}": "document",
    "/api/connections/{id}": "connection",
    "/connections/{id}/disconnect": "connection",
    "/api/connections/{id}/destinations": "connection",
    "/connections/{id}/destination": "connection",
    "/api/messages/{id}/save": "answer",
    "/api/messages/{id}/export": "answer",
    "/api/messages/{id}/export-comparison": "prompt",
    "/notes/{id}": "document",
    "/notes/{id}/history": "document",
    "/notes/{id}/duplicate": "document",
    "/notes/{id}/versions/{n}/restore": "document",
    "/notes/folders/{id}/rename": "folder",
    "/files/{id}/rename": "file",
    "/files/{id}/delete": "file",
    "/api/messages/{id}/save-comparison": "prompt",
    # Blind comparisons (the arena).
    "/api/comparisons/{id}": "comparison",
    "/api/comparisons/{id}/vote": "comparison",
    "/comparisons/{id}": "comparison",
    "/comparisons/{id}/vote": "comparison",
    # The prompt library: A's private template.
    "/api/templates/{id}": "template",
    "/api/templates/{id}/favourite": "template",
    "/api/templates/{id}/render": "template",
    "/api/templates/{id}/uses": "template",
    "/prompts/{id}/edit": "template",
    "/prompts/{id}/delete": "template",
    "/prompts/{id}/favourite": "template",
    "/prompts/{id}/fill": "template",
    # Smart assistance: A's note's tags, summary and suggestions.
    "/api/documents/{id}/details": "document",
    "/api/documents/{id}/suggestion": "document",
    "/notes/{id}/assist": "document",
    "/notes/{id}/assist/automatic": "document",
    "/notes/{id}/assist/details": "document",
    "/notes/{id}/assist/dismiss": "document",
    "/notes/{id}/assist/suggest": "document",
    # Chains: A's chain and its run.
    "/api/chains/{id}": "chain",
    "/api/chains/{id}/runs": "chain",
    "/api/chains/runs/{id}": "chain_run",
    "/api/chains/runs/{id}/stream": "chain_run",
    "/api/chains/runs/{id}/cancel": "chain_run",
    "/api/chains/runs/{id}/rerun": "chain_run",
    "/chains/{id}": "chain",
    "/chains/{id}/edit": "chain",
    "/chains/{id}/delete": "chain",
    "/chains/{id}/run": "chain",
    "/chains/runs/{id}": "chain_run",
    "/chains/runs/{id}/cancel": "chain_run",
    "/chains/runs/{id}/rerun": "chain_run",
    # Batch runs: A's batch (it ran A's template).
    "/api/batches/{id}": "batch",
    "/api/batches/{id}/rows": "batch",
    "/api/batches/{id}/cancel": "batch",
    "/api/batches/{id}/download": "batch",
    "/batches/{id}": "batch",
    "/batches/{id}/status": "batch",
    "/batches/{id}/cancel": "batch",
    # Scheduled runs: A's schedule (it runs A's template).
    "/api/schedules/{id}": "schedule",
    "/api/schedules/{id}/pause": "schedule",
    "/api/schedules/{id}/resume": "schedule",
    "/api/schedules/{id}/run": "schedule",
    "/api/schedules/{id}/runs": "schedule",
    "/schedules/{id}": "schedule",
    "/schedules/{id}/edit": "schedule",
    "/schedules/{id}/pause": "schedule",
    "/schedules/{id}/resume": "schedule",
    "/schedules/{id}/run": "schedule",
    "/schedules/{id}/delete": "schedule",
    # An organisation's offer to A to join (A's address is on its domain).
    "/api/me/org-offers/{offer_id}/accept": "org_offer",
    "/api/me/org-offers/{offer_id}/decline": "org_offer",
    "/organisations/offers/{offer_id}/accept": "org_offer",
    "/organisations/offers/{offer_id}/decline": "org_offer",
    # Moving A's note, folder, conversation or template between spaces.
    "/api/documents/{id}/move-space": "document",
    "/api/folders/{id}/move-space": "folder",
    "/api/conversations/{id}/move-space": "conversation",
    "/api/templates/{id}/move-space": "template",
    # Sharing: A's shares, comments and notifications; A's objects through the sharing pages.
    "/api/shares/{id}": "share",
    "/share/{id}/update": "share",
    "/share/{id}/revoke": "share",
    "/api/documents/{id}/comments": "document",
    "/api/documents/{id}/activity": "document",
    "/documents/{id}/collab": "document",
    "/documents/{id}/comments": "document",
    "/api/comments/{id}": "comment",
    "/comments/{id}/edit": "comment",
    "/comments/{id}/delete": "comment",
    "/shared/folders/{id}": "folder",
    "/shared/files/{id}": "file",
    "/shared/conversations/{id}": "conversation",
    "/notifications/{id}/open": "notification",
    # Webhooks (plugin): A's endpoint; {delivery_id} gets its id too, which names no delivery.
    "/api/webhooks/{id}": "webhook",
    "/api/webhooks/{id}/deliveries": "webhook",
    "/api/webhooks/{id}/deliveries/{delivery_id}/retry": "webhook",
    "/api/webhooks/{id}/disable": "webhook",
    "/api/webhooks/{id}/enable": "webhook",
    "/api/webhooks/{id}/rotate-secret": "webhook",
    "/api/webhooks/{id}/test": "webhook",
    "/integrations/webhooks/{id}": "webhook",
    "/integrations/webhooks/{id}/edit": "webhook",
    "/integrations/webhooks/{id}/test": "webhook",
    "/integrations/webhooks/{id}/on": "webhook",
    "/integrations/webhooks/{id}/off": "webhook",
    "/integrations/webhooks/{id}/delete": "webhook",
    "/integrations/webhooks/{id}/rotate": "webhook",
    "/integrations/webhooks/{id}/deliveries/{delivery_id}/retry": "webhook",
    # Chat apps (plugins): A's Slack and Discord links, the Slack workspace A added.
    "/integrations/slack/links/{id}/unlink": "slack_link",
    "/integrations/slack/links/{id}/model": "slack_link",
    "/integrations/slack/installs/{team}/remove": "slack_install",
    "/integrations/discord/links/{id}/unlink": "discord_link",
    "/integrations/discord/links/{id}/model": "discord_link",
    "/api/billing/orders/{id}": "order",
    "/api/billing/orders/{id}/receipt": "order",
    "/api/billing/orders/{id}/cancel": "order",
    "/api/billing/orders/{id}/confirm": "order",
    "/billing/orders/{id}/cancel": "order",
    # The billing console (admin pages): B gets 403 whatever the id.
    "/admin/billing/plans/{id}": "plan",
    "/admin/billing/plans/{id}/archive": "plan",
    "/admin/billing/plans/{id}/restore": "plan",
    "/admin/billing/coupons/{id}/deactivate": "coupon",
    "/admin/billing/orders/{id}": "order",
    "/admin/billing/orders/{id}/refund": "order",
    "/admin/billing/orders/{id}/mark-paid": "order",
    # Admin routes: a non-admin gets 403 whatever the id.
    "/api/admin/orders/{id}/refund": "order",
    "/api/admin/orders/{id}/mark-paid": "order",
    "/api/admin/orders/{id}/refunds": "order",
    "/api/admin/plans/{id}": "plan",
    "/api/admin/plans/{id}/archive": "plan",
    "/api/admin/coupons/{id}/archive": "coupon",
    "/api/admin/users/{id}": "user",
    "/api/admin/users/{id}/credits": "user",
    "/admin/users/{id}": "user",
    "/api/admin/plugins/{name}": "plugin",
    "/admin/plugins/{name}": "plugin",
    "/admin/plugins/{name}/toggle": "plugin",
    "/admin/plugins/{name}/settings": "plugin",
    "/api/admin/models/{id}": "model",
    "/admin/models/{id}": "model",
    "/api/admin/tools/{id}": "tool",
    "/admin/tools/{id}": "tool",
    "/admin/tools/{id}/move": "tool",
    "/admin/tools/{id}/visibility": "tool",
    "/api/admin/legal/{doc}": "legal_page",
    "/api/tickets/{id}": "ticket",
    "/api/tickets/{id}/messages": "ticket",
    "/support/{id}": "ticket",
    "/support/{id}/messages": "ticket",
    "/api/admin/tickets/{id}": "ticket",
    "/api/admin/tickets/{id}/messages": "ticket",
    "/admin/support/{id}": "ticket",
    "/admin/support/{id}/messages": "ticket",
    "/api/admin/announcements/{id}": "announcement",
    "/admin/announcements/{id}/delete": "announcement",
    # Feature flags and experiments (the console): B gets 403 whatever the id.
    "/api/admin/flags/{id}": "flag",
    "/admin/flags/{id}": "flag",
    "/admin/flags/{id}/delete": "flag",
    "/api/admin/experiments/{id}": "experiment",
    "/api/admin/experiments/{id}/start": "experiment",
    "/api/admin/experiments/{id}/stop": "experiment",
    "/api/admin/experiments/{id}/results": "experiment",
    "/admin/experiments/{id}": "experiment",
    "/admin/experiments/{id}/start": "experiment",
    "/admin/experiments/{id}/stop": "experiment",
    "/admin/experiments/{id}/delete": "experiment",
    # Abuse reports (the console): a report about A; B gets 403 whatever the id.
    "/api/admin/abuse/{id}": "abuse_hit",
    "/api/admin/abuse/{id}/actions": "abuse_hit",
    "/admin/abuse/{id}": "abuse_hit",
    # Organisations: A's organisation (B is not a member: 404; the admin route: 403). The
    # {user_id} and {invitation_id} parameters get its id too, which names nobody.
    **{path: "organisation" for path in ORGANISATION_ROUTES},
}

#: Routes whose path parameter names no one's object, and why.
NOT_OBJECTS: dict[str, str] = {
    "/api/auth/oauth/{provider}/link": "a sign-in provider's name",
    "/account/oauth/{provider}/link": "a sign-in provider's name",
    "/connections/{kind}/connect": "a service's name (a connection kind)",
    "/connections/{kind}/callback": "a service's name (a connection kind)",
    "/connections/{kind}/token": "a service's name (a connection kind)",
    "/avatars/{avatar_id}.png": (
        "avatars are profile pictures any signed-in user may see; the URL holds a random id, "
        "not the owner's"
    ),
    "/api/admin/abuse/rules/{rule}": "an abuse rule's name (instance-wide settings, admin only)",
    "/admin/analytics/{table}.csv": (
        "the name of an analytics table (instance-wide figures, admin only; an unknown name 404)"
    ),
    "/admin/abuse/rules/{rule}": "an abuse rule's name (instance-wide settings, admin only)",
    "/api/announcements/{id}/dismiss": (
        "an announcement for everyone is shown to every user; dismissing one hides it for the "
        "caller only (one for a segment the caller is outside of is a 404: "
        "tests/test_announcements.py)"
    ),
    "/api/me/experiments/{name}": (
        "names an experiment, which is everyone's; the answer is the caller's own variant"
    ),
    "/announcements/{id}/dismiss": (
        "an announcement for everyone is shown to every user; dismissing one hides it for the "
        "caller only (one for a segment the caller is outside of is a 404: "
        "tests/test_announcements.py)"
    ),
}

#: Bodies that pass validation, so the answer is about ownership and not about the body.
BODIES: dict[tuple[str, str], Any] = {
    ("PATCH", "/api/conversations/{id}"): {"title": "Mine now"},
    ("PATCH", "/api/keys/{id}"): {"scopes": ["read"]},
    ("POST", "/api/conversations/{id}/messages"): {"content": "hello", "models": ["demo/echo"]},
    ("POST", "/api/messages/{id}/regenerate"): {},
    ("POST", "/api/messages/{id}/rating"): {"stars": 1},
    ("PATCH", "/api/files/{id}"): {"name": "mine-now.txt"},
    ("PATCH", "/api/folders/{id}"): {"name": "Mine now"},
    ("PATCH", "/api/documents/{id}"): {"version": 1, "title": "Mine now"},
    ("PATCH", "/api/shares/{id}"): {"role": "editor"},
    ("POST", "/api/documents/{id}/comments"): {"body": "Mine now"},
    ("PATCH", "/api/comments/{id}"): {"body": "Mine now"},
    ("POST", "/api/documents/{id}/export"): {"format": "markdown"},
    ("PATCH", "/api/connections/{id}"): {"destination_id": "somewhere"},
    ("POST", "/api/billing/orders/{id}/confirm"): {"payment": {"razorpay_payment_id": "pay_1"}},
    ("POST", "/api/comparisons/{id}/vote"): {"best": "A", "category": "code"},
    ("POST", "/api/tickets/{id}/messages"): {"body": "Mine now"},
    ("PATCH", "/api/templates/{id}"): {"title": "Mine now"},
    ("PATCH", "/api/schedules/{id}"): {"name": "Mine now"},
    ("PATCH", "/api/orgs/{id}"): {"name": "Mine now"},
    ("PATCH", "/api/orgs/{id}/members/{user_id}"): {"monthly_limit": 1},
    ("POST", "/api/orgs/{id}/transfer"): {"user_id": "0" * 32},
    ("POST", "/api/orgs/{id}/invitations"): {"email": "b@example.com"},
    ("POST", "/api/orgs/{id}/wallet/fund"): {"amount": 1},
    ("POST", "/api/admin/orgs/{id}/credits"): {"amount": 1, "reason": "Mine now"},
    ("POST", "/api/orgs/{id}/domains"): {"domain": "mine-now.com"},
    ("PUT", "/api/orgs/{id}/join-policy"): {"join_policy": "join"},
    ("POST", "/api/admin/orgs/{id}/domains"): {"domain": "mine-now.com"},
    ("PUT", "/api/admin/orgs/{id}/storage"): {"quota_bytes": 1},
    ("POST", "/api/documents/{id}/move-space"): {"org_id": None},
    ("POST", "/api/folders/{id}/move-space"): {"org_id": None},
    ("POST", "/api/conversations/{id}/move-space"): {"org_id": None},
    ("POST", "/api/templates/{id}/move-space"): {"org_id": None},
    ("POST", "/api/templates/{id}/render"): {"values": {"who": "B"}},
    ("POST", "/api/templates/{id}/uses"): {"values": {"who": "B"}},
    ("PATCH", "/api/chains/{id}"): {"title": "Mine now"},
    ("POST", "/api/chains/{id}/runs"): {"input": "Mine now"},
    ("POST", "/api/chains/runs/{id}/rerun"): {"from_step": 1},
}

#: What the admin routes' parameters are filled with (global objects, not A's).
GLOBAL_OBJECTS = {"plugin": "demo", "model": "demo/echo", "tool": "text", "legal_page": "terms"}


def routes_with_parameters(api: ApiClient) -> list[Route]:
    return [r for r in app_routes(api.app) if r.params and r.access in ("user", "admin")]


async def test_every_route_with_a_path_parameter_is_in_the_matrix(api: ApiClient):
    missing = sorted(
        {r.path for r in routes_with_parameters(api)} - set(OBJECTS) - set(NOT_OBJECTS)
    )
    assert missing == [], (
        "Say in OBJECTS (tests/security/test_access_matrix.py) which object these routes' "
        "parameters name, and create one for user A in a_objects(): " + ", ".join(missing)
    )


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].title())
    await client.mark_verified()
    return client


async def a_objects(a: ApiClient) -> dict[str, str]:
    """One of each kind of object, owned by A; kind → id."""
    conversation = (await (await a.post("/api/conversations", {})).json())["id"]
    streamed = await a.post(
        f"/api/conversations/{conversation}/messages",
        {"content": "teal", "models": ["demo/swatch", "demo/echo"]},
    )
    assert streamed.status == 200
    events = parse_sse(await streamed.text())
    media = next(data for name, data in events if name == "media")
    tree = await a.get_json(f"/api/conversations/{conversation}")
    answer = next(m for m in tree["messages"] if m["model"] == "demo/echo")
    prompt = next(m for m in tree["messages"] if m["role"] == "user")
    folder = (await (await a.post("/api/folders", {"name": "A's folder"})).json())["id"]
    blind = await a.post(
        "/api/comparisons", {"prompt": "teal", "models": ["demo/echo", "demo/reverse"]}
    )
    assert blind.status == 200
    comparison = parse_sse(await blind.text())[0][1]["id"]
    saved = await a.post(f"/api/messages/{answer['id']}/save", {"folder_id": folder})
    document = (await saved.json())["document_id"]
    key = await (await a.post("/api/keys", {"name": "A's key"})).json()
    file_form = aiohttp.FormData()
    file_form.add_field("file", b"A's words", filename="a.txt", content_type="text/plain")
    file = await (await a.post("/api/files", data=file_form)).json()
    session = next(s for s in await a.get_json("/api/sessions") if s["current"])
    export = await (await a.post("/api/me/export")).json()

    async def export_done() -> bool:
        return bool((await a.get_json(f"/api/me/exports/{export['id']}"))["status"] == "done")

    await eventually(export_done, timeout=20)
    note_export = await (
        await a.post("/api/exports", {"format": "markdown", "document_ids": [document]})
    ).json()

    async def note_export_done() -> bool:
        return bool((await a.get_json(f"/api/exports/{note_export['id']}"))["status"] == "done")

    await eventually(note_export_done, timeout=20)
    assert a.user is not None
    identity = OAuthIdentity(user_id=a.user["id"], provider="google", subject="a-at-google")
    connection = ConnectedAccountRow(
        user_id=a.user["id"],
        kind="notion",
        account_id="a-workspace",
        account_name="A's workspace",
        access_token=a.app[SECRETS].encrypt("a-notion-token"),
        scopes="",
        data={},
        status="active",
    )
    notice = Notification(
        user_id=a.user["id"], kind="share", object_type="document", object_id=document
    )
    plan = Plan(name="A's plan", kind="credits", credits=10, price=100, currency="USD")
    coupon = Coupon(code="A-COUPON", percent_off=10)
    async with a.app[DB].transaction() as db_session:
        db_session.add_all([identity, connection, notice, plan, coupon])
    order = Order(  # as a verified webhook leaves a subscription's paid order
        user_id=a.user["id"],
        plan_id=plan.id,
        backend="stripe",
        status="paid",
        subtotal=100,
        total=100,
        currency="USD",
        credits=10,
        subscription_reference="sub_a",
        subscription_status="active",
        expires_at=utcnow(),
        paid_at=utcnow(),
    )
    async with a.app[DB].transaction() as db_session:
        db_session.add(order)
    share = await (
        await a.post(
            "/api/shares",
            {"object_type": "folder", "object_id": folder, "email": "c@example.com"},
        )
    ).json()
    comment = await (
        await a.post(f"/api/documents/{document}/comments", {"body": "A's comment"})
    ).json()
    webhook = await (
        await a.post("/api/webhooks", {"url": "http://127.0.0.1:9/a", "events": ["note.created"]})
    ).json()
    slack_install = SlackInstall(
        team_id="T0AS",
        team_name="A's team",
        bot_token="encrypted-elsewhere",
        installed_by=a.user["id"],
    )
    slack_link = SlackLink(team_id="T0AS", slack_user_id="U0A", user_id=a.user["id"])
    discord_link = DiscordLink(discord_user_id="1400000000000000042", user_id=a.user["id"])
    async with a.app[DB].transaction() as db_session:
        db_session.add_all([slack_install, slack_link, discord_link])
    ticket = await (await a.post("/api/tickets", {"subject": "A's", "body": "Help A"})).json()
    template = await (
        await a.post(
            "/api/templates",
            {"title": "A's prompt", "body": "Hello {{who}}", "variables": [{"name": "who"}]},
        )
    ).json()
    schedule = await (
        await a.post(
            "/api/schedules",
            {
                "name": "A's schedule",
                "target_id": template["id"],
                "values": {"who": "A"},
                "models": ["demo/echo"],
                "cron": "0 9 * * *",
            },
        )
    ).json()
    batch = await (
        await a.post(
            "/api/batches",
            {"template_id": template["id"], "models": ["demo/echo"], "rows": [{"who": "A"}]},
        )
    ).json()

    async def batch_ended() -> bool:
        shown = await a.get_json(f"/api/batches/{batch['id']}")
        return bool(shown["status"] == "finished")

    await eventually(batch_ended, timeout=20)
    announcement = Announcement(title="For all", body="Hello")
    chain = await (
        await a.post(
            "/api/chains",
            {"title": "A's chain", "steps": [{"model": "demo/echo", "prompt": "{{input}}"}]},
        )
    ).json()
    chain_run = await (await a.post(f"/api/chains/{chain['id']}/runs", {"input": "A"})).json()

    async def chain_run_ended() -> bool:
        run = await a.get_json(f"/api/chains/runs/{chain_run['id']}")
        return bool(run["status"] == "complete")

    await eventually(chain_run_ended, timeout=20)
    flag = FeatureFlag(name="a_flag", allow_list=[], segment={})
    experiment = Experiment(
        name="a_test",
        variants=[{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
        conversion_event="note.created",
    )
    abuse_hit = AbuseHit(rule="disposable_email", user_id=a.user["id"], evidence={})
    async with a.app[DB].transaction() as db_session:
        db_session.add_all([flag, experiment, abuse_hit])
    async with a.app[DB].transaction() as db_session:
        db_session.add(announcement)
    organisation = await (await a.post("/api/orgs", {"name": "A's team"})).json()
    funded = await a.post(f"/api/orgs/{organisation['id']}/wallet/fund", {"amount": 10})
    assert funded.status == 200
    invited = await a.post(
        f"/api/orgs/{organisation['id']}/invitations", {"email": "c@example.com"}
    )
    assert invited.status == 201
    claimed = await a.post(f"/api/orgs/{organisation['id']}/domains", {"domain": "a-corp.com"})
    assert claimed.status == 201
    # Another organisation offers A to join (A verified an address on its domain).
    other = Organisation(name="Others", owner_id=a.user["id"])
    async with a.app[DB].transaction() as db_session:
        db_session.add(other)
        await db_session.flush()
        offer = OrganisationJoinOffer(
            organisation_id=other.id, user_id=a.user["id"], domain="example.com"
        )
        db_session.add(offer)
    return {
        "organisation": organisation["id"],
        "org_offer": offer.id,
        "template": template["id"],
        "chain": chain["id"],
        "chain_run": chain_run["id"],
        "batch": batch["id"],
        "schedule": schedule["id"],
        "ticket": ticket["id"],
        "announcement": announcement.id,
        "flag": flag.id,
        "abuse_hit": abuse_hit.id,
        "experiment": experiment.id,
        "conversation": conversation,
        "comparison": comparison,
        "answer": answer["id"],
        "prompt": prompt["id"],
        "folder": folder,
        "document": document,
        "generation": answer["generation"]["id"],
        "media": media["id"],
        "api_key": key["id"],
        "file": file["id"],
        "session": session["id"],
        "export": export["id"],
        "note_export": note_export["id"],
        "oauth_identity": identity.id,
        "connection": connection.id,
        "share": share["id"],
        "comment": comment["id"],
        "notification": notice.id,
        "webhook": webhook["id"],
        "slack_install": slack_install.team_id,
        "slack_link": slack_link.id,
        "discord_link": discord_link.id,
        "order": order.id,
        "plan": plan.id,
        "coupon": coupon.id,
        "user": a.user["id"],
        **GLOBAL_OBJECTS,
    }


async def snapshot(api: ApiClient, outsider: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table but the outsider's own rows and the (append-only) audit log."""
    import_all_models()
    tables: dict[str, list[tuple[str, ...]]] = {}
    async with api.app[DB].read() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == "audit_log":
                continue
            query = select(table)
            if table.name == "users":
                query = query.where(table.c.id != outsider)
            elif "user_id" in table.c:
                query = query.where(or_(table.c.user_id != outsider, table.c.user_id.is_(None)))
            rows = (await session.execute(query)).all()
            tables[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    return tables


async def a_views(a: ApiClient, ids: dict[str, str]) -> list[Any]:
    """A re-reads their objects through the API."""
    return [
        await a.get_json(f"/api/conversations/{ids['conversation']}"),
        await a.get_json(f"/api/comparisons/{ids['comparison']}"),
        await a.get_json("/api/keys"),
        [s["id"] for s in await a.get_json("/api/sessions")],
        await a.get_json(f"/api/me/exports/{ids['export']}"),
        await a.get_json(f"/api/exports/{ids['note_export']}"),
        await a.get_json(f"/api/files/{ids['file']}"),
        await a.get_json("/api/files/usage"),
        await a.get_json("/api/auth/oauth/identities"),
        await a.get_json("/api/folders"),
        await a.get_json(f"/api/documents/{ids['document']}"),
        await a.get_json(f"/api/documents/{ids['document']}/versions"),
        await a.get_json("/api/shares"),
        await a.get_json(f"/api/documents/{ids['document']}/comments"),
        await a.get_json("/api/notifications"),
        await a.get_json(f"/api/tickets/{ids['ticket']}"),
        await a.get_json(f"/api/templates/{ids['template']}"),
        await a.get_json(f"/api/chains/{ids['chain']}"),
        await a.get_json(f"/api/chains/runs/{ids['chain_run']}"),
        await a.get_json(f"/api/batches/{ids['batch']}"),
        await a.get_json(f"/api/batches/{ids['batch']}/rows"),
        await a.get_json(f"/api/schedules/{ids['schedule']}"),
        await a.get_json(f"/api/schedules/{ids['schedule']}/runs"),
        await a.get_json(f"/api/orgs/{ids['organisation']}"),
        await a.get_json(f"/api/orgs/{ids['organisation']}/members"),
        await a.get_json(f"/api/orgs/{ids['organisation']}/invitations"),
        await a.get_json(f"/api/orgs/{ids['organisation']}/domains"),
        await a.get_json("/api/me/org-offers"),
        await a.get_json(f"/api/orgs/{ids['organisation']}/storage"),
        await a.get_json(f"/api/orgs/{ids['organisation']}/space"),
    ]


def expected_status(route: Route) -> int:
    return 403 if route.access == "admin" else 404


async def call(b: ApiClient, route: Route, url: str) -> Any:
    if route.method == "GET":
        return await b.get(url, allow_redirects=False)
    if route.spec.kind == "page":  # a form post, as a browser sends it
        return await b.client.request(
            route.method, url, data={"csrf_token": b.csrf or ""}, allow_redirects=False
        )
    body = BODIES.get((route.method, route.path), {})
    return await b.request(route.method, url, json=body, allow_redirects=False)


async def test_user_b_cannot_reach_user_a_objects(admin: ApiClient, make_client: Any, mode: str):
    assert (await admin.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    await admin.get_json("/api/admin/tools")  # the default tools are seeded on first read
    a = await person(make_client, "a@example.com")
    b = await person(make_client, "b@example.com")
    assert b.user is not None
    ids = await a_objects(a)
    # A's new items are embedded for search in the background (a coalesced job a second
    # later): bring that up to date now, so the job has nothing left to change meanwhile.
    await embed_pending(a.app)
    before = await snapshot(a, b.user["id"])
    views = await a_views(a, ids)

    wrong: list[str] = []
    tried = 0
    for route in app_routes(a.app):
        if route.access == "admin" or (route.params and route.access == "user"):
            if route.path in NOT_OBJECTS:
                continue
            kind = OBJECTS.get(route.path)
            values = {p: ids[kind] for p in route.params} if kind else {}
            response = await call(b, route, route.url(**values))
            tried += 1
            if response.status != expected_status(route):
                wrong.append(f"{route} -> {response.status}: {(await response.read())[:200]!r}")
    assert wrong == [], "B reached A's objects:\n" + "\n".join(wrong)
    assert tried >= len(OBJECTS)

    assert await snapshot(a, b.user["id"]) == before, "B's requests changed something"
    assert await a_views(a, ids) == views
    # ... and A still reaches every one of them (the ids were right).
    assert (await a.get(f"/api/media/{ids['media']}")).status == 200
    assert (await a.get(f"/api/me/exports/{ids['export']}/download")).status == 200
    assert (await a.get(f"/api/exports/{ids['note_export']}/download")).status == 200
    exported = await a.get(f"/api/documents/{ids['document']}/export?format=markdown")
    assert exported.status == 200
    assert await (await a.get(f"/api/files/{ids['file']}/content")).read() == b"A's words"
    assert (await a.get(f"/chat/{ids['conversation']}")).status == 200
    assert (await a.get(f"/api/billing/orders/{ids['order']}/receipt")).status == 200


async def test_a_removed_member_reaches_no_organisation_route(
    admin: ApiClient, make_client: Any, mode: str
):
    """B was a member of A's organisation (they spent from its wallet, and read the note, the
    conversation and the template A keeps in its space) and was removed: from the next request
    on, every organisation route, and every route naming an item of its space, answers B as it
    answers a stranger."""
    from multinotes.organisations import service as organisations
    from multinotes.sharing import access

    assert (await admin.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    a = await person(make_client, "a@example.com")
    b = await person(make_client, "b@example.com")
    assert a.user is not None and b.user is not None
    db = a.app[DB]
    organisation = await (await a.post("/api/orgs", {"name": "A's team"})).json()
    org_id = organisation["id"]
    assert (await a.post(f"/api/orgs/{org_id}/wallet/fund", {"amount": 100})).status == 200
    owner = await access.organisation(db, a.user["id"], org_id)
    invitation = await organisations.invite(db, owner, "b@example.com", "member")
    token = await organisations.issue_link_token(db, invitation.id)
    assert token is not None
    await organisations.accept(db, b.user["id"], token)
    assert (await b.get(f"/api/orgs/{org_id}")).status == 200
    spent = await b.post(
        "/api/messages", {"content": "hi", "models": ["demo/echo"], "org_id": org_id}
    )
    assert spent.status == 200
    await spent.read()

    # A keeps a note, a conversation and a template in the organisation's space: B reads them.
    space: dict[str, str] = {}
    note = await (await a.post("/api/documents", {"title": "Team plan", "content": "x"})).json()
    space["document"] = note["id"]
    chat = await a.post("/api/messages", {"content": "hi", "models": ["demo/echo"]})
    space["conversation"] = next(d for name, d in parse_sse(await chat.text()) if name == "prompt")[
        "conversation_id"
    ]
    template = await (await a.post("/api/templates", {"title": "Team", "body": "Hi"})).json()
    space["template"] = template["id"]
    for kind, item_id in space.items():
        moved = await a.post(f"/api/{kind}s/{item_id}/move-space", {"org_id": org_id})
        assert moved.status == 200, await moved.text()
    assert (await b.get(f"/api/documents/{space['document']}")).status == 200
    assert (await b.get(f"/api/conversations/{space['conversation']}")).status == 200
    assert (await b.get(f"/api/templates/{space['template']}")).status == 200

    assert (await a.delete(f"/api/orgs/{org_id}/members/{b.user['id']}")).status == 204
    # A's items are embedded for search a second later in the background: bring that up to
    # date now, as the test above does, so the job has nothing left to change meanwhile.
    await embed_pending(a.app)
    before = await snapshot(a, b.user["id"])
    wrong = []
    for route in app_routes(a.app):
        if route.path in ORGANISATION_ROUTES:
            values = {p: org_id if p == "id" else b.user["id"] for p in route.params}
        elif route.access == "user" and OBJECTS.get(route.path) in space:
            # Every route naming an item of the space: B is a stranger to it again.
            values = {p: space[OBJECTS[route.path]] for p in route.params}
        else:
            continue
        response = await call(b, route, route.url(**values))
        if response.status != expected_status(route):
            wrong.append(f"{route} -> {response.status}: {(await response.read())[:200]!r}")
    assert wrong == [], "A removed member reached the organisation:\n" + "\n".join(wrong)
    refused = await b.post(
        "/api/messages", {"content": "hi", "models": ["demo/echo"], "org_id": org_id}
    )
    assert refused.status == 404
    assert await snapshot(a, b.user["id"]) == before, "B's requests changed something"


async def test_the_public_signed_file_route_opens_only_what_was_signed(make_client: Any):
    """``/files/signed/{id}`` is public (a service fetches it without signing in), so the
    signature is its whole access check: B gets 403 for A's file without one, and with the
    signature of a link to B's own file; only A's own signed link opens A's file."""
    a = await person(make_client, "a@example.com")
    b = await person(make_client, "b@example.com")

    async def upload(client: ApiClient, words: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("file", words, filename="words.txt", content_type="text/plain")
        response = await client.post("/api/files", data=form)
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])

    ids = {"file": await upload(a, b"A's words")}
    own = await upload(b, b"B's words")
    b_link = URL(signed.signed_file_url(b.app, own, 600))
    assert (await b.get(f"{b_link.path}?{b_link.query_string}")).status == 200
    for query in ("", f"?{b_link.query_string}"):
        response = await b.get(f"/files/signed/{ids['file']}{query}")
        assert response.status == 403, query
    a_link = URL(signed.signed_file_url(a.app, ids["file"], 600))
    opened = await b.get(f"{a_link.path}?{a_link.query_string}")
    assert opened.status == 200 and await opened.read() == b"A's words"
