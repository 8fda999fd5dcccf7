"""The built-in starter templates and the composer's suggestions, through the HTTP API.

An install starts with about twenty public starter templates that belong to nobody; everyone sees
and runs them, admins change or delete them (they stay public), and seeding them again (every
start) neither duplicates them nor brings back one an admin deleted. While a prompt is typed,
``/api/templates/suggestions`` offers the templates whose title, description or tags fit it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from multinotes.keys import DB
from multinotes.prompts import starters
from multinotes.prompts.models import PromptTemplate
from multinotes.testing import ApiClient


async def person(make_client: Any, email: str) -> ApiClient:
    client: ApiClient = await make_client()
    await client.register_and_login(email, name=email.split("@")[0].capitalize())
    return client


async def builtins(client: ApiClient) -> dict[str, dict[str, Any]]:
    listed = await client.get_json("/api/templates?scope=builtin&limit=100")
    return {t["title"]: t for t in listed["templates"]}


async def builtin_rows(client: ApiClient) -> int:
    async with client.app[DB].read() as session:
        count = await session.scalar(
            select(func.count()).where(PromptTemplate.builtin_key.is_not(None))
        )
    return int(count or 0)


def test_every_starter_is_a_valid_template_with_a_unique_key():
    starters.check_starters()
    assert len(starters.STARTERS) >= 20


async def test_an_install_starts_with_public_starters_everyone_sees_and_runs(
    admin: ApiClient, make_client: Any
):
    bea = await person(make_client, "bea@example.com")
    seen = await builtins(bea)
    assert len(seen) == len(starters.STARTERS) >= 20
    translate = seen["Translate"]
    assert translate["builtin"] and translate["visibility"] == "public"
    assert translate["owner"] == starters.BUILTIN_OWNER
    assert not translate["is_owner"] and not translate["can_edit"]
    # In the whole library too, with their tags.
    everything = await bea.get_json("/api/templates?limit=100&q=translate")
    assert "Translate" in [t["title"] for t in everything["templates"]]
    assert "code" in {t["tag"] for t in everything["tags"]}
    # A starter renders like any template, with its choice's default.
    response = await bea.post(
        f"/api/templates/{translate['id']}/uses", {"values": {"text": "Bonjour"}}
    )
    used = await response.json()
    assert response.status == 201, used
    assert "into English" in used["prompt"] and "Bonjour" in used["prompt"]
    assert used["use_count"] == 1
    # An admin sees that they may change them.
    assert (await builtins(admin))["Translate"]["can_edit"] is True


async def test_seeding_again_adds_nothing_and_does_not_bring_back_a_deleted_starter(
    admin: ApiClient,
):
    db = admin.app[DB]
    assert await starters.seed(db) == []  # the app seeded them when it started
    assert await builtin_rows(admin) == len(starters.STARTERS)
    regex = (await builtins(admin))["Build a regular expression"]
    assert (await admin.delete(f"/api/templates/{regex['id']}")).status == 204
    assert await starters.seed(db) == []
    assert await builtin_rows(admin) == len(starters.STARTERS) - 1
    assert "Build a regular expression" not in await builtins(admin)


async def test_admins_change_starters_which_stay_public_and_others_cannot(
    admin: ApiClient, make_client: Any
):
    bea = await person(make_client, "bea@example.com")
    quiz = (await builtins(admin))["Quiz me"]
    response = await bea.patch(f"/api/templates/{quiz['id']}", {"title": "Bea's quiz"})
    assert response.status == 403
    assert (await bea.delete(f"/api/templates/{quiz['id']}")).status == 403

    response = await admin.patch(
        f"/api/templates/{quiz['id']}",
        {"title": "Quiz me on anything", "tags": ["learning", "quiz"]},
    )
    changed = await response.json()
    assert response.status == 200, changed
    assert (changed["title"], changed["tags"]) == ("Quiz me on anything", ["learning", "quiz"])
    assert changed["builtin"] and changed["owner"] == starters.BUILTIN_OWNER
    assert (await builtins(bea))["Quiz me on anything"]["id"] == quiz["id"]

    for change, field in (
        ({"visibility": "private"}, "visibility"),
        ({"shared_with": ["bea@example.com"]}, "shared_with"),
    ):
        response = await admin.patch(f"/api/templates/{quiz['id']}", change)
        body = await response.json()
        assert response.status == 422, body
        assert field in body["error"]["fields"]
    assert (await bea.get_json(f"/api/templates/{quiz['id']}"))["visibility"] == "public"


async def test_suggestions_offer_the_templates_that_fit_what_is_typed(
    user: ApiClient, make_client: Any
):
    async def suggested(client: ApiClient, text: str, limit: int = 3) -> list[str]:
        response = await client.get(
            "/api/templates/suggestions", params={"text": text, "limit": str(limit)}
        )
        body = await response.json()
        assert response.status == 200, body
        return [t["title"] for t in body["templates"]]

    assert (await suggested(user, "Please translate this paragraph into French"))[0] == (
        "Translate"
    )
    assert (await suggested(user, "summarize the following article"))[0] == "Summarise a text"
    assert "Review code" in await suggested(user, "can you review my code for bugs")
    assert await suggested(user, "") == []
    assert await suggested(user, "the and for with") == []  # only common words
    assert len(await suggested(user, "code writing reasoning learning", limit=5)) == 5

    # One's own templates are suggested; someone else's private one never is.
    bea = await person(make_client, "bea@example.com")
    response = await bea.post(
        "/api/templates",
        {
            "title": "Limerick about cats",
            "body": "A limerick about {{cat}}",
            "variables": [{"name": "cat"}],
            "tags": ["poetry"],
        },
    )
    assert response.status == 201
    assert await suggested(bea, "write a limerick") == ["Limerick about cats"]
    assert await suggested(user, "write a limerick") == []

    response = await user.get("/api/templates/suggestions", params={"limit": "50"})
    assert response.status == 422
    assert "limit" in (await response.json())["error"]["fields"]
