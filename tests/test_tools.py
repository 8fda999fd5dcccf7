"""Tools on the home screen: what each offers users, and what admins may change."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from multinotes.keys import DB
from multinotes.testing import ApiClient
from multinotes.tools import PROMPT_WRITER_SYSTEM, Tool
from tests.support.scripted_provider import Script, ScriptedModel, ScriptedPlugin

WRITER, CODER, PAINTER, SEER = "script/writer", "script/coder", "script/painter", "script/seer"
DEFAULT_ORDER = [
    "text",
    "image",
    "code",
    "prompt_writer",
    "text_to_speech",
    "speech_to_text",
    "image_to_text",
    "video_to_text",
]


@pytest.fixture
def plugins():
    models = [
        ScriptedModel(WRITER, Script(), capabilities=frozenset({"text"})),
        ScriptedModel(CODER, Script(), capabilities=frozenset({"text", "code"})),
        ScriptedModel(PAINTER, Script(), capabilities=frozenset({"image_generation"})),
        ScriptedModel(SEER, Script(), capabilities=frozenset({"text", "vision"})),
    ]
    return [("script", ScriptedPlugin(*models))]


@pytest.fixture
async def member(admin: ApiClient, make_client) -> ApiClient:
    """A second, non-admin user (the admin fixture registered the install's first account)."""
    client = await make_client()
    await client.register_and_login("member@example.com")
    return client


def by_id(tools: list[dict]) -> dict[str, dict]:
    return {t["id"]: t for t in tools}


async def test_the_eight_default_tools_with_their_models_and_inputs(member: ApiClient):
    tools = await member.get_json("/api/tools")
    assert [t["id"] for t in tools] == DEFAULT_ORDER
    tools = by_id(tools)
    assert tools["text"]["capability"] == "text"
    assert set(tools["text"]["models"]) == {WRITER, CODER, SEER}
    assert tools["code"]["models"] == [CODER]
    assert tools["image"]["models"] == [PAINTER]
    assert tools["image_to_text"]["models"] == [SEER]
    assert tools["text_to_speech"]["models"] == []  # nothing can speak here
    assert tools["prompt_writer"]["capability"] == "text"
    assert tools["prompt_writer"]["system_prompt"] == PROMPT_WRITER_SYSTEM
    assert tools["text"]["system_prompt"] is None and tools["text"]["inputs"] == []

    image_inputs = {i["name"]: i for i in tools["image"]["inputs"]}
    assert set(image_inputs) == {"size", "n"}
    assert "1024x1024" in image_inputs["size"]["choices"]
    assert image_inputs["n"] == {**image_inputs["n"], "type": "number", "min": 1, "max": 4}
    speech = {i["name"]: i for i in tools["text_to_speech"]["inputs"]}
    assert set(speech) == {"voice", "format"} and "mp3" in speech["format"]["choices"]
    files = {
        tool: tools[tool]["inputs"][0]["accept"]
        for tool in ("speech_to_text", "image_to_text", "video_to_text")
    }
    assert files == {
        "speech_to_text": "audio/*",
        "image_to_text": "image/*",
        "video_to_text": "video/*",
    }
    assert all(tools[t]["inputs"][0]["type"] == "file" for t in files)
    assert all(tools[t]["inputs"][0]["required"] for t in files)


async def test_tools_need_a_login_and_admin_endpoints_need_an_admin(
    api: ApiClient, member: ApiClient, make_client
):
    anonymous = await make_client()
    assert (await anonymous.get("/api/tools")).status == 401
    assert (await member.get("/api/admin/tools")).status == 403
    response = await member.patch("/api/admin/tools/text", {"name": "Mine"})
    assert response.status == 403
    response = await member.post("/api/admin/tools/order", {"ids": DEFAULT_ORDER[::-1]})
    assert response.status == 403
    assert (await member.get_json("/api/tools"))[0]["name"] == "Text"


async def test_admins_rename_describe_and_hide_tools(admin: ApiClient, member: ApiClient):
    response = await admin.patch(
        "/api/admin/tools/image", {"name": "Pictures", "description": "Draw anything."}
    )
    body = await response.json()
    assert response.status == 200, body
    assert body["name"] == "Pictures" and body["description"] == "Draw anything."

    response = await admin.patch("/api/admin/tools/code", {"hidden": True})
    assert (await response.json())["hidden"] is True
    visible = by_id(await member.get_json("/api/tools"))
    assert "code" not in visible
    assert visible["image"]["name"] == "Pictures"
    listed = by_id(await admin.get_json("/api/admin/tools"))
    assert listed["code"]["hidden"] is True and len(listed) == 8

    await admin.patch("/api/admin/tools/code", {"hidden": False})
    assert "code" in by_id(await member.get_json("/api/tools"))


async def test_admins_choose_the_models_a_tool_offers(admin: ApiClient, member: ApiClient):
    response = await admin.patch("/api/admin/tools/text", {"model_ids": [SEER, WRITER]})
    body = await response.json()
    assert response.status == 200, body
    assert body["model_ids"] == [SEER, WRITER]
    assert {c["id"] for c in body["candidates"]} == {WRITER, CODER, SEER}
    assert by_id(await member.get_json("/api/tools"))["text"]["models"] == [SEER, WRITER]

    # A model switched off in the catalog leaves every tool that offered it.
    await admin.patch(f"/api/admin/models/{SEER}", {"enabled": False})
    tools = by_id(await member.get_json("/api/tools"))
    assert tools["text"]["models"] == [WRITER]
    assert tools["image_to_text"]["models"] == []

    # null: every model with the capability again.
    await admin.patch(f"/api/admin/models/{SEER}", {"enabled": True})
    await admin.patch("/api/admin/tools/text", {"model_ids": None})
    assert set(by_id(await member.get_json("/api/tools"))["text"]["models"]) == {
        WRITER,
        CODER,
        SEER,
    }


async def test_the_prompt_writers_system_prompt_can_be_changed_and_cleared(
    admin: ApiClient, member: ApiClient
):
    await admin.patch("/api/admin/tools/prompt_writer", {"system_prompt": "Improve prompts."})
    tools = by_id(await member.get_json("/api/tools"))
    assert tools["prompt_writer"]["system_prompt"] == "Improve prompts."
    await admin.patch("/api/admin/tools/prompt_writer", {"system_prompt": "   "})
    assert by_id(await member.get_json("/api/tools"))["prompt_writer"]["system_prompt"] is None


@pytest.mark.parametrize(
    ("tool", "patch", "field", "says"),
    [
        ("text", {"model_ids": ["nope/model"]}, "model_ids.0", "unknown model 'nope/model'"),
        ("text", {"model_ids": [WRITER, PAINTER]}, "model_ids.1", "cannot do text"),
        ("text", {"model_ids": []}, "model_ids", "choose at least one model"),
        ("text", {"model_ids": [WRITER, WRITER]}, "model_ids", "listed twice"),
        ("image", {"system_prompt": "Be nice"}, "system_prompt", "take no system prompt"),
        ("text", {"name": ""}, "name", ""),
        ("text", {"name": "   "}, "name", "needs a name"),
        ("text", {"colour": "red"}, "colour", ""),
        ("text", {"position": -1}, "position", ""),
    ],
)
async def test_invalid_changes_are_refused_with_the_field_named(
    admin: ApiClient, tool: str, patch: dict, field: str, says: str
):
    before = by_id(await admin.get_json("/api/admin/tools"))[tool]
    response = await admin.patch(f"/api/admin/tools/{tool}", patch)
    body = await response.json()
    assert response.status == 422, body
    assert field in body["error"]["fields"], body
    assert says in body["error"]["fields"][field]
    after = by_id(await admin.get_json("/api/admin/tools"))[tool]
    assert after == before


async def test_unknown_tools_are_404(admin: ApiClient):
    response = await admin.patch("/api/admin/tools/teleport", {"name": "Beam"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_tool"


async def test_admins_reorder_tools(admin: ApiClient, member: ApiClient):
    new_order = ["image", *[t for t in DEFAULT_ORDER if t != "image"]][::-1]
    response = await admin.post("/api/admin/tools/order", {"ids": new_order})
    assert response.status == 200, await response.json()
    assert [t["id"] for t in await member.get_json("/api/tools")] == new_order

    # Moving one tool shifts the others.
    response = await admin.patch("/api/admin/tools/text", {"position": 0})
    assert response.status == 200
    order = [t["id"] for t in await admin.get_json("/api/admin/tools")]
    assert order == ["text", *[t for t in new_order if t != "text"]]
    assert [t["position"] for t in await admin.get_json("/api/admin/tools")] == list(range(8))


@pytest.mark.parametrize(
    ("ids", "says"),
    [
        (DEFAULT_ORDER[:-1], "missing: video_to_text"),
        ([*DEFAULT_ORDER, "teleport"], "unknown: teleport"),
        ([*DEFAULT_ORDER, "text"], "listed twice"),
    ],
)
async def test_a_reorder_must_list_every_tool_once(admin: ApiClient, ids: list[str], says: str):
    response = await admin.post("/api/admin/tools/order", {"ids": ids})
    body = await response.json()
    assert response.status == 422
    assert says in body["error"]["fields"]["ids"]
    assert [t["id"] for t in await admin.get_json("/api/admin/tools")] == DEFAULT_ORDER


async def test_defaults_are_seeded_once_even_by_concurrent_first_reads(admin: ApiClient):
    results = await asyncio.gather(*(admin.get_json("/api/tools") for _ in range(6)))
    assert all([t["id"] for t in tools] == DEFAULT_ORDER for tools in results)
    async with admin.app[DB].read() as session:
        assert await session.scalar(select(func.count()).select_from(Tool)) == 8


async def test_the_admin_page_reorders_hides_and_edits_without_javascript(
    admin: ApiClient, member: ApiClient
):
    response = await admin.post(
        "/admin/tools/image/move", data={"direction": "up"}, allow_redirects=False
    )
    assert response.status == 303
    assert [t["id"] for t in await member.get_json("/api/tools")][:2] == ["image", "text"]

    response = await admin.post(
        "/admin/tools/code/visibility", data={"hidden": "true"}, allow_redirects=False
    )
    assert response.status == 303
    assert "code" not in by_id(await member.get_json("/api/tools"))

    form = {
        "name": "Painter",
        "description": "Pictures",
        "models": "chosen",
        "model_ids": PAINTER,
    }
    response = await admin.post("/admin/tools/image", data=form, allow_redirects=False)
    assert response.status == 303
    image = by_id(await admin.get_json("/api/admin/tools"))["image"]
    assert (image["name"], image["model_ids"], image["hidden"]) == ("Painter", [PAINTER], False)

    # "Only these" with nothing ticked is refused on the page, with the reason shown.
    nothing_ticked = {k: v for k, v in form.items() if k != "model_ids"}
    response = await admin.post("/admin/tools/image", data=nothing_ticked)
    assert response.status == 422
    assert "choose at least one model" in await response.text()
    page = await admin.get("/admin/tools")
    assert page.status == 200 and "Painter" in await page.text()
    assert (await member.get("/admin/tools", allow_redirects=False)).status == 403
