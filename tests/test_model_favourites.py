"""Favourite models: each person stars the models they use most, the model picker lists them
first; the list is theirs alone and names only models of the catalog."""

from __future__ import annotations

from typing import Any

import pytest

from multinotes.testing import ApiClient
from tests.support.scripted_provider import Script, scripted_plugins

ECHO, REVERSE = "script/echo", "script/reverse"


@pytest.fixture
def plugins() -> Any:
    return scripted_plugins({ECHO: Script(chunks=["a"]), REVERSE: Script(chunks=["b"])})


async def favourites(api: ApiClient) -> list[str]:
    return list((await api.get_json("/api/me/model-favourites"))["models"])


async def star(api: ApiClient, model: str, favourite: bool = True) -> Any:
    return await api.post("/api/me/model-favourites", {"model": model, "favourite": favourite})


async def test_favourites_start_empty_and_keep_the_order_they_were_starred(user: ApiClient) -> None:
    assert await favourites(user) == []
    assert (await star(user, REVERSE)).status == 200
    answer = await star(user, ECHO)
    assert answer.status == 200
    assert (await answer.json())["models"] == [REVERSE, ECHO]
    # Starring twice changes nothing.
    await star(user, REVERSE)
    assert await favourites(user) == [REVERSE, ECHO]


async def test_unstarring_removes_a_favourite(user: ApiClient) -> None:
    await star(user, ECHO)
    await star(user, REVERSE)
    assert (await star(user, ECHO, favourite=False)).status == 200
    assert await favourites(user) == [REVERSE]
    # Unstarring what is not a favourite is fine too.
    assert (await star(user, ECHO, favourite=False)).status == 200


async def test_an_unknown_model_cannot_be_starred(user: ApiClient) -> None:
    answer = await star(user, "nowhere/nothing")
    assert answer.status == 404
    assert await favourites(user) == []


async def test_favourites_are_per_person(user: ApiClient, make_client: Any) -> None:
    await star(user, ECHO)
    other = await make_client()
    await other.register_and_login("bob@example.com")
    assert await favourites(other) == []
    await star(other, REVERSE)
    assert await favourites(user) == [ECHO]
    assert await favourites(other) == [REVERSE]


async def test_favourites_need_a_login(api: ApiClient) -> None:
    assert (await api.get("/api/me/model-favourites")).status == 401
