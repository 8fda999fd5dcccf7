"""Prompt tokens are counted offline (cl100k_base) to reserve a request's maximum cost and to
fit a conversation into each model's context window. A conversation's earlier turns come back
with every new turn and for every model asked; each text is tokenized once, not every time."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from multinotes import tokens
from multinotes.testing import ApiClient


def test_counts_are_cl100k_tokens():
    assert tokens.count_tokens("") == 0
    assert tokens.count_tokens("hello world") == 2
    assert tokens.count_tokens("<|endoftext|>") > 1  # a look-alike is plain text
    assert tokens.count_tokens_remembered("hello world") == 2


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("The quick brown fox jumps over the lazy dog.", 10),
        ("Grüße aus Köln — 東京は晴れ 🌤️", 18),
        ("def f(x):\n    return x ** 2\n", 11),
    ],
)
def test_prose_other_scripts_and_code_count_as_cl100k_does(text: str, count: int):
    assert tokens.count_tokens(text) == count


def test_the_encoder_keeps_no_python_copy_of_its_vocabulary():
    """The 100k ranks live in tiktoken's Rust core; a second copy as a Python dict would cost
    every process that counts tokens ~10 MB (issue #17: idle memory)."""
    tokens.count_tokens("warm")
    assert not tokens.encoding()._mergeable_ranks


async def test_a_conversations_earlier_turns_are_tokenized_once(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
):
    await api.register_admin()
    await api.mark_verified()
    assert (await api.patch("/api/admin/plugins/demo", {"enabled": True})).status == 200
    counted: list[str] = []
    real = tokens.count_tokens

    def counting(text: str) -> int:
        counted.append(text)
        return real(text)

    monkeypatch.setattr(tokens, "count_tokens", counting)
    conversation = (await (await api.post("/api/conversations", {})).json())["id"]

    async def ask(prompt: str, models: list[str]) -> Any:
        response = await api.post(
            f"/api/conversations/{conversation}/messages", {"content": prompt, "models": models}
        )
        assert response.status == 200
        return await response.text()

    run = secrets.token_hex(4)  # texts no earlier test counted
    first, third = f"First question about otters {run}", f"Third question about muskrats {run}"
    await ask(first, ["demo/echo"])
    await ask(f"Second question about beavers {run}", ["demo/echo", "demo/reverse"])
    await ask(third, ["demo/echo", "demo/reverse"])

    assert counted.count(first) == 1  # sent again with two turns, to two models each
    assert counted.count(third) == 1  # asked of two models
