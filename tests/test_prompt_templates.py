"""The prompt library through the HTTP API: templates with typed variables, who sees them
(private, shared with people, public), search and tags, favourites, rendering with field errors
naming the variable, usage counts and trending, and that only the owner changes a template."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from multinotes.db import utcnow
from multinotes.keys import DB
from multinotes.prompts.models import PromptTemplateUse
from multinotes.testing import ApiClient

BLOG = {
    "title": "Blog post outline",
    "description": "An outline with a chosen tone",
    "body": "Outline a blog post about {{topic}} in a {{ tone }} tone, about {{words}} words.",
    "system_prompt": "You write for {{audience}}.",
    "variables": [
        {"name": "topic", "label": "Topic", "type": "text"},
        {"name": "tone", "type": "choice", "options": ["formal", "casual"], "default": "casual"},
        {"name": "words", "type": "number", "default": 800},
        {"name": "audience", "type": "long_text", "required": False},
    ],
    "preferred_models": ["echo-fast"],
    "tags": ["Writing", "#blog"],
}


async def create(api: ApiClient, **changes: Any) -> dict[str, Any]:
    response = await api.post("/api/templates", {**BLOG, **changes})
    body = await response.json()
    assert response.status == 201, body
    return dict(body)


async def other(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].capitalize())
    return client


async def test_a_template_is_created_read_and_listed_with_its_typed_variables(user: ApiClient):
    made = await create(user)
    assert made["tags"] == ["blog", "writing"]
    assert [v["type"] for v in made["variables"]] == ["text", "choice", "number", "long_text"]
    assert made["visibility"] == "private" and made["is_owner"] and made["use_count"] == 0
    got = await user.get_json(f"/api/templates/{made['id']}")
    assert got["body"] == BLOG["body"] and got["system_prompt"] == BLOG["system_prompt"]
    listed = await user.get_json("/api/templates?scope=mine")
    assert [t["id"] for t in listed["templates"]] == [made["id"]] and listed["total"] == 1
    # The tags of everything one sees: theirs and the built-in starters'.
    assert {"blog", "writing", "code"} <= {t["tag"] for t in listed["tags"]}


async def test_rendering_fills_values_and_defaults_and_names_the_bad_variable(user: ApiClient):
    made = await create(user)
    url = f"/api/templates/{made['id']}/render"
    response = await user.post(url, {"values": {"topic": "tea {{tone}}", "audience": "cooks"}})
    body = await response.json()
    assert response.status == 200, body
    # Values are put in literally: the {{tone}} inside a value is not rendered again.
    assert body["prompt"] == (
        "Outline a blog post about tea {{tone}} in a casual tone, about 800 words."
    )
    assert body["system_prompt"] == "You write for cooks."
    assert body["preferred_models"] == ["echo-fast"]

    response = await user.post(url, {"values": {"tone": "angry", "words": "many"}})
    body = await response.json()
    assert response.status == 422
    assert set(body["error"]["fields"]) == {"values.topic", "values.tone", "values.words"}
    assert "required" in body["error"]["fields"]["values.topic"]
    assert "formal, casual" in body["error"]["fields"]["values.tone"]

    response = await user.post(url, {"values": {"topic": "x", "colour": "red"}})
    assert response.status == 422
    assert "values.colour" in (await response.json())["error"]["fields"]
    # Rendering records nothing.
    assert (await user.get_json(f"/api/templates/{made['id']}"))["use_count"] == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"body": "Hello {{who}}"}, "body"),
        ({"system_prompt": "Be {{mood}}"}, "system_prompt"),
        ({"variables": [{"name": "x", "type": "choice"}]}, "variables.0"),
        ({"variables": [{"name": "x", "type": "number", "default": "lots"}]}, "variables.0"),
        ({"variables": [{"name": "1bad"}]}, "variables.0.name"),
        ({"tags": ["no spaces allowed"]}, "tags"),
        ({"visibility": "secret"}, "visibility"),
        ({"shared_with": ["nobody@example.com"], "visibility": "shared"}, "shared_with"),
    ],
)
async def test_bad_templates_are_refused_naming_the_field_and_nothing_is_kept(
    user: ApiClient, changes: dict[str, Any], field: str
):
    base = {**BLOG, "body": "Plain", "system_prompt": None, "variables": []}
    response = await user.post("/api/templates", {**base, **changes})
    body = await response.json()
    assert response.status == 422, body
    assert any(name.startswith(field) for name in body["error"]["fields"]), body
    assert (await user.get_json("/api/templates?scope=mine"))["total"] == 0


async def test_private_shared_and_public_templates_are_seen_by_the_right_people(
    user: ApiClient, make_client: Any
):
    bea = await other(make_client, "bea@example.com")
    cal = await other(make_client, "cal@example.com")
    private = await create(user, title="Private one")
    shared = await create(
        user, title="Shared one", visibility="shared", shared_with=["BEA@example.com"]
    )
    public = await create(user, title="Public one", visibility="public")
    assert shared["shared_with"] == ["bea@example.com"]

    async def sees(client: ApiClient) -> set[str]:
        listed = (await client.get_json("/api/templates?limit=100"))["templates"]
        return {t["title"] for t in listed if not t["builtin"]}

    bea_sees, cal_sees = await sees(bea), await sees(cal)
    assert bea_sees == {"Shared one", "Public one"}
    assert cal_sees == {"Public one"}
    seen = await bea.get_json(f"/api/templates/{shared['id']}")
    assert seen["shared_with"] == [] and not seen["is_owner"] and seen["owner"] == "Admin"
    for client, template_id in ((cal, shared["id"]), (bea, private["id"])):
        assert (await client.get(f"/api/templates/{template_id}")).status == 404
        assert (await client.post(f"/api/templates/{template_id}/render", {})).status == 404
        response = await client.request("PUT", f"/api/templates/{template_id}/favourite")
        assert response.status == 404
    # Seeing is not owning: no changes, no deleting.
    response = await bea.patch(f"/api/templates/{public['id']}", {"title": "Mine now"})
    assert response.status == 403
    assert (await bea.delete(f"/api/templates/{public['id']}")).status == 403
    assert (await user.get_json(f"/api/templates/{public['id']}"))["title"] == "Public one"
    scoped = await bea.get_json("/api/templates?scope=shared")
    assert [t["title"] for t in scoped["templates"]] == ["Shared one"]


async def test_search_tags_favourites_and_trending(user: ApiClient, make_client: Any):
    blog = await create(user)
    haiku = await create(
        user,
        title="Haiku",
        description="",
        body="A haiku about {{thing}}",
        system_prompt=None,
        variables=[{"name": "thing"}],
        tags=["poetry"],
        visibility="public",
    )

    async def titles(query: str, client: ApiClient = user) -> list[str]:
        listed = (await client.get_json(f"/api/templates?{query}&limit=100"))["templates"]
        return [t["title"] for t in listed if not t["builtin"]]

    assert await titles("q=HAIKU") == ["Haiku"]
    assert await titles("q=outline") == ["Blog post outline"]
    assert await titles("q=poet") == ["Haiku"]  # a tag matches too
    assert await titles("tag=writing") == ["Blog post outline"]
    assert await titles("q=100%25_") == []

    response = await user.request("PUT", f"/api/templates/{haiku['id']}/favourite")
    assert (await response.json())["favourite"] is True
    await user.request("PUT", f"/api/templates/{haiku['id']}/favourite")  # twice: still one
    assert await titles("scope=favourites") == ["Haiku"]
    response = await user.delete(f"/api/templates/{haiku['id']}/favourite")
    assert (await response.json())["favourite"] is False
    assert await titles("scope=favourites") == []

    bea = await other(make_client, "bea@example.com")
    for _ in range(2):
        response = await bea.post(
            f"/api/templates/{haiku['id']}/uses", {"values": {"thing": "rain"}}
        )
        assert response.status == 201
    used = await response.json()
    assert used["prompt"] == "A haiku about rain" and used["use_count"] == 2
    for _ in range(3):
        await user.post(f"/api/templates/{blog['id']}/uses", {"values": {"topic": "tea"}})
    # The blog's uses were long ago: it is the most used, but not trending.
    async with user.app[DB].transaction() as session:
        await session.execute(
            update(PromptTemplateUse)
            .where(PromptTemplateUse.template_id == blog["id"])
            .values(used_at=utcnow() - timedelta(days=8))
        )
    assert await titles("sort=popular") == ["Blog post outline", "Haiku"]
    assert await titles("sort=trending") == ["Haiku", "Blog post outline"]
    got = await user.get_json(f"/api/templates/{blog['id']}")
    assert (got["use_count"], got["recent_uses"]) == (3, 0)
    # A use that does not render is refused and not counted.
    response = await user.post(f"/api/templates/{blog['id']}/uses", {"values": {}})
    assert response.status == 422
    assert (await user.get_json(f"/api/templates/{blog['id']}"))["use_count"] == 3


async def test_the_owner_changes_and_deletes_a_template(user: ApiClient):
    made = await create(user)
    response = await user.patch(
        f"/api/templates/{made['id']}",
        {"title": "Renamed", "tags": ["new"], "body": "Only {{topic}}"},
    )
    body = await response.json()
    assert response.status == 200, body
    assert (body["title"], body["tags"], body["body"]) == ("Renamed", ["new"], "Only {{topic}}")
    # Null clears only the system prompt; any other null is a field error, not a change.
    response = await user.patch(
        f"/api/templates/{made['id']}", {"body": None, "variables": None, "title": "Nulled"}
    )
    assert response.status == 422
    assert set((await response.json())["error"]["fields"]) == {"body", "variables"}
    response = await user.patch(f"/api/templates/{made['id']}", {"system_prompt": None})
    assert (await response.json())["system_prompt"] is None
    # A change that leaves a placeholder undeclared is refused whole.
    response = await user.patch(
        f"/api/templates/{made['id']}", {"title": "Broken", "body": "Hi {{nobody}}"}
    )
    assert response.status == 422
    assert (await user.get_json(f"/api/templates/{made['id']}"))["title"] == "Renamed"
    assert (await user.delete(f"/api/templates/{made['id']}")).status == 204
    assert (await user.get(f"/api/templates/{made['id']}")).status == 404
