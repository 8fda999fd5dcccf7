"""Markdown images from other sites are rendered as links, never as ``<img>``: a reader's
browser would otherwise fetch them on sight (telling a stranger who read what, and from where).
Images of this site stay images. Checked wherever Markdown is shown: notes, the models'
answers, comments and public share pages."""

from __future__ import annotations

import re

from yarl import URL

from multinotes.testing import ApiClient
from tests.support import demo_user
from tests.support.sse import parse_sse

user = demo_user.user

REMOTE = [
    "https://tracker.example/pixel.png",
    "http://10.0.0.1/inside.png",
    "//tracker.example/protocol-relative.png",
]
MARKDOWN = "\n\n".join(
    [f"![remote {i}]({src})" for i, src in enumerate(REMOTE)] + ["![ours](/static/img/logo.png)"]
)


def check(html: str) -> None:
    sources = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", html)
    assert sources == ["/static/img/logo.png"], html
    for index, src in enumerate(REMOTE):
        link = f'<a href="{src}" rel="noopener noreferrer nofollow">Image: remote {index}</a>'
        assert link in html


async def test_notes_and_their_public_pages_link_remote_images(user: ApiClient) -> None:
    response = await user.post("/api/documents", {"title": "Pictures", "content": MARKDOWN})
    note = await response.json()
    assert response.status == 201, note
    check((await user.get_json(f"/api/documents/{note['id']}"))["html"])
    page = await user.get(f"/notes/{note['id']}")
    check(await page.text())

    share = await user.post(
        "/api/shares", {"object_type": "document", "object_id": note["id"], "public": True}
    )
    link = URL((await share.json())["url"])
    public = await user.client.get(link.path)
    assert public.status == 200
    check(await public.text())


async def test_comments_link_remote_images(user: ApiClient) -> None:
    note = await (await user.post("/api/documents", {"title": "T", "content": "x"})).json()
    response = await user.post(f"/api/documents/{note['id']}/comments", {"body": MARKDOWN})
    comment = await response.json()
    assert response.status == 201, comment
    check(comment["html"])


async def test_answers_link_remote_images(user: ApiClient) -> None:
    conversation = await (await user.post("/api/conversations", {})).json()
    # The echo model repeats the prompt, images and all.
    response = await user.post(
        f"/api/conversations/{conversation['id']}/messages",
        {"content": MARKDOWN, "models": ["demo/echo"]},
    )
    events = dict(parse_sse(await response.text()))
    check(events["done"]["html"])
    shown = await user.get_json(f"/api/conversations/{conversation['id']}")
    answers = [m for m in shown["messages"] if m["role"] == "assistant"]
    check(answers[0]["html"])
