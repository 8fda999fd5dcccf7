"""The chat workspace's server-rendered pages and partials: who may see them, the model picker,
the conversation list (search by title, newest first, paging) and the thread (one column per
model, branch switching)."""

from __future__ import annotations

from typing import Any

from multinotes.testing import ApiClient
from tests.support import demo_user
from tests.support.pages import Page, get_page
from tests.support.sse import parse_sse

ECHO, REVERSE, SWATCH = "demo/echo", "demo/reverse", "demo/swatch"


user = demo_user.user


async def new_conversation(api: ApiClient, **body: Any) -> str:
    response = await api.post("/api/conversations", body)
    assert response.status == 201, await response.text()
    return str((await response.json())["id"])


async def send(api: ApiClient, conversation: str, content: str, models: list[str], **extra: Any):
    response = await api.post(
        f"/api/conversations/{conversation}/messages",
        {"content": content, "models": models, **extra},
    )
    assert response.status == 200, await response.text()
    return parse_sse(await response.text())


async def regenerate(api: ApiClient, message_id: str):
    response = await api.post(f"/api/messages/{message_id}/regenerate", {})
    assert response.status == 200, await response.text()
    return parse_sse(await response.text())


def answers(events: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    return {data["model"]: data["message_id"] for name, data in events if name == "done"}


def columns(page: Page) -> list[tuple[str, str]]:
    """(model, message id) of every answer shown, in order."""
    return [(e.attrs["data-model"], e.attrs["data-message-id"]) for e in page.find("article")]


async def test_the_workspace_is_for_logged_in_users(api: ApiClient) -> None:
    for path in ("/chat", "/chat/sidebar", "/chat/0123/thread", "/chat/0123"):
        response = await api.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=/chat")


async def test_a_new_chat_offers_the_catalog_with_prices_badges_and_options(
    user: ApiClient,
) -> None:
    page = await get_page(user, "/chat")
    boxes = {e.attrs["value"]: e for e in page.find("input", name="models")}
    assert {ECHO, REVERSE, SWATCH} <= set(boxes)
    assert "checked" in boxes[ECHO].attrs  # the first text model is chosen for a start
    assert "checked" not in boxes[REVERSE].attrs
    echo = next(e for e in page.with_class("model-choice") if "Echo" in e.text)
    assert "Demo" in echo.text and "Text" in echo.text and "Code" in echo.text
    assert "100 in / 200 out credits per 1M tokens" in echo.text
    assert "No ratings yet" in echo.text
    swatch = next(e for e in page.with_class("model-choice") if "Swatch" in e.text)
    assert "50 credits per image" in swatch.text

    # Models that cannot be used are listed, disabled, with the reason; this user is the
    # admin, who can add the key (the page links the provider's settings).
    unavailable = [e for e in page.find("input", name="models") if "disabled" in e.attrs]
    for box in unavailable:
        reason = page.one("small", id=box.attrs["aria-describedby"])
        assert reason.text in (
            "Needs an API key",
            "Unavailable right now (the provider is failing)",
        )
    if unavailable:
        assert any(
            e.attrs.get("href", "").startswith("/admin/plugins/")
            for e in page.with_class("model-configure")
        )

    # Per-model options follow each model's Options (and its limits).
    echo_options = page.one("fieldset", data_options_for=ECHO)
    assert "hidden" not in echo_options.attrs
    fields = {e.attrs["data-option"]: e for e in page.elements if "data-option" in e.attrs}
    assert {"temperature", "max_tokens", "system", "size", "n"} <= set(fields)
    max_tokens = next(
        e
        for e in page.elements
        if e.attrs.get("data-option") == "max_tokens" and e.attrs["id"].startswith("opt-1-")
    )
    assert max_tokens.attrs["max"] == "2000"
    assert "hidden" in page.one("fieldset", data_options_for=SWATCH).attrs

    wallet = page.one("strong", id="wallet-balance")
    assert wallet.text == "10,000"
    assert "hidden" in page.one("span", id="wallet-low").attrs
    assert page.one("ol", id="thread").text.strip().startswith("Ask several models at once.")


async def test_a_tool_preselects_its_models_and_shows_its_inputs(user: ApiClient) -> None:
    page = await get_page(user, "/chat?tool=image")
    checked = [e.attrs["value"] for e in page.find("input", name="models") if "checked" in e.attrs]
    assert checked == [SWATCH]
    assert page.one("div", id="workspace").attrs["data-tool"] == "image"
    assert page.one("h1", id="ws-title").text == "Image"
    assert page.one("select", id="tool-size").attrs["data-tool-option"] == "size"
    assert any(option.text == "1024x1024" for option in page.find("option"))
    assert page.one("input", id="tool-n").attrs["max"] == "4"

    speech = await get_page(user, "/chat?tool=text_to_speech")
    assert speech.one("select", id="tool-voice").attrs["data-tool-option"] == "voice"
    assert speech.find("p", class_="flash flash-warning")  # no model can speak here

    transcribe = await get_page(user, "/chat?tool=speech_to_text")
    assert transcribe.one("input", id="attach").attrs["accept"] == "audio/*"
    assert transcribe.one("div", id="workspace").attrs["data-file-required"] == "true"

    writer = await get_page(user, "/chat?tool=prompt_writer")
    system = writer.one("input", data_tool_option="system")
    assert system.attrs["value"].startswith("You are an expert prompt engineer")

    for ignored in ("%3Cscript%3E", "no_such_tool"):
        page = await get_page(user, f"/chat?tool={ignored}")
        assert page.one("div", id="workspace").attrs["data-tool"] == ""
        assert not page.find("div", id="tool-inputs")


def list_links(page: Page) -> list[Any]:
    """The sidebar list's own links (each conversation, "Show older"), not its menus' actions."""
    return [a for a in page.find("a") if a.attrs.get("role") != "button"]


async def test_the_conversation_list_is_newest_first_and_searched_by_title(
    user: ApiClient, make_client: Any
) -> None:
    first = await new_conversation(user, title="Gardening in spring")
    await new_conversation(user, title="Taxes <b>explained</b>")
    third = await new_conversation(user, title="Garden tools")
    other = await make_client()
    await other.register_and_login("other@example.com")
    await new_conversation(other, title="Garden of someone else")

    page = await get_page(user, "/chat/sidebar")
    links = list_links(page)
    assert [a.text for a in links] == [
        "Garden tools",
        "Taxes <b>explained</b>",
        "Gardening in spring",
    ]
    assert not page.find("b")  # titles are text

    found = await get_page(user, f"/chat/sidebar?q=garden&current={third}")
    assert [(a.text, a.attrs["href"]) for a in list_links(found)] == [
        ("Garden tools", f"/chat/{third}"),
        ("Gardening in spring", f"/chat/{first}"),
    ]
    assert list_links(found)[0].attrs.get("aria-current") == "page"
    assert "aria-current" not in list_links(found)[1].attrs

    nothing = await get_page(user, "/chat/sidebar?q=100%25")
    assert "No conversation matches “100%”." in nothing.one("li").text

    # Without JavaScript, the search form reloads the page with the list filtered.
    full = await get_page(user, "/chat?q=taxes")
    listed = [a.text for a in full.find("a") if a.attrs["href"].startswith("/chat/")]
    assert listed == ["Taxes <b>explained</b>"]


async def test_the_sidebar_checks_its_query_with_the_apis_model(user: ApiClient) -> None:
    for query, field in (("q=" + "x" * 201, "q"), ("before=" + "0" * 81, "before")):
        for path in ("/chat/sidebar", "/api/conversations"):
            response = await user.get(f"{path}?{query}")
            assert response.status == 422, (path, query)
            assert field in await response.text(), (path, query)


async def test_the_conversation_list_pages_with_show_older(user: ApiClient) -> None:
    for n in range(32):
        await new_conversation(user, title=f"Chat {n:02}")
    page = await get_page(user, "/chat/sidebar")
    links = list_links(page)
    assert len(links) == 31  # 30 conversations and "Show older"
    more = links[-1]
    assert more.text == "Show older" and more.attrs["hx-swap"] == "outerHTML"
    assert links[0].text == "Chat 31"
    older = await get_page(user, more.attrs["hx-get"])
    assert [a.text for a in list_links(older)] == ["Chat 01", "Chat 00"]
    assert not older.find("li", class_="conversation-empty")


async def test_the_thread_shows_one_column_per_model_and_switches_branches(
    user: ApiClient,
) -> None:
    conversation = await new_conversation(user)
    first = answers(await send(user, conversation, "Hello **there**", [ECHO, REVERSE]))
    page = await get_page(user, f"/chat/{conversation}")
    assert page.one("h1", id="ws-title").text == "Hello **there**"
    assert columns(page) == [(ECHO, first[ECHO]), (REVERSE, first[REVERSE])]
    echo_body = page.one("div", id=f"answer-{first[ECHO]}-body")
    assert "You asked: Hello there" in echo_body.text
    assert "<strong>there</strong>" in page.html  # the Markdown is rendered
    for stats in page.find("dl", data_field="stats"):
        assert "in /" in stats.text and "credit" in stats.text and "ms" in stats.text
    assert not page.find("nav", class_="switcher")
    # The models of the last turn are chosen for the next prompt.
    checked = {e.attrs["value"] for e in page.find("input", name="models") if "checked" in e.attrs}
    assert checked == {ECHO, REVERSE}
    replies = {e.attrs["value"]: e for e in page.find("input", name="reply-to")}
    assert set(replies) == {first[ECHO], first[REVERSE]}
    assert "checked" in replies[first[ECHO]].attrs

    # Regenerating Echo adds a sibling: still two columns, Echo's now "2/2".
    second_echo = answers(await regenerate(user, first[ECHO]))[ECHO]
    thread = await get_page(user, f"/chat/{conversation}/thread")
    assert columns(thread) == [(ECHO, second_echo), (REVERSE, first[REVERSE])]
    switcher = thread.one("nav", class_="switcher")
    assert switcher.attrs["aria-label"] == "Echo answers" and "2/2" in switcher.text
    previous = thread.one("a", id=f"switch-{thread.find('li')[0].attrs['data-message-id']}-1-prev")
    assert previous.attrs["hx-get"] == f"/chat/{conversation}/thread?leaf={first[ECHO]}"
    assert previous.attrs["href"] == f"/chat/{conversation}?leaf={first[ECHO]}"

    back = await get_page(user, f"/chat/{conversation}/thread?leaf={first[ECHO]}")
    assert columns(back) == [(ECHO, first[ECHO]), (REVERSE, first[REVERSE])]
    assert "1/2" in back.one("nav", class_="switcher").text

    # A follow-up on Reverse's answer stays on screen whichever Echo answer is shown.
    follow = answers(await send(user, conversation, "Go on", [REVERSE], parent_id=first[REVERSE]))
    for leaf in ("", f"?leaf={first[ECHO]}", f"?leaf={second_echo}"):
        view = await get_page(user, f"/chat/{conversation}/thread{leaf}")
        assert [m for m, _ in columns(view)] == [ECHO, REVERSE, REVERSE]
        assert columns(view)[2] == (REVERSE, follow[REVERSE])
        assert len(view.with_class("continues")) == 1

    # A follow-up on one Echo answer belongs to that branch only.
    on_echo = answers(await send(user, conversation, "Echo on", [ECHO], parent_id=second_echo))
    view = await get_page(user, f"/chat/{conversation}/thread?leaf={on_echo[ECHO]}")
    assert columns(view)[-1] == (ECHO, on_echo[ECHO])
    view = await get_page(user, f"/chat/{conversation}/thread?leaf={first[ECHO]}")
    assert (ECHO, on_echo[ECHO]) not in columns(view)


async def test_an_edited_prompt_is_a_branch_with_a_prompt_switcher(user: ApiClient) -> None:
    conversation = await new_conversation(user)
    first = answers(await send(user, conversation, "Version one", [ECHO]))
    # parent_id null: a second root, i.e. the first prompt edited
    edited = answers(await send(user, conversation, "Version two", [ECHO], parent_id=None))
    view = await get_page(user, f"/chat/{conversation}/thread")
    assert columns(view) == [(ECHO, edited[ECHO])]
    prompts = view.find("nav", aria_label="Prompt versions")
    assert len(prompts) == 1 and "2/2" in prompts[0].text
    assert view.with_class("prompt-text")[0].text == "Version two"
    older = await get_page(user, f"/chat/{conversation}/thread?leaf={first[ECHO]}")
    assert older.with_class("prompt-text")[0].text == "Version one"
    assert "1/2" in older.one("nav", aria_label="Prompt versions").text


async def test_generated_images_and_ratings_are_shown(user: ApiClient) -> None:
    conversation = await new_conversation(user, tool="image")
    made = answers(
        await send(user, conversation, "a red square", [SWATCH], options={SWATCH: {"n": 2}})
    )
    response = await user.post(f"/api/messages/{made[SWATCH]}/rating", {"stars": 5})
    assert response.status == 200
    page = await get_page(user, f"/chat/{conversation}")
    images = page.find("img")
    assert len(images) == 2 and all(i.attrs["src"].startswith("/api/media/") for i in images)
    assert page.one("summary", data_field="rate-summary").text == "Rated 5/5"
    assert "checked" in page.one("input", id=f"answer-{made[SWATCH]}-star5").attrs
    assert "2 images" in page.one("dl", data_field="stats").text
    # The conversation keeps its tool: its inputs are offered again.
    assert page.one("div", id="workspace").attrs["data-tool"] == "image"


async def test_someone_elses_conversation_is_not_found(user: ApiClient, make_client: Any) -> None:
    conversation = await new_conversation(user)
    await send(user, conversation, "Private", [ECHO])
    other = await make_client()
    await other.register_and_login("nosy@example.com")
    for path in (f"/chat/{conversation}", f"/chat/{conversation}/thread"):
        response = await other.get(path, allow_redirects=False)
        assert response.status == 404, path
        assert "Private" not in await response.text()
