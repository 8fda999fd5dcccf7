"""Sharing a blind comparison like a note (issue #18): with a person (read-only) or by public
link. The blind rule holds through a share: before the owner votes, nothing a recipient or a
visitor gets (JSON or HTML) names a model; afterwards they see who wrote what. Only the owner
votes; revoking a share ends it on the next request; the sealed conversation behind a
comparison stays unshareable."""

from __future__ import annotations

import re
from typing import Any

from multinotes.arena.models import ArenaComparison
from multinotes.keys import DB
from multinotes.testing import ApiClient
from tests.test_arena import MODELS, assert_blind, plugins, run_blind

__all__ = ["plugins"]


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].capitalize())
    return client


async def share(owner: ApiClient, comparison: str, **how: Any) -> dict[str, Any]:
    response = await owner.post(
        "/api/shares", {"object_type": "comparison", "object_id": comparison, **how}
    )
    body = await response.json()
    assert response.status == 201, body
    return dict(body)


def token_path(url: str) -> str:
    match = re.search(r"(/s/[A-Za-z0-9_-]+)$", url)
    assert match, url
    return match.group(1)


async def test_a_shared_comparison_is_blind_to_its_viewer_until_the_owner_votes(
    user: ApiClient, make_client: Any
):
    bea = await person(make_client, "bea@example.com")
    cal = await person(make_client, "cal@example.com")
    comparison, _ = await run_blind(user, models=list(MODELS))
    made = await share(user, comparison, email="bea@example.com")
    assert made["object_url"] == f"/comparisons/{comparison}"
    assert made["title"] == "Say something"

    # Bea reads it (JSON and page), blind, and cannot vote.
    response = await bea.get(f"/api/comparisons/{comparison}")
    text = await response.text()
    assert response.status == 200, text
    assert_blind(text)
    seen = await response.json()
    assert seen["is_owner"] is False and seen["revealed"] is False
    assert [a["model"] for a in seen["answers"]] == [None, None, None]
    html = await (await bea.get(f"/comparisons/{comparison}")).text()
    assert_blind(html)
    assert "Shared by Admin" in html and 'id="arena-vote"' not in html
    assert "Answer one" in html and "Share this comparison" not in html
    response = await bea.post(
        f"/api/comparisons/{comparison}/vote", {"best": "A", "category": "code"}
    )
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "owner_only"
    response = await bea.post(
        f"/comparisons/{comparison}/vote",
        data={"csrf_token": bea.csrf or "", "choice": "A", "category": "code"},
    )
    assert response.status == 403 and "Only the owner can vote" in await response.text()
    # Listed among what is shared with her, titled by its prompt; her notification says so.
    shared = (await bea.get_json("/api/shared-with-me"))["items"]
    assert [(i["object_type"], i["url"], i["title"]) for i in shared] == [
        ("comparison", f"/comparisons/{comparison}", "Say something")
    ]
    # The "Shared" pages and her notifications list it (blind as well).
    for client, path in ((bea, "/shared"), (user, "/shared?tab=by-me")):
        response = await client.get(path)
        html = await response.text()
        assert response.status == 200, (path, html[:300])
        assert "Say something" in html and "Comparison" in html, path
        assert_blind(html)
    notes = (await bea.get_json("/api/notifications"))["notifications"]
    assert [(n["kind"], n["title"], n["url"]) for n in notes] == [
        ("share", "Say something", f"/comparisons/{comparison}")
    ]
    html = await (await bea.get("/notifications")).text()
    assert "Say something" in html
    assert_blind(html)
    # Nobody else sees it: 404 as for an id that does not exist.
    assert (await cal.get(f"/api/comparisons/{comparison}")).status == 404
    assert (await cal.get(f"/comparisons/{comparison}")).status == 404

    # The owner votes: now Bea sees who wrote what.
    response = await user.post(
        f"/api/comparisons/{comparison}/vote", {"best": "B", "category": "writing"}
    )
    assert response.status == 200
    seen = await bea.get_json(f"/api/comparisons/{comparison}")
    assert seen["revealed"] and {a["model"] for a in seen["answers"]} == set(MODELS)
    html = await (await bea.get(f"/comparisons/{comparison}")).text()
    assert all(name in html for name, _, _ in MODELS.values())

    # Revoked: gone for her on the next request.
    assert (await user.delete(f"/api/shares/{made['id']}")).status == 204
    assert (await bea.get(f"/api/comparisons/{comparison}")).status == 404
    assert (await bea.get(f"/comparisons/{comparison}")).status == 404


async def test_a_public_link_shows_the_comparison_blind_then_named_after_the_vote(
    user: ApiClient, make_client: Any
):
    comparison, _ = await run_blind(user, models=list(MODELS))
    made = await share(user, comparison, public=True)
    path = token_path(made["url"])
    visitor: ApiClient = await make_client()
    response = await visitor.get(path)
    html = await response.text()
    assert response.status == 200, html
    assert_blind(html)
    assert "Say something" in html and "Answer one" in html and "Answer three" in html
    assert "the models stay hidden" in html

    await user.post(f"/api/comparisons/{comparison}/vote", {"best": "C", "category": "code"})
    html = await (await visitor.get(path)).text()
    assert all(name in html for name, _, _ in MODELS.values())
    assert "the models stay hidden" not in html

    assert (await user.delete(f"/api/shares/{made['id']}")).status == 204
    assert (await visitor.get(path)).status == 410


async def test_only_the_owner_shares_a_comparison_and_only_read_only(
    user: ApiClient, make_client: Any
):
    bea = await person(make_client, "bea@example.com")
    comparison, _ = await run_blind(user, models=list(MODELS)[:2])
    response = await user.post(
        "/api/shares",
        {
            "object_type": "comparison",
            "object_id": comparison,
            "email": "bea@example.com",
            "role": "editor",
        },
    )
    assert response.status == 422
    assert "role" in (await response.json())["error"]["fields"]
    # Someone else's comparison is not theirs to share (404: it names nothing).
    response = await bea.post(
        "/api/shares", {"object_type": "comparison", "object_id": comparison, "public": True}
    )
    assert response.status == 404
    await share(user, comparison, email="bea@example.com")
    response = await bea.post(
        "/api/shares", {"object_type": "comparison", "object_id": comparison, "public": True}
    )
    assert response.status == 403
    # The sealed conversation behind it stays unshareable, before the vote and after.
    async with user.app[DB].read() as session:
        conversation_id = (await session.get(ArenaComparison, comparison)).conversation_id
    response = await user.post(
        "/api/shares",
        {"object_type": "conversation", "object_id": conversation_id, "public": True},
    )
    assert response.status == 404
