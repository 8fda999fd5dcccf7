"""One-time account links (``multinotes.plugin.AccountLinks``): how a user of another service (a
chat app's user) comes to speak for a MultinotesAI account. The plugin sends them a link, sealed
under the instance's keys and good for a while and once; signed in, they see who would be linked
(a GET changes nothing) and confirm. A user elsewhere speaks for one account; an account lists,
unlinks and picks a default model for its links. Slack and Discord link their users this way.

Tested on a small plugin written here (its table of links, its table of used links, a revision,
the link page), as a third party would write one."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from multinotes.plugin import Invalid, NotFound, plugin_context
from multinotes.plugins.providers import demo
from multinotes.testing import ApiClient, plugin_client

FILES = {
    "tables.py": """
        from datetime import datetime

        from sqlalchemy import String
        from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

        from multinotes.plugin import (
            LinkUseColumns,
            UTCDateTime,
            core_foreign_key,
            new_id,
            plugin_metadata,
            utcnow,
        )


        class Base(DeclarativeBase):
            metadata = plugin_metadata()


        class Link(Base):
            __tablename__ = "chatdemo_links"

            id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
            chat_user_id: Mapped[str] = mapped_column(String(32), unique=True)
            chat_name: Mapped[str] = mapped_column(String(20), default="")
            user_id: Mapped[str] = mapped_column(
                core_foreign_key("users.id", ondelete="CASCADE"), index=True
            )
            default_model: Mapped[str | None] = mapped_column(String(200))
            created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


        class LinkUse(LinkUseColumns, Base):
            __tablename__ = "chatdemo_link_uses"
    """,
    "migrations/__init__.py": "",
    "migrations/chatdemo_0001_links.py": '''
        """chatdemo_links, chatdemo_link_uses"""

        import sqlalchemy as sa
        from alembic import op

        from multinotes.plugin import UTCDateTime

        revision = "chatdemo_0001"
        down_revision = None
        branch_labels = ("chatdemo",)
        depends_on = "0001_core"


        def upgrade() -> None:
            op.create_table(
                "chatdemo_links",
                sa.Column("id", sa.String(length=32), nullable=False),
                sa.Column("chat_user_id", sa.String(length=32), nullable=False),
                sa.Column("chat_name", sa.String(length=20), nullable=False),
                sa.Column("user_id", sa.String(length=32), nullable=False),
                sa.Column("default_model", sa.String(length=200), nullable=True),
                sa.Column("created_at", UTCDateTime(), nullable=False),
                sa.ForeignKeyConstraint(
                    ["user_id"],
                    ["users.id"],
                    name=op.f("fk_chatdemo_links_user_id_users"),
                    ondelete="CASCADE",
                ),
                sa.PrimaryKeyConstraint("id", name=op.f("pk_chatdemo_links")),
                sa.UniqueConstraint("chat_user_id", name=op.f("uq_chatdemo_links_chat_user_id")),
            )
            op.create_index(op.f("ix_chatdemo_links_user_id"), "chatdemo_links", ["user_id"])
            op.create_table(
                "chatdemo_link_uses",
                sa.Column("nonce", sa.String(length=32), nullable=False),
                sa.Column("used_at", UTCDateTime(), nullable=False),
                sa.PrimaryKeyConstraint("nonce", name=op.f("pk_chatdemo_link_uses")),
            )


        def downgrade() -> None:
            op.drop_table("chatdemo_link_uses")
            op.drop_table("chatdemo_links")
    ''',
    "templates/chatdemo/link.html": """
        {% if problem %}<p role="alert">{{ problem }}</p>{% else %}
        <p>Link {{ chat_name }}?</p><input name="token" value="{{ token }}">{% endif %}
    """,
    "__init__.py": """
        from pathlib import Path

        from aiohttp import web

        from multinotes.plugin import (
            AccountLinks,
            MigrationsRegistrar,
            RouteRegistrar,
            TemplateRegistrar,
            hookimpl,
            plugin_context,
        )

        from .tables import Base, Link, LinkUse

        HERE = Path(__file__).parent
        LINKS = AccountLinks(
            table=Link,
            uses=LinkUse,
            identity=("chat_user_id",),
            path="/integrations/chatdemo/link",
            service="Chatdemo",
            again="say hello in Chatdemo again",
        )


        async def link_page(request: web.Request) -> web.StreamResponse:
            ctx = plugin_context(request.app, "chatdemo")
            return LINKS.page(ctx, request, "chatdemo/link.html")


        async def link(request: web.Request) -> web.StreamResponse:
            ctx = plugin_context(request.app, "chatdemo")
            form = await request.post()
            linked = await LINKS.redeem(ctx, ctx.caller(request).user_id, str(form["token"]))
            names = {"chat_user_id": linked.chat_user_id, "chat_name": linked.chat_name}
            return web.json_response({"id": linked.id, **names})


        @hookimpl
        def register_migrations(register: MigrationsRegistrar) -> None:
            register(HERE / "migrations", metadata=Base.metadata)


        @hookimpl
        def register_templates(register: TemplateRegistrar) -> None:
            register(templates=HERE / "templates")


        @hookimpl
        def register_routes(register: RouteRegistrar) -> None:
            register("GET", "/integrations/chatdemo/link", link_page, access="user")
            register("POST", "/api/plugins/chatdemo/links", link, access="user")
    """,
}


@pytest.fixture
def chatdemo(tmp_path: Path) -> Any:
    site = tmp_path / "site"
    for name, text in FILES.items():
        path = site / "multinotes_chatdemo" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    sys.path.insert(0, str(site))
    try:
        yield importlib.import_module("multinotes_chatdemo")
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.startswith("multinotes_chatdemo")]:
            del sys.modules[name]


@pytest.fixture
async def api(tmp_path: Path, chatdemo: Any) -> AsyncIterator[ApiClient]:
    async with plugin_client(tmp_path / "data", [("chatdemo", chatdemo), ("demo", demo)]) as api:
        await api.register_admin()
        yield api


def token_in(url: str) -> str:
    return re.search(r"token=([^&]+)", url).group(1)  # type: ignore[union-attr]


async def follow(api: ApiClient, url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    page = await api.get(f"{parts.path}?{parts.query}")
    assert page.headers["Cache-Control"] == "no-store"
    return page.status, await page.text()


async def redeem(api: ApiClient, token: str) -> Any:
    return await api.post("/api/plugins/chatdemo/links", data={"token": token})


async def test_a_link_shows_who_would_be_linked_and_links_them_once(api, chatdemo):
    ctx = plugin_context(api.app, "chatdemo")
    url = chatdemo.LINKS.url(ctx, chat_user_id="C1", chat_name="ann-with-a-long-chat-name")
    assert url.startswith(ctx.url("/integrations/chatdemo/link?token="))
    # Opening it changes nothing: it says who would be linked, and carries the token on.
    status, page = await follow(api, url)
    assert status == 200 and "Link ann-with-a-long-chat-name?" in page
    assert token_in(url) in page.replace("&#34;", '"')
    assert await chatdemo.LINKS.find(ctx, chat_user_id="C1") is None

    linked = await redeem(api, token_in(url))
    assert linked.status == 200, await linked.text()
    body = await linked.json()
    # A value too long for its column is cut to fit (the identity never is).
    assert (body["chat_user_id"], body["chat_name"]) == ("C1", "ann-with-a-long-chat")
    found = await chatdemo.LINKS.find(ctx, chat_user_id="C1")
    assert (found.id, found.user_id) == (body["id"], api.user["id"])
    assert [link.id for link in await chatdemo.LINKS.of(ctx, api.user["id"])] == [body["id"]]

    again = await redeem(api, token_in(url))
    assert again.status == 422
    error = (await again.json())["error"]
    assert error["code"] == "link_used"
    assert error["message"] == "This link was used already: run the command again for a new one."


async def test_a_forged_expired_or_foreign_link_links_nobody(api, chatdemo):
    ctx = plugin_context(api.app, "chatdemo")
    links = chatdemo.LINKS
    cases = {
        "forged": ("bad_link", "This link is not valid."),
        ctx.seal("link", -1, chat_user_id="C1"): (
            "link_expired",
            "This link has expired: say hello in Chatdemo again for a new one.",
        ),
        # Another kind of token of the same plugin (an OAuth state, say), another plugin's link,
        # a link without the identity.
        ctx.seal("install", 60, chat_user_id="C1"): ("bad_link", "This link is not valid."),
        plugin_context(api.app, "demo").seal("link", 60, chat_user_id="C1"): (
            "bad_link",
            "This link is not valid.",
        ),
        ctx.seal("link", 60, chat_name="ann"): ("bad_link", "This link is not valid."),
    }
    for token, (code, message) in cases.items():
        page = await api.get("/integrations/chatdemo/link", params={"token": token})
        assert page.status == 400 and message in await page.text()
        refused = await redeem(api, token)
        assert refused.status == 422
        error = (await refused.json())["error"]
        assert (error["code"], error["message"]) == (code, message)
    assert await links.of(ctx, api.user["id"]) == []


async def test_a_user_elsewhere_speaks_for_one_account(api, chatdemo):
    ctx = plugin_context(api.app, "chatdemo")
    links = chatdemo.LINKS
    first = await links.link(ctx, api.user["id"], chat_user_id="C1", chat_name="ann")
    # Linking them to the same account again finds the link; to another is refused.
    again = await links.link(ctx, api.user["id"], chat_user_id="C1", chat_name="ann")
    assert again.id == first.id
    other = await api.register_and_login("bob@example.com")
    with pytest.raises(Invalid) as refused:
        await redeem_directly(links, ctx, other["id"], "C1")
    assert refused.value.error_code == "linked_elsewhere"
    assert refused.value.message == "This Chatdemo user is linked to another MultinotesAI account."
    assert await links.of(ctx, other["id"]) == []


async def redeem_directly(links: Any, ctx: Any, user_id: str, chat_user: str) -> Any:
    return await links.redeem(ctx, user_id, token_in(links.url(ctx, chat_user_id=chat_user)))


async def test_an_account_sets_a_default_model_per_link_and_unlinks(api, chatdemo):
    ctx = plugin_context(api.app, "chatdemo")
    links = chatdemo.LINKS
    mine = await links.link(ctx, api.user["id"], chat_user_id="C1")
    await links.set_default_model(ctx, api.user["id"], mine.id, "demo/echo")
    assert (await links.find(ctx, chat_user_id="C1")).default_model == "demo/echo"
    with pytest.raises(Invalid) as unknown:
        await links.set_default_model(ctx, api.user["id"], mine.id, "demo/nope")
    assert unknown.value.fields == {"model": "unknown or unavailable model"}
    await links.set_default_model(ctx, api.user["id"], None, None)  # every link of theirs
    assert (await links.find(ctx, chat_user_id="C1")).default_model is None

    with pytest.raises(NotFound, match=r"No such Chatdemo link\."):
        await links.set_default_model(ctx, api.user["id"], "not-a-link", None)
    with pytest.raises(NotFound, match=r"No such Chatdemo link\."):
        await links.unlink(ctx, "someone-else", mine.id)
    await links.unlink(ctx, api.user["id"], mine.id)
    assert await links.find(ctx, chat_user_id="C1") is None


async def test_sealed_tokens_carry_their_values_for_their_plugin_and_kind(api):
    ctx = plugin_context(api.app, "chatdemo")
    token = ctx.seal("install", 60, user_id="u1")
    values = ctx.unseal("install", token)
    assert values["user_id"] == "u1" and len(values["nonce"]) == 16
    assert values["kind"] == "chatdemo-install"
    with pytest.raises(Invalid) as expired:
        ctx.unseal("install", ctx.seal("install", -1), expired="Start again.")
    assert (expired.value.error_code, expired.value.message) == ("link_expired", "Start again.")
    with pytest.raises(Invalid) as other:
        plugin_context(api.app, "demo").unseal("install", token)
    assert other.value.error_code == "bad_link"
