"""No GET changes anything. A note, a page or a mail can make a reader's browser send a GET to
any of our URLs (an ``<img>``, a link, a prefetch), so a GET that starts work, mails someone or
changes a row is a request forgery waiting to happen.

Every GET route of the router (API and pages; a new one is walked automatically) is requested
by a logged-in admin who owns one of each kind of object, with those objects' real ids. Around
each request the test compares every row of every table (the plugins' too) and the files kept
in the data folder, and counts the background tasks queued (mail goes through tasks); at the
end, the mails sent. What a GET may legitimately
change is listed in ALLOWED and IGNORED_COLUMNS, each with its reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Table, select
from yarl import URL

from multinotes.files import signed
from multinotes.keys import DB, PLUGINS, SETTINGS, TASKS
from multinotes.migrations import target_metadata
from multinotes.models_registry import import_all_models
from multinotes.search.tasks import embed_pending
from multinotes.settings import Settings
from multinotes.testing import ApiClient
from tests.fakes.smtp_server import FakeSMTP
from tests.security.routes import ENDLESS_STREAMS, Route, app_routes
from tests.security.test_access_matrix import OBJECTS, a_objects
from tests.support import mail as mail_fixtures
from tests.support.mail import Mailbox

smtp_server = mail_fixtures.smtp_server
mailbox = mail_fixtures.mailbox

#: Columns a GET may touch anywhere, and why.
IGNORED_COLUMNS: dict[str, dict[str, str]] = {
    "sessions": {
        "last_seen_at": "the session's activity time, which the idle timeout needs (touched "
        "at most every few minutes, whatever the request)",
    },
}

#: Route → table → why this GET may change that table.
ALLOWED: dict[str, dict[str, str]] = {
    "/s/{token}": {
        "shares": "a public link counts its views (the owner sees how often it was opened)",
    },
    "/api/search": {
        "recent_searches": "your last ten searches are kept, to offer them again (your own "
        "list; nothing is started, sent or shared)",
    },
    "/search/results": {
        "recent_searches": "as /api/search: the page's searches are your recent searches",
    },
    "/search": {
        "recent_searches": "as /api/search: the page's searches are your recent searches",
    },
    "/notifications/{id}/open": {
        "notifications": "opening a notification marks it read (your own read state, the "
        "same mark the page would set anyway)",
    },
}

#: GETs whose writes need a secret this walk cannot have, walked without it, and why that is
#: acceptable: they are opened from a mail, and the single-use token in the link is the
#: authority. Opening it (or a mail scanner prefetching it) proves only that the mail arrived.
TOKEN_LINKS = {
    "/verify": "opening the mailed link verifies the address",
    "/api/auth/oauth/{provider}/callback": "the sign-in provider sends the browser back here",
}

#: Query strings that make a GET do its work (a search without words searches nothing).
QUERIES = {
    "/api/search": "?q=teal",
    "/search": "?q=teal",
    "/search/results": "?q=teal",
    "/api/palette": "?q=a",
    "/share/dialog": "?object_type=document&object_id={document}",
    "/files/signed/{id}": "?{signed_query}",
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mode: str, smtp_server: FakeSMTP) -> Settings:
    values: dict[str, Any] = {"rate_limits_enabled": False}
    if mode == "production":
        values.update(smtp_host=smtp_server.host, smtp_port=smtp_server.port)
    return make_settings(**values)


def all_tables(api: ApiClient) -> list[Table]:
    """The core's tables and those of every loaded plugin (on their own metadata)."""
    import_all_models()
    return [t for m in target_metadata(api.app[PLUGINS].migrations()) for t in m.sorted_tables]


#: Stored files under the data folder, compared like a table ("files on disk"): uploads,
#: media, avatars, exports. The database files and the mail outbox (mails are counted) aside.
NOT_STORED = ("multinotes.db", "outbox")


def stored_files(api: ApiClient) -> list[tuple[str, ...]]:
    root = api.app[SETTINGS].data_dir
    return sorted(
        (str(path.relative_to(root)), str(path.stat().st_size))
        for path in root.rglob("*")
        if path.is_file() and not path.relative_to(root).parts[0].startswith(NOT_STORED)
    )


async def snapshot(api: ApiClient) -> dict[str, list[tuple[str, ...]]]:
    tables: dict[str, list[tuple[str, ...]]] = {"files on disk": stored_files(api)}
    async with api.app[DB].read() as session:
        for table in all_tables(api):
            ignored = IGNORED_COLUMNS.get(table.name, {})
            columns = [c for c in table.c if c.name not in ignored]
            rows = (await session.execute(select(*columns))).all()
            tables[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    return tables


def changed_tables(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


async def public_token(api: ApiClient, object_type: str, object_id: str) -> str:
    response = await api.post(
        "/api/shares", {"object_type": object_type, "object_id": object_id, "public": True}
    )
    assert response.status == 201, await response.text()
    return URL((await response.json())["url"]).path.rsplit("/", 1)[-1]


def values_for(route: Route, ids: dict[str, str]) -> dict[str, str]:
    kind = OBJECTS.get(route.path)
    values = {p: ids[kind] for p in route.params} if kind else {}
    if "n" in route.params:
        values["n"] = "1"
    if route.path == "/files/signed/{id}":  # a signed link to A's file (public: no OBJECTS entry)
        values["id"] = ids["file"]
    if route.path.startswith("/s/{token}"):
        values.update(
            token=ids["public_token"],
            document_id=ids["document"],
            folder_id=ids["folder"],
            file_id=ids["file"],
            media_id=ids["media"],
        )
    return values


# ~105 routes, each with a snapshot of every table before and after: ~30 s on a quiet machine,
# over 100 s on a busy one.
@pytest.mark.long
@pytest.mark.timeout(400)
async def test_no_get_route_writes_anything(admin: ApiClient, mailbox: Mailbox, mode: str) -> None:
    owner = admin
    await owner.mark_verified()
    assert (await owner.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    await owner.get_json("/api/admin/tools")  # the default tools are seeded on first read
    ids = await a_objects(owner)
    ids["public_token"] = await public_token(owner, "folder", ids["folder"])
    ids["signed_query"] = URL(signed.signed_file_url(owner.app, ids["file"], 3600)).query_string
    await embed_pending(owner.app)  # the search index is up to date: nothing left to do
    await mailbox.settle(1.5)
    mails = len(mailbox.all())

    queued: list[str] = []
    queue = owner.app[TASKS]
    enqueue = queue.enqueue

    async def counting(task_name: str, /, **kwargs: Any) -> None:
        queued.append(task_name)
        await enqueue(task_name, **kwargs)

    queue.enqueue = counting  # type: ignore[method-assign]

    # Plugins' tables are watched too (a plugin's GET route could write to them).
    watched = {t.name for t in all_tables(owner)}
    assert {"webhook_endpoints", "slack_links", "discord_links"} <= watched, sorted(watched)
    assert [p for p, _ in stored_files(owner) if p.startswith("files")], "the upload is watched"
    routes = [r for r in app_routes(owner.app) if r.method == "GET"]
    assert len(routes) > 90  # the walk reaches the whole app, pages included
    paths = {r.path for r in routes}
    assert set(ALLOWED) | set(TOKEN_LINKS) <= paths, "an exception names a route that is gone"
    problems: list[str] = []
    statuses: dict[str, int] = {}
    exceptions_used: set[str] = set()
    for route in routes:
        url = route.url(**values_for(route, ids)) + QUERIES.get(route.path, "").format(**ids)
        before = await snapshot(owner)
        queued.clear()
        if route.path in ENDLESS_STREAMS:
            # The stream's first event is enough: whatever it wrote, it wrote before that.
            raw = await owner.client.get(url, allow_redirects=False)
            await asyncio.wait_for(raw.content.readline(), timeout=30)
            raw.close()
            response: Any = raw
        else:
            response = await asyncio.wait_for(owner.get(url, allow_redirects=False), timeout=30)
            await response.read()
        statuses[route.path] = response.status
        changed = changed_tables(before, await snapshot(owner))
        if changed & set(ALLOWED.get(route.path, {})):
            exceptions_used.add(route.path)
        changed -= set(ALLOWED.get(route.path, {}))
        if changed:
            problems.append(f"{route} ({response.status}) changed {sorted(changed)}")
        if queued:
            problems.append(f"{route} ({response.status}) queued tasks {queued}")
        if response.status == 500:  # (503 is /readyz saying a test app is not ready)
            problems.append(f"{route} answered {response.status}")
    assert problems == [], "GET requests that change things:\n" + "\n".join(problems)
    # Every exception is still needed (one that no longer writes should leave the list).
    assert exceptions_used == set(ALLOWED)

    # The ids were real: the walk reached the objects, not only 404s.
    reached = (
        "/api/documents/{id}",
        "/notes/{id}",
        "/api/files/{id}/content",
        "/s/{token}",
        "/files/signed/{id}",
    )
    for path in (*reached, "/share/dialog", "/notifications/{id}/open"):
        assert statuses[path] in (200, 303), (path, statuses[path])
    await mailbox.settle()
    assert len(mailbox.all()) == mails, "a GET sent mail"
