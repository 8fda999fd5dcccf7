"""What a plugin may do at run time, through one small object: ``PluginContext``.

A plugin gets one with ``plugin_context(app, "<its name>")`` (in a task: ``func(app, ...)``; in
a route: ``request.app``). Everything it offers is scoped to that plugin: its own settings, its
own tasks, ledger references prefixed with its name. It holds no state of its own, so it is
cheap to make per call.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp_jinja2
from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from multinotes.domain_events import EVENTS, EventType, Subscriber
from multinotes.errors import Invalid, PluginError, Unauthorized
from multinotes.events import emit_event
from multinotes.files import signed
from multinotes.keys import DB, PLUGIN_SETTINGS, PLUGINS, SECRETS, SETTINGS, TASKS

SettingsT = TypeVar("SettingsT", bound=BaseModel)

#: Longest ``reference`` a plugin may give a ledger entry (the column holds 100 characters,
#: ``plugin:<name>:`` goes in front).
REFERENCE_LIMIT = 60


@dataclass(frozen=True)
class WalletEntry:
    """One ledger entry a plugin made: ``amount`` is positive for a credit, negative for a
    debit. ``reference`` is the plugin's own reference, as it was given."""

    id: str
    user_id: str
    amount: int
    reference: str


@dataclass(frozen=True)
class Answer:
    """One model's answer to a prompt a plugin sent (``PluginContext.ask``). ``status`` is
    ``complete``, ``stopped`` or ``failed`` (then ``error_code`` and ``error_message`` say
    why); ``cost`` is what the user's wallet was charged for it, in credits."""

    message_id: str
    conversation_id: str
    model: str
    text: str
    status: str
    cost: int
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who sent the request a plugin's route is handling (``PluginContext.caller``)."""

    user_id: str
    name: str
    email: str
    is_admin: bool


@dataclass(frozen=True)
class PluginContext:
    """The run-time API of one plugin. Methods are ``async`` where they touch the database,
    the queue or the network."""

    app: web.Application
    plugin: str

    async def settings(self, model: type[SettingsT]) -> SettingsT:
        """The plugin's settings (the model it registered with ``register_settings``), filled
        from what an admin stored, the environment and the defaults; secrets decrypted."""
        config = await self.app[PLUGIN_SETTINGS].config(self.plugin)
        if not isinstance(config, model):
            raise PluginError(
                f"{self.plugin} registered no settings model {model.__name__}",
                plugin=self.plugin,
            )
        return config

    async def enqueue(self, task: str, /, **kwargs: Any) -> None:
        """Run one of the plugin's own tasks (``register_tasks``) in the background, as
        ``func(app, **kwargs)``; ``kwargs`` must be JSON-serialisable."""
        owner = self.app[PLUGINS].tasks.get(task)
        if owner is None or owner.plugin != self.plugin:
            raise PluginError(f"{self.plugin} registered no task {task!r}", plugin=self.plugin)
        await self.app[TASKS].enqueue(task, **kwargs)

    async def emit(self, name: str, *, user_id: str | None, data: dict[str, Any]) -> None:
        """Publish a domain event (after your own transaction committed): subscribers in
        this process run, and every enabled integration that wants ``name`` receives it in the
        background. ``user_id`` owns what it is about. For a name in the catalogue (the core's,
        or one a plugin registered with ``register_events``) ``data`` must fit its payload
        schema, else ``ValueError``; any other name must be dotted lower case and ``data``
        JSON-serialisable."""
        await emit_event(self.app, name, user_id, data)

    def subscribe(self, event: EventType[Any] | str, handler: Subscriber) -> None:
        """Call ``await handler(app, event)`` in this process after each published event of
        this catalogued type (e.g. ``NOTE_CREATED``), while the plugin is enabled. Subscribe
        once per process (in the ``startup`` hook). A handler that raises is logged and does
        not affect the others; slow work belongs in a task (``enqueue``)."""
        self.app[EVENTS].subscribe(event, handler, owner=self.plugin)

    async def flag_enabled(self, user_id: str | None, name: str) -> bool:
        """Whether the feature flag ``name`` is on for ``user_id`` (None: someone without an
        account); an unknown flag is off. Flags are set in the console (``/admin/flags``)."""
        from multinotes import flags

        return await flags.enabled_for(self.app, user_id, name)

    async def variant(self, user_id: str, experiment: str) -> str | None:
        """``user_id``'s variant of a running A/B experiment, recorded as seen (once); None
        when it is not running (show the default)."""
        from multinotes import flags

        return await flags.variant_for(self.app, user_id, experiment)

    async def credit(
        self, user_id: str, amount: int, *, reason: str, reference: str
    ) -> WalletEntry:
        """Add ``amount`` credits to a wallet (a payment, a refund, a bonus). Idempotent on
        ``reference``: a second call with the same reference changes nothing and returns the
        first entry, so a webhook delivered twice credits once."""
        if amount <= 0:
            raise ValueError("credit takes a positive amount")
        return await self._ledger(user_id, amount, "grant", reason, reference)

    async def debit(self, user_id: str, amount: int, *, reason: str, reference: str) -> WalletEntry:
        """Take ``amount`` credits from a wallet; idempotent on ``reference``. Raises
        ``Conflict`` (code ``insufficient_balance``) when the available balance is too low;
        nothing changes then."""
        if amount <= 0:
            raise ValueError("debit takes a positive amount")
        return await self._ledger(user_id, -amount, "deduct", reason, reference)

    async def _ledger(
        self, user_id: str, amount: int, kind: str, reason: str, reference: str
    ) -> WalletEntry:
        from multinotes.wallet.models import LedgerEntry
        from multinotes.wallet.service import adjust

        if not reference or len(reference) > REFERENCE_LIMIT:
            raise ValueError(f"a ledger reference has 1 to {REFERENCE_LIMIT} characters")
        scoped = f"plugin:{self.plugin}:{reference}"
        db = self.app[DB]
        try:
            entry = await adjust(db, user_id, amount, reason, by=None, kind=kind, reference=scoped)
        except IntegrityError:
            async with db.read() as session:
                entry = (
                    await session.scalars(
                        select(LedgerEntry).where(
                            LedgerEntry.kind == kind, LedgerEntry.reference == scoped
                        )
                    )
                ).one()
        return WalletEntry(entry.id, entry.user_id, entry.amount, reference)

    async def ask(
        self, user_id: str, prompt: str, *, models: list[str], conversation_id: str | None = None
    ) -> list[Answer]:
        """Send ``prompt`` to ``models`` on behalf of ``user_id`` (a command from a chat app,
        say), exactly as the workspace does: the maximum cost reserved first, the answers
        streamed, stored in a conversation of the user's and settled to their real cost,
        charged to their wallet. Waits for every answer to end; one ``Answer`` per model, in
        order. Nothing is stored or charged when it raises: ``PaymentRequired`` (402, code
        ``insufficient_credits``: the wallet cannot cover it), ``Invalid`` (no prompt; a model
        unknown, switched off or without its key), ``Forbidden`` (the user has not verified
        their address where the install requires it), ``NotFound`` (no such active user or
        conversation). A long call: run it in a task, not in a request handler."""
        from multinotes.plugin.answers import answer_prompt

        return await answer_prompt(
            self.app,
            user_id=user_id,
            prompt=prompt,
            models=models,
            conversation_id=conversation_id,
        )

    async def models(self) -> list[str]:
        """The ids of the models a prompt may name right now (enabled, with their key)."""
        from multinotes.plugin.answers import usable_models

        return await usable_models(self.app)

    async def save_answer(self, user_id: str, message_id: str, *, folder: str | None) -> str:
        """Save one of ``user_id``'s answers (``Answer.message_id``) as a note of theirs, with
        its provenance, in their top-level folder named ``folder`` (created when missing;
        ``None``: no folder); the note's id. ``NotFound`` when the answer is not theirs."""
        from multinotes.plugin.answers import save_answer_in_folder

        return await save_answer_in_folder(
            self.app, user_id=user_id, message_id=message_id, folder=folder
        )

    async def save_note(self, user_id: str, *, title: str, content: str, folder: str | None) -> str:
        """Keep text from elsewhere (a chat message, say) as a new note of ``user_id``'s, with
        ``title`` and Markdown ``content``, in their top-level folder named ``folder`` (created
        when missing; ``None``: no folder); the note's id. It is published as ``note.created``
        like any note. ``NotFound`` for no such active user, ``Invalid`` for a text too long."""
        from multinotes.plugin.answers import save_text_as_note

        return await save_text_as_note(
            self.app, user_id=user_id, title=title, content=content, folder=folder
        )

    def is_enabled(self) -> bool:
        """Whether an admin has the plugin switched on right now (a long-running task checks
        it between steps: switching a plugin off stops it at once)."""
        return bool(self.app[PLUGINS].is_enabled(self.plugin))

    def caller(self, request: web.Request) -> Caller:
        """Who is asking (session or API key); raises ``Unauthorized`` (401) for nobody. A route
        registered with ``access="user"`` or ``"admin"`` always has one."""
        from multinotes.identity.actor import current_actor

        actor = current_actor(request)
        if actor is None:
            raise Unauthorized()
        return Caller(actor.user_id, actor.name, actor.email, actor.is_admin)

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """One short unit of work on the app's database (SQLAlchemy ``AsyncSession``),
        committed when the block ends. For the plugin's own tables (see "Tables of a plugin"
        in the plugin API docs); never hold it across a call to a remote service."""
        return self._session(write=True)

    def read(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session for reads only; nothing is committed."""
        return self._session(write=False)

    @asynccontextmanager
    async def _session(self, *, write: bool) -> AsyncIterator[AsyncSession]:
        db = self.app[DB]
        async with db.transaction() if write else db.read() as session:
            yield session

    def encrypt(self, plaintext: str) -> str:
        """Encrypt a secret for storage (under the instance's master keys, like the plugin
        settings' secrets); ``decrypt`` reverses it."""
        return str(self.app[SECRETS].encrypt(plaintext))

    def decrypt(self, token: str) -> str:
        return str(self.app[SECRETS].decrypt(token))

    def seal(self, kind: str, seconds: int, /, **values: str) -> str:
        """A token only this instance can make or read (encrypted and authenticated under its
        master keys) holding ``values``, good for ``seconds``: an OAuth state, a link sent to
        someone elsewhere. It is the plugin's ``kind`` of token; ``unseal`` opens it. Each one
        gets a random ``nonce``, so a plugin can make it single-use (``AccountLinks`` does)."""
        payload = {
            "kind": f"{self.plugin}-{kind}",
            "exp": int(time.time()) + seconds,
            "nonce": secrets.token_hex(8),
        }
        return self.encrypt(json.dumps({**values, **payload}))

    def unseal(
        self, kind: str, token: str, /, *, expired: str = "This link has expired."
    ) -> dict[str, Any]:
        """The values ``seal`` sealed (with ``kind``, ``exp`` and ``nonce``). ``Invalid`` (422)
        with code ``bad_link`` for a token that is forged, of another kind or another plugin's,
        and ``link_expired`` (message ``expired``: what to do for a new one) for an old one."""
        try:
            values = json.loads(self.decrypt(token))
        except Exception:
            raise Invalid("This link is not valid.", code="bad_link") from None
        if not isinstance(values, dict) or values.get("kind") != f"{self.plugin}-{kind}":
            raise Invalid("This link is not valid.", code="bad_link")
        if int(values.get("exp", 0)) < time.time():
            raise Invalid(expired, code="link_expired")
        return values

    async def notify(self, user_id: str, *, title: str, text: str = "", url: str = "/") -> None:
        """Leave an in-app notification for a user (the bell), e.g. "your webhook was
        disabled"; ``url`` is a path on this site."""
        from multinotes.sharing.notifications import notify

        if not url.startswith("/"):
            raise ValueError("url must be a path on this site, starting with '/'")
        async with self.app[DB].transaction() as session:
            notify(
                session,
                user_id=user_id,
                kind="plugin",
                actor_id=None,
                actor_name=self.plugin,
                object_type="plugin",
                object_id=self.plugin[:32],
                title=title,
                url=url,
                text=text,
            )

    async def mail(self, user_id: str, *, template: str, context: dict[str, Any]) -> None:
        """Mail a user at their account's address, from the background queue (retried when
        the mail server fails), e.g. "your webhook was switched off". Renders the plugin's
        ``mail/<plugin>/<template>.txt`` (which sets ``subject``) and ``.html`` (which may
        extend ``mail/_layout.html``) from its templates folder, with ``context`` and the
        user's ``name``. ``context`` travels through the task broker: JSON values only, never
        a secret. A user who is gone or deactivated gets nothing."""
        from multinotes.mail import queue_mail
        from multinotes.models import User

        if not re.fullmatch(r"[a-z0-9_]{1,60}", template):
            raise ValueError("template is a name like 'endpoint_disabled' (a-z, 0-9, _)")
        async with self.app[DB].read() as session:
            user = await session.get(User, user_id)
        if user is None or not user.is_active:
            return
        await queue_mail(
            self.app,
            template=f"{self.plugin}/{template}",
            to=user.email,
            context={**context, "name": user.name},
        )

    def render(self, template: str, /, **values: Any) -> str:
        """Render a template (the plugin's own folder from ``register_templates`` comes first,
        then the core's) to a string, e.g. for a mail or a page fragment."""
        return aiohttp_jinja2.get_env(self.app).get_template(template).render(**values)

    def render_page(
        self, request: web.Request, template: str, /, *, status: int = 200, **values: Any
    ) -> web.Response:
        """A whole HTML page for a plugin route: ``template`` rendered with the core's page
        context (the signed-in ``actor``, ``csrf_token``, navigation, plugin assets), so a
        template that ``{% extends "default:base.html" %}`` looks like every other page."""
        return aiohttp_jinja2.render_template(template, request, values, status=status)

    async def panels(self, request: web.Request, area: str) -> list[Any]:
        """The enabled plugins' settings panels of ``area`` (``SettingsPanel``), rendered for
        this request: for a plugin page that shows other plugins' panels (``/integrations``).
        Each has ``id``, ``plugin``, ``title`` and ``html``; the core template
        ``default:_plugin_panels.html`` shows them from ``plugin_panels``."""
        from multinotes.ui import settings_panels

        return list(await settings_panels(request, area))

    def url(self, path: str, /) -> str:
        """An absolute URL to ``path`` on this site (``MULTINOTES_PUBLIC_URL`` when set, else
        the address the server listens on), e.g. for a link in a message sent elsewhere."""
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        settings = self.app[SETTINGS]
        if settings.public_url:
            return settings.public_url.rstrip("/") + path
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        return f"http://{host}:{settings.port}{path}"

    def signed_file_url(self, file_id: str, ttl: int = 30 * 24 * 3600) -> str:
        """An absolute link to the bytes of the file ``file_id`` that works without signing in
        for ``ttl`` seconds (at most a year): for a service that fetches a user's file itself.
        Whoever holds the link may read that file until it expires, so sign only files the user
        acting may read (``ExportImage.url`` is such a link for an exported note's images)."""
        return signed.signed_file_url(self.app, file_id, ttl)


def plugin_context(app: web.Application, plugin: str) -> PluginContext:
    """The context of the loaded plugin named ``plugin`` in ``app``."""
    record = app[PLUGINS].records.get(plugin)
    if record is None or record.status != "loaded":
        raise PluginError(f"no loaded plugin named {plugin!r}", plugin=plugin)
    return PluginContext(app, plugin)
