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

from multinotes.announcements.models import Announcement
from multinotes.billing.models import Coupon, Order, Plan
from multinotes.connections.models import ConnectedAccountRow
from multinotes.db import Base, utcnow
from multinotes.identity.oauth_models import OAuthIdentity
from multinotes.keys import DB, SECRETS
from multinotes.models_registry import import_all_models
from multinotes.plugins.integrations.discord.tables import Link as DiscordLink
from multinotes.plugins.integrations.slack.tables import Install as SlackInstall
from multinotes.plugins.integrations.slack.tables import Link as SlackLink
from multinotes.search.tasks import embed_pending
from multinotes.sharing.models import Notification
from multinotes.testing import ApiClient
from tests.security.routes import Route, app_routes
from tests.support.sse import parse_sse
from tests.support.waiting import eventually

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
    "/api/documents/{id}/export": "document",
    "/api/exports/{id}": "note_export",
    "/api/exports/{id}/download": "note_export",
    "/exports/folder/{id}": "folder",
    "/exports/conversation/{id}": "conversation",
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
    "/api/announcements/{id}/dismiss": (
        "announcements are shown to every user; dismissing one hides it for the caller only"
    ),
    "/announcements/{id}/dismiss": (
        "announcements are shown to every user; dismissing one hides it for the caller only"
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
    ("POST", "/api/templates/{id}/render"): {"values": {"who": "B"}},
    ("POST", "/api/templates/{id}/uses"): {"values": {"who": "B"}},
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
    announcement = Announcement(title="For all", body="Hello")
    async with a.app[DB].transaction() as db_session:
        db_session.add(announcement)
    return {
        "template": template["id"],
        "ticket": ticket["id"],
        "announcement": announcement.id,
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
