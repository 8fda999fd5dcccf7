"""One-time account links: how a user of another service (a chat app's user) comes to speak for
a MultinotesAI account, shared by every plugin that needs it (Slack, Discord).

The plugin keeps two tables of its own: its links (one row per user elsewhere, with the columns
``id``, ``user_id``, ``default_model`` and ``created_at``, the ``identity`` columns that name
that user elsewhere, unique together, and any others a link fills, a display name say) and the
links used (``LinkUseColumns``). An unlinked user elsewhere is sent ``url(...)``: a token sealed
under the instance's keys (``PluginContext.seal``) holding their columns, good for ``seconds``.
Signed in, they open it (``page``: who would be linked; a GET changes nothing) and confirm
(``redeem`` in the plugin's POST handler), which links them to that account, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy import String, delete, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from multinotes.db import UTCDateTime, rows_affected, utcnow
from multinotes.errors import Invalid, NotFound
from multinotes.plugin.context import PluginContext

LinkT = TypeVar("LinkT")

#: The columns of a links table that a link does not fill from the values it was sent with.
OWN_COLUMNS = frozenset({"id", "user_id", "default_model", "created_at"})
#: How long a used link's nonce is kept: longer than any link lives.
USES_KEPT = timedelta(days=1)


class LinkUseColumns:
    """The columns of a plugin's table of used links (``AccountLinks.uses``), for its declarative
    base: ``class LinkUse(LinkUseColumns, Base): __tablename__ = "<plugin>_link_uses"``. Each
    used link's nonce is kept a day, then purged."""

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class AccountLinks(Generic[LinkT]):
    """The one-time link flow of a plugin whose links are rows of ``table`` (see the module
    docstring), its used links rows of ``uses``. ``path`` is the plugin's link page (a route of
    its own, GET rendering ``page`` and POST calling ``redeem``); ``service`` names the other
    service in messages ("This Slack user is linked to another MultinotesAI account.") and
    ``again`` says how to get a new link ("run /ask in Discord again")."""

    table: type[LinkT]
    uses: type[Any]
    identity: tuple[str, ...]
    path: str
    service: str
    again: str
    seconds: int = 15 * 60

    def url(self, ctx: PluginContext, **values: str) -> str:
        """The link to send a user elsewhere who is not linked yet: ``values`` are the columns
        of their link to be (every ``identity`` column among them)."""
        missing = [name for name in self.identity if name not in values]
        if missing:
            raise ValueError(f"a link needs {', '.join(missing)}")
        token = ctx.seal("link", self.seconds, **values)
        return ctx.url(f"{self.path}?{urlencode({'token': token})}")

    def read(self, ctx: PluginContext, token: str) -> dict[str, str]:
        """The columns a link was sent with; ``Invalid`` (``bad_link``, ``link_expired``) for
        one that is forged, another plugin's or kind's, without its identity, or old."""
        return self._values(self._unseal(ctx, token))

    def _unseal(self, ctx: PluginContext, token: str) -> dict[str, Any]:
        sealed = ctx.unseal(
            "link", token, expired=f"This link has expired: {self.again} for a new one."
        )
        if not sealed.get("nonce") or not all(name in sealed for name in self.identity):
            raise Invalid("This link is not valid.", code="bad_link")
        return sealed

    def _values(self, sealed: dict[str, Any]) -> dict[str, str]:
        return {name: str(sealed[name]) for name in self._filled() if name in sealed}

    def page(self, ctx: PluginContext, request: web.Request, template: str) -> web.Response:
        """The page the link opens, ``template`` rendered with the ``token`` (for the form that
        confirms), ``problem`` (why it cannot link, then with status 400) and the link's
        columns; never cached."""
        token = request.query.get("token", "")
        problem, values = None, {}
        try:
            values = self.read(ctx, token)
        except Invalid as exc:
            problem = exc.message
        shown = {name: values.get(name, "") for name in self._filled()}
        response = ctx.render_page(
            request,
            template,
            status=200 if problem is None else 400,
            token=token,
            problem=problem,
            **shown,
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def redeem(self, ctx: PluginContext, user_id: str, token: str) -> LinkT:
        """Link the user the link was sent to to ``user_id``. A link links once (a second use:
        ``Invalid``, code ``link_used``)."""
        sealed = self._unseal(ctx, token)
        await self._spend(ctx, str(sealed["nonce"]))
        return await self.link(ctx, user_id, **self._values(sealed))

    async def _spend(self, ctx: PluginContext, nonce: str) -> None:
        try:
            async with ctx.transaction() as session:
                await session.execute(
                    delete(self.uses).where(self.uses.used_at < utcnow() - USES_KEPT)
                )
                session.add(self.uses(nonce=nonce[:32]))
        except IntegrityError:
            raise Invalid(
                "This link was used already: run the command again for a new one.",
                code="link_used",
            ) from None

    async def link(self, ctx: PluginContext, user_id: str, **values: str) -> LinkT:
        """Link the user elsewhere that ``values`` name to ``user_id`` (a link already there is
        returned). A user elsewhere speaks for one account: one linked to another account is
        refused (``Invalid``, code ``linked_elsewhere``) until that account unlinks it."""
        columns = self._columns()
        async with ctx.transaction() as session:
            link = await session.scalar(self._select(values))
            if link is not None:
                if link.user_id != user_id:
                    raise Invalid(
                        f"This {self.service} user is linked to another MultinotesAI account.",
                        code="linked_elsewhere",
                    )
                return link
            fields: dict[str, Any] = {}
            for name in self._filled():
                if name in values:
                    length = getattr(columns[name].type, "length", None)
                    fit = name not in self.identity and length
                    fields[name] = values[name][:length] if fit else values[name]
            table: Any = self.table
            made: LinkT = table(**fields, user_id=user_id)
            session.add(made)
        return made

    async def find(self, ctx: PluginContext, **identity: str) -> LinkT | None:
        """The link of the user elsewhere that ``identity`` names, if any."""
        async with ctx.read() as session:
            return await session.scalar(self._select(identity))

    async def of(self, ctx: PluginContext, user_id: str) -> list[LinkT]:
        """An account's links, oldest first."""
        table: Any = self.table
        async with ctx.read() as session:
            query = select(table).where(table.user_id == user_id)
            return list(await session.scalars(query.order_by(table.created_at, table.id)))

    async def unlink(self, ctx: PluginContext, user_id: str, link_id: str) -> None:
        """Remove one of ``user_id``'s links (``NotFound`` for any other)."""
        table: Any = self.table
        async with ctx.transaction() as session:
            gone = await session.execute(
                delete(table).where(table.id == link_id, table.user_id == user_id)
            )
            if not rows_affected(gone):
                raise NotFound(f"No such {self.service} link.")

    async def set_default_model(
        self, ctx: PluginContext, user_id: str, link_id: str | None, model: str | None
    ) -> None:
        """The model a link's prompts ask when they name none (``None``: the plugin's default);
        ``link_id=None``: every link of ``user_id``'s. ``Invalid`` for a model no prompt may
        name now, ``NotFound`` for a link not theirs."""
        if model and model not in await ctx.models():
            raise Invalid(
                f"No model {model!r} is available.",
                fields={"model": "unknown or unavailable model"},
            )
        table: Any = self.table
        async with ctx.transaction() as session:
            query = update(table).where(table.user_id == user_id)
            if link_id is not None:
                query = query.where(table.id == link_id)
            changed = await session.execute(query.values(default_model=model or None))
            if link_id is not None and not rows_affected(changed):
                raise NotFound(f"No such {self.service} link.")

    def _columns(self) -> dict[str, Any]:
        return dict(inspect(self.table).columns.items())

    def _filled(self) -> list[str]:
        """The columns a link fills from the values it was sent with."""
        return [name for name in self._columns() if name not in OWN_COLUMNS]

    def _select(self, values: dict[str, str]) -> Any:
        table: Any = self.table
        missing = [name for name in self.identity if name not in values]
        if missing:
            raise ValueError(f"a link is found by {', '.join(self.identity)}")
        return select(table).where(
            *(getattr(table, name) == values[name] for name in self.identity)
        )
