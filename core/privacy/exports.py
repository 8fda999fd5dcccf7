"""A user's data as a zip: JSON files of everything they own, plus their files.

``POST /api/me/export`` creates a ``data_exports`` row and enqueues ``core.build_data_export``;
the task streams the zip to a temporary file under ``<data dir>/exports/`` (page by page, never
the whole account in memory), renames it into place, records its progress on the row as it
goes, and mails the owner when it is ready. Only the owner downloads it, until it expires; a
scheduled task removes expired files.

Adding a table a user owns: append one ``TableExport(name, query)`` to ``TABLE_EXPORTS``; for
documents made of several tables, or files on disk, add a step to ``CONTENT_EXPORTS`` (and list
its tables in ``IN_CONTENT_EXPORTS``). The test suite fails while a table with a ``user_id``
column is neither exported nor listed in ``NOT_EXPORTED`` with the reason. Plugins' tables are
exported by the plugins (``register_user_data``), under ``plugins/<plugin>/`` in the zip.
"""

from __future__ import annotations

import asyncio
import json
import time
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import structlog
from aiohttp import web
from sqlalchemy import Select, func, inspect, or_, select, update

from multinotes import audit
from multinotes.announcements.models import Announcement, AnnouncementDismissal
from multinotes.arena.models import ArenaComparison, ArenaEntry
from multinotes.assist.models import AssistPreference, NoteDetails, NoteSuggestion
from multinotes.batches.models import Batch, BatchAnswer, BatchRow
from multinotes.billing.models import Order, PlanPeriod, Referral, ReferralCode
from multinotes.billing.refund_models import OrderRefund
from multinotes.billing.reload_models import AutoReload, AutoReloadCharge
from multinotes.chains.models import Chain, ChainRun, ChainRunStep
from multinotes.chat import service as chat
from multinotes.chat.models import Conversation, Generation, MessageMedia, ModelFavourite, Rating
from multinotes.connections.models import ConnectedAccountRow, RemoteExport
from multinotes.db import Base, Database, new_id, rows_affected, utcnow
from multinotes.domain_events import EXPORT_COMPLETED, ExportCompleted, stage
from multinotes.errors import NotFound
from multinotes.files.models import File
from multinotes.flags.models import Experiment, ExperimentExposure, FeatureFlag
from multinotes.identity import profile
from multinotes.identity.account_mail import public_base_url
from multinotes.identity.actor import require_user
from multinotes.identity.oauth_models import OAuthIdentity
from multinotes.keys import DB, PLUGINS, SETTINGS, TASKS
from multinotes.mail import send_mail
from multinotes.models import ApiKey, AuthSession, User
from multinotes.notes.models import Document, DocumentVersion, Folder
from multinotes.organisations.models import (
    Organisation,
    OrganisationDomain,
    OrganisationInvitation,
    OrganisationJoinOffer,
    OrganisationMember,
)
from multinotes.plugin_host import TaskDef
from multinotes.privacy.models import DataExport, ExportStatus
from multinotes.privacy.plugin_data import UserDataExport
from multinotes.prompts.models import (
    PromptTemplate,
    PromptTemplateFavourite,
    PromptTemplateShare,
    PromptTemplateTag,
    PromptTemplateUse,
)
from multinotes.schedules.models import Schedule, ScheduleRun
from multinotes.search.models import RecentSearch
from multinotes.settings import Settings
from multinotes.sharing.models import (
    Comment,
    DocumentActivity,
    FolderActivity,
    Notification,
    Share,
)
from multinotes.storage import FILE_STORAGE, objects
from multinotes.support.models import SupportMessage, SupportTicket
from multinotes.wallet.models import LedgerEntry, Reservation, Wallet

log = structlog.get_logger(__name__)

BUILD_TASK = "core.build_data_export"
PURGE_TASK = "core.purge_data_exports"
#: A job still pending or running after this long died with its worker; a new request replaces it.
STALE_AFTER = timedelta(hours=1)
PAGE_ROWS = 500
#: Columns never written to an export: credential hashes and server-side paths.
HIDDEN_COLUMNS = frozenset(
    {
        "password_hash",
        "token_hash",
        "key_hash",
        "csrf_token",
        "cancel_token_hash",
        "path",
        "storage_key",
        # connected accounts' OAuth tokens (stored encrypted; a copy would be a credential)
        "access_token",
        "refresh_token",
    }
)


def owned(model: type[Base], column: str = "user_id") -> Callable[[str], Select[Any]]:
    """The rows of ``model`` whose ``column`` names the user (most tables of the export)."""
    return lambda uid: select(model).where(getattr(model, column) == uid)


@dataclass(frozen=True)
class TableExport:
    """One JSON file in the zip: ``query(user_id)`` selects the user's rows of one table
    (``select(Model).where(...)``). ``single`` writes one object instead of a list."""

    name: str
    query: Callable[[str], Select[Any]]
    single: bool = False


TABLE_EXPORTS: list[TableExport] = [
    TableExport("profile.json", lambda uid: select(User).where(User.id == uid), single=True),
    TableExport("sessions.json", owned(AuthSession)),
    TableExport("api_keys.json", owned(ApiKey)),
    TableExport(
        "linked_accounts.json",
        owned(OAuthIdentity),
    ),
    TableExport(
        "connected_accounts.json",
        owned(ConnectedAccountRow),
    ),
    TableExport(
        "remote_exports.json",
        owned(RemoteExport),
    ),
    TableExport("ratings.json", owned(Rating)),
    TableExport(
        "model_favourites.json",
        owned(ModelFavourite),
    ),
    TableExport("wallet.json", owned(Wallet)),
    TableExport("ledger.json", owned(LedgerEntry)),
    TableExport("reservations.json", owned(Reservation)),
    TableExport(
        "security_events.json", lambda uid: select(audit.AuditEntry).where(audit.subject_of(uid))
    ),
    TableExport("data_exports.json", owned(DataExport)),
    TableExport("folders.json", owned(Folder)),
    TableExport("notes.json", owned(Document)),
    TableExport(
        "note_versions.json",
        owned(DocumentVersion),
    ),
    TableExport("note_details.json", owned(NoteDetails)),
    TableExport(
        "note_suggestions.json",
        owned(NoteSuggestion),
    ),
    TableExport(
        "assist_preferences.json",
        owned(AssistPreference),
        single=True,
    ),
    TableExport("files.json", owned(File)),
    TableExport(
        "recent_searches.json",
        owned(RecentSearch),
    ),
    TableExport("shares.json", lambda uid: select(Share).where(Share.owner_id == uid)),
    TableExport("comments.json", owned(Comment)),
    TableExport(
        "note_activity.json",
        lambda uid: select(DocumentActivity).where(DocumentActivity.actor_id == uid),
    ),
    TableExport(
        "folder_activity.json",
        lambda uid: select(FolderActivity).where(FolderActivity.actor_id == uid),
    ),
    TableExport("notifications.json", owned(Notification)),
    TableExport("orders.json", owned(Order)),
    TableExport("plan_periods.json", owned(PlanPeriod)),
    TableExport("refunds.json", owned(OrderRefund)),
    TableExport("auto_reload.json", owned(AutoReload)),
    TableExport(
        "auto_reload_charges.json",
        owned(AutoReloadCharge),
    ),
    TableExport(
        "referral_code.json",
        owned(ReferralCode),
    ),
    TableExport(
        "prompt_templates.json",
        lambda uid: select(PromptTemplate).where(PromptTemplate.owner_id == uid),
    ),
    TableExport(
        "prompt_template_tags.json",
        lambda uid: select(PromptTemplateTag).where(
            PromptTemplateTag.template_id.in_(
                select(PromptTemplate.id).where(PromptTemplate.owner_id == uid)
            )
        ),
    ),
    TableExport(
        "prompt_template_shares.json",
        lambda uid: select(PromptTemplateShare).where(
            PromptTemplateShare.template_id.in_(
                select(PromptTemplate.id).where(PromptTemplate.owner_id == uid)
            )
            | (PromptTemplateShare.user_id == uid)
        ),
    ),
    TableExport(
        "prompt_template_favourites.json",
        owned(PromptTemplateFavourite),
    ),
    TableExport(
        "prompt_template_uses.json",
        owned(PromptTemplateUse),
    ),
    TableExport("chains.json", owned(Chain)),
    TableExport("chain_runs.json", owned(ChainRun)),
    TableExport(
        "chain_run_steps.json",
        lambda uid: select(ChainRunStep).where(
            ChainRunStep.run_id.in_(select(ChainRun.id).where(ChainRun.user_id == uid))
        ),
    ),
    TableExport("schedules.json", lambda uid: select(Schedule).where(Schedule.owner_id == uid)),
    TableExport(
        "schedule_runs.json", lambda uid: select(ScheduleRun).where(ScheduleRun.owner_id == uid)
    ),
    TableExport("batches.json", owned(Batch)),
    TableExport(
        "batch_rows.json",
        lambda uid: select(BatchRow).where(
            BatchRow.batch_id.in_(select(Batch.id).where(Batch.user_id == uid))
        ),
    ),
    TableExport(
        "batch_answers.json",
        lambda uid: select(BatchAnswer).where(
            BatchAnswer.batch_id.in_(select(Batch.id).where(Batch.user_id == uid))
        ),
    ),
    TableExport(
        "referrals.json",
        lambda uid: select(Referral).where(
            (Referral.referrer_id == uid) | (Referral.referee_id == uid)
        ),
    ),
    TableExport(
        "comparisons.json",
        owned(ArenaComparison),
    ),
    TableExport(
        "comparison_answers.json",
        lambda uid: select(ArenaEntry).where(
            ArenaEntry.comparison_id.in_(
                select(ArenaComparison.id).where(ArenaComparison.user_id == uid)
            )
        ),
    ),
    TableExport(
        "support_tickets.json",
        owned(SupportTicket),
    ),
    TableExport(
        "support_messages.json",
        # The threads of your tickets as you see them (not staff notes), and what you wrote.
        lambda uid: select(SupportMessage).where(
            (
                SupportMessage.ticket_id.in_(
                    select(SupportTicket.id).where(SupportTicket.user_id == uid)
                )
                & SupportMessage.internal.is_(False)
            )
            | (SupportMessage.author_id == uid)
        ),
    ),
    TableExport(
        "announcement_dismissals.json",
        owned(AnnouncementDismissal),
    ),
    TableExport(
        "announcements.json",
        owned(Announcement, "created_by"),
    ),
    TableExport(
        "experiment_exposures.json",
        owned(ExperimentExposure),
    ),
    TableExport("feature_flags.json", owned(FeatureFlag, "created_by")),
    TableExport("experiments.json", owned(Experiment, "created_by")),
    TableExport(
        "organisations.json",
        lambda uid: select(Organisation).where(
            Organisation.id.in_(
                select(OrganisationMember.organisation_id).where(OrganisationMember.user_id == uid)
            )
        ),
    ),
    TableExport(
        "organisation_members.json",
        owned(OrganisationMember),
    ),
    TableExport(
        "organisation_invitations.json",
        # Invitations you sent or accepted (without their link's token hash).
        lambda uid: select(OrganisationInvitation).where(
            (OrganisationInvitation.invited_by == uid) | (OrganisationInvitation.accepted_by == uid)
        ),
    ),
    TableExport(
        "organisation_domains.json",
        # Email domains you claimed for an organisation (their TXT record's value included).
        owned(OrganisationDomain, "created_by"),
    ),
    TableExport(
        "organisation_join_offers.json",
        owned(OrganisationJoinOffer),
    ),
]

#: Tables written by the ``CONTENT_EXPORTS`` steps (``conversations/<id>.json``: a conversation
#: with its message tree, generations, media and summaries of older turns).
IN_CONTENT_EXPORTS = frozenset(
    {"conversations", "messages", "generations", "message_media", "context_summaries"}
)

#: Tables that hold rows of a user but are deliberately left out, and why.
NOT_EXPORTED: dict[str, str] = {
    "user_tokens": "hashes of single-use mailed links: nothing a person can read",
    "abuse_hits": "the operator's abuse reports about the account (evidence of its fraud and "
    "abuse checks, kept back so they cannot be worked around; a blocked account is told why "
    "at login)",
    "analytics_active_days": "the days the account started a generation, derived from the "
    "generations that are exported; counted for the operator's active-user figures",
    "analytics_milestones": "when the account signed up, verified, got a first answer, saved a "
    "first note and paid: copies of dates the export already holds, for the operator's funnel",
    "oauth_flows": "social sign-ins in progress, gone within minutes",
    "connection_flows": "connections to other services in progress, gone within minutes",
    "account_deletions": "the pending deletion of the account itself",
    "search_embeddings": "numbers computed from your notes and messages (exported as such)",
    "note_exports": "files you made from your notes (PDF, Word, ...), kept for days; the notes "
    "themselves are exported",
}

README = """\
Your MultinotesAI data, exported {date} UTC.

profile.json            your account (no password: only a hash of it is stored, and not here)
sessions.json           logged-in browsers (no session tokens)
api_keys.json           your API keys (only the first characters; keys are never stored)
linked_accounts.json    Google / Facebook accounts you sign in with
connected_accounts.json, remote_exports.json
                        accounts at other services you connected (Notion, Google; without
                        their tokens) and the pages your exports made there
conversations/<id>.json each conversation with every message (a tree: parent_id), the
                        model, options, usage, cost and timing of every answer, media, ratings
media/                  images and audio of your conversations (named in the JSON)
avatar.png              your avatar, if you set one
ratings.json            your ratings of answers
model_favourites.json   the models you starred in the model picker
wallet.json, ledger.json, reservations.json
                        your credit balance and every credit movement
security_events.json    logins, password changes and other security events of your account
data_exports.json       your data exports
folders.json, notes.json, note_versions.json
                        your folders and notes with every saved version
note_details.json, note_suggestions.json, assist_preferences.json
                        your notes' tags and one-line summaries, the ones a model last
                        suggested (with its cost), and whether saved answers get suggestions
files.json, files/<id>/<name>
                        your uploaded and generated files
recent_searches.json    your last searches
shares.json             what you shared, with whom, and your public links (without their
                        tokens or passwords: only hashes of them are stored, and not here)
comments.json           your comments on notes
note_activity.json      what you did to notes (shares, comments, restores)
folder_activity.json    your folders' shares, role changes and revokes
notifications.json      your notifications
orders.json             your purchases (plan, price, coupon, status; no card details: the
                        payment provider keeps those)
plan_periods.json       your current plan and when it expires
refunds.json            refunds of your orders and the credits each took back
auto_reload.json, auto_reload_charges.json
                        your auto-reload setting and the orders it placed
referral_code.json, referrals.json
                        your referral link's code, who you referred and who referred you
batches.json, batch_rows.json, batch_answers.json
                        your batch runs (template text, models, status), each row's values
                        and each model's answer to it with its status and cost
comparisons.json, comparison_answers.json
                        your blind comparisons: which model answered under which label, your votes
prompt_templates.json   your prompt templates (their tags are in prompt_template_tags.json)
prompt_template_shares.json, prompt_template_favourites.json, prompt_template_uses.json
                        who your templates are shared with (and what was shared with you),
                        the templates you starred and each time you ran one
chains.json, chain_runs.json, chain_run_steps.json
                        your chains (their steps), their runs (input, status) and each run
                        step's prompt (its answer is in the run's conversation)
schedules.json, schedule_runs.json
                        your scheduled runs (template, values, models, cron, folder) and each
                        run's status, cost and the notes it saved
support_tickets.json, support_messages.json
                        your support tickets and their threads (replies, not staff notes)
announcement_dismissals.json
                        the announcements you dismissed
announcements.json      announcements you published (administrators)
experiment_exposures.json
                        the A/B experiments you took part in: the variant you were shown,
                        when, and when you did what the experiment measures
feature_flags.json, experiments.json
                        feature flags and experiments you created (administrators)
organisations.json, organisation_members.json, organisation_invitations.json
                        the organisations you belong to, your role and monthly limit in each,
                        and the invitations you sent or accepted (their spending from a shared
                        wallet is in ledger.json, with its organisation_id)
organisation_domains.json, organisation_join_offers.json
                        email domains you claimed for an organisation, and the offers to join
                        one that your address's domain brought you (accepted or declined)

Times are UTC (ISO 8601). Credits are integers (1 credit = US$0.00001).
"""

PLUGINS_README = """
What the plugins of this instance keep about you:

"""


def exports_dir(settings: Settings) -> Path:
    return settings.data_dir / "exports"


def table_name_of(query: Select[Any]) -> str:
    entity = query.column_descriptions[0]["entity"]
    return str(entity.__table__.name)


def exported_tables() -> set[str]:
    return {table_name_of(t.query("x")) for t in TABLE_EXPORTS} | IN_CONTENT_EXPORTS


# -- serialising rows ---------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def row_dict(row: Base) -> dict[str, Any]:
    """Every column of a row, but credential hashes and server paths."""
    mapper = inspect(type(row))
    return {
        column.key: _jsonable(getattr(row, column.key))
        for column in mapper.column_attrs
        if column.key not in HIDDEN_COLUMNS
    }


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, default=str).encode()


def media_arcname(media: MessageMedia) -> str:
    return f"media/{media.id}{Path(media.path).suffix}"


def conversation_document(tree: chat.Tree) -> dict[str, Any]:
    """A conversation with its whole message tree, as the export writes it."""
    messages = []
    for message in tree.messages:
        item = row_dict(message)
        generation: Generation | None = tree.generations.get(message.id)
        item["generation"] = row_dict(generation) if generation else None
        item["media"] = [
            {**row_dict(m), "file": media_arcname(m)} for m in tree.media.get(message.id, [])
        ]
        rating = tree.ratings.get(message.id)
        item["rating"] = row_dict(rating) if rating else None
        messages.append(item)
    return {
        **row_dict(tree.conversation),
        "messages": messages,
        # Older turns summarised for a model whose window they outgrew (context policy).
        "context_summaries": [row_dict(row) for row in tree.summaries.values()],
    }


# -- writing the zip ----------------------------------------------------------------------------


class ZipSink:
    """A zip file written from async code: every blocking write runs in a thread, one at a
    time (a ZipFile is not used by two threads at once)."""

    def __init__(self, path: Path) -> None:
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)

    async def write_bytes(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self.zip.writestr, name, data)

    async def write_stream(
        self, name: str, chunks: AsyncIterator[bytes], *, stored: bool = False
    ) -> None:
        """Add a member from a stream; ``stored``: as it is (for bytes compressed already)."""
        info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        info.external_attr = 0o600 << 16  # as ZipFile.open(name, "w") sets it
        handle: IO[bytes] = await asyncio.to_thread(self.zip.open, info, "w")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
        finally:
            await asyncio.to_thread(handle.close)

    async def close(self) -> None:
        await asyncio.to_thread(self.zip.close)


async def _pages(db: Database, query: Select[Any]) -> AsyncIterator[list[Any]]:
    """The rows of ``query`` in primary-key order, PAGE_ROWS at a time (keyset paging)."""
    entity = query.column_descriptions[0]["entity"]
    key = inspect(entity).primary_key[0]
    last: Any = None
    while True:
        page = query.order_by(key).limit(PAGE_ROWS)
        if last is not None:
            page = page.where(key > last)
        async with db.read() as session:
            rows = list(await session.scalars(page))
        if not rows:
            return
        yield rows
        if len(rows) < PAGE_ROWS:
            return
        last = getattr(rows[-1], key.key)


async def _json_list(db: Database, query: Select[Any]) -> AsyncIterator[bytes]:
    yield b"["
    first = True
    async for rows in _pages(db, query):
        parts = []
        for row in rows:
            parts.append(("\n" if first else ",\n").encode() + _dumps(row_dict(row)))
            first = False
        yield b"".join(parts)
    yield b"\n]\n"


class Progress:
    """Counts work done (tables, conversations, plugins' files); at most twice a second (and
    at the start) stores the percentage and tells the owner's open tabs (``task.progress``)."""

    def __init__(self, app: web.Application, export: DataExport, total: int) -> None:
        from multinotes.live import Throttle

        self.app = app
        self.db = app[DB]
        self.export = export
        self.total = max(total, 1)
        self.done = 0
        self.stored = 0
        self.throttle = Throttle()

    async def step(self, units: int = 1) -> None:
        self.done = min(self.total, self.done + units)
        await self.tell()

    async def tell(self, force: bool = False) -> None:
        from multinotes.live import task_progress

        if not self.throttle.ready(force):
            return
        # Never 100 before the file is in place: "done" says that.
        percent = min(99, self.done * 100 // self.total)
        if percent > self.stored:
            self.stored = percent
            async with self.db.transaction() as session:
                await session.execute(
                    update(DataExport)
                    .where(DataExport.id == self.export.id)
                    .values(progress=percent)
                )
        await task_progress(
            self.app,
            self.export.user_id,
            kind="data_export",
            task_id=self.export.id,
            done=self.done,
            total=self.total,
        )


async def export_avatar(
    app: web.Application, user: User, sink: ZipSink, progress: Progress
) -> None:
    key = profile.avatar_key(user.avatar_id) if user.avatar_id else None
    storage = objects.storage_of(app)
    if key is not None and await storage.exists(key):
        await sink.write_stream("avatar.png", storage.read(key))
    await progress.step()


async def export_conversations(
    app: web.Application, user: User, sink: ZipSink, progress: Progress
) -> None:
    """``conversations/<id>.json`` with the message tree, and the media files it names."""
    db = app[DB]
    storage = objects.storage_of(app)
    conversations = select(Conversation).where(Conversation.user_id == user.id)
    async for rows in _pages(db, conversations):
        for conversation in rows:
            try:
                # Sealed ones too (blind comparisons): it is the owner's own data, and the
                # arena's tables, exported with it, name the models anyway.
                tree = await chat.load_tree(db, user.id, conversation.id, sealed_too=True)
            except NotFound:  # deleted while the export ran
                await progress.step()
                continue
            await sink.write_bytes(
                f"conversations/{conversation.id}.json", _dumps(conversation_document(tree))
            )
            for items in tree.media.values():
                for media in items:
                    key = objects.key_of(media.path)
                    if await storage.exists(key):  # compressed already: stored as it is
                        arcname = media_arcname(media)
                        await sink.write_stream(arcname, storage.read(key), stored=True)
            await progress.step()
    await progress.step()  # the step itself, as the total counts it


def file_arcname(row: File) -> str:
    # The stored name was cleaned on upload (no path, printable); keep it readable in the zip.
    name = row.name.replace("/", "_").replace("\\", "_") or "file"
    return f"files/{row.id}/{name}"


async def export_files(app: web.Application, user: User, sink: ZipSink, progress: Progress) -> None:
    """The bytes of every stored file, streamed from the storage backend."""
    storage = app[FILE_STORAGE]
    async for rows in _pages(app[DB], select(File).where(File.user_id == user.id)):
        for row in rows:
            if await storage.exists(row.storage_key):
                await sink.write_stream(file_arcname(row), storage.read(row.storage_key))
    await progress.step()


ContentExport = Callable[[web.Application, User, ZipSink, Progress], Awaitable[None]]

#: Steps that write more than one table's rows: documents and the files they name. A step calls
#: ``progress.step()`` at least once.
CONTENT_EXPORTS: list[ContentExport] = [export_avatar, export_conversations, export_files]


def readme(plugin_files: list[tuple[str, UserDataExport]]) -> str:
    text = README.format(date=utcnow().strftime("%Y-%m-%d %H:%M"))
    if plugin_files:
        lines = [
            f"plugins/{plugin}/{e.name}\n    {e.description or plugin}"
            for plugin, e in plugin_files
        ]
        text += PLUGINS_README + "\n".join(lines) + "\n"
    return text


async def export_plugin_data(
    app: web.Application, user: User, sink: ZipSink, progress: Progress
) -> None:
    """What each loaded plugin keeps about the user, in its own folder of the zip."""
    for plugin, export in app[PLUGINS].user_data_exports():
        try:
            data = await export.collect(app, user.id)
        except Exception:
            log.error("data_export_plugin_failed", plugin=plugin, file=export.name)
            raise
        await sink.write_bytes(f"plugins/{plugin}/{export.name}", _dumps(data))
        await progress.step()


async def write_export(app: web.Application, user: User, sink: ZipSink, progress: Progress) -> None:
    db = app[DB]
    await sink.write_bytes("README.txt", readme(app[PLUGINS].user_data_exports()).encode())
    for table in TABLE_EXPORTS:
        query = table.query(user.id)
        if table.single:
            async with db.read() as session:
                row = await session.scalar(query)
            document = row_dict(row) if row is not None else None
            if document is not None and isinstance(row, User):
                document["avatar"] = "avatar.png" if row.avatar_id else None
            await sink.write_bytes(table.name, _dumps(document))
        else:
            await sink.write_stream(table.name, _json_list(db, query))
        await progress.step()
    for step in CONTENT_EXPORTS:
        await step(app, user, sink, progress)
    await export_plugin_data(app, user, sink, progress)


async def build_data_export(app: web.Application, *, export_id: str, base_url: str) -> None:
    """The task: build the zip of an export, then mail its owner."""
    db = app[DB]
    settings = app[SETTINGS]
    async with db.transaction() as session:
        claimed = await session.execute(
            update(DataExport)
            .where(DataExport.id == export_id, DataExport.status == ExportStatus.PENDING)
            .values(status=ExportStatus.RUNNING, progress=0)
        )
        export = await session.get(DataExport, export_id)
    if rows_affected(claimed) != 1 or export is None:
        log.info("data_export_skipped", export_id=export_id)  # gone, or taken by another worker
        return
    # Built on this machine's disk (a zip needs seeking), then kept in the storage backend.
    folder = exports_dir(settings)
    partial = folder / f".{export_id}.zip.part"
    storage = objects.storage_of(app)
    key = objects.export_key(export.user_id, export_id)
    try:
        async with db.read() as session:
            user = await session.get(User, export.user_id)
            conversations = await session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.user_id == export.user_id)
            )
        if user is None:
            raise LookupError("the user is gone")
        await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
        total = (
            len(TABLE_EXPORTS)
            + len(CONTENT_EXPORTS)
            + len(app[PLUGINS].user_data_exports())
            + int(conversations or 0)
        )
        progress = Progress(app, export, total)
        await progress.tell(force=True)
        sink = ZipSink(partial)
        try:
            await write_export(app, user, sink, progress)
        finally:
            await sink.close()
        await progress.tell(force=True)  # everything written; the zip is stored next
        size = await objects.put_file(storage, key, partial)
        await asyncio.to_thread(_unlink, partial)
        now = utcnow()
        async with db.transaction() as session:
            stored = await session.execute(
                update(DataExport)
                .where(DataExport.id == export_id)
                .values(
                    status=ExportStatus.DONE,
                    progress=100,
                    path=key,
                    size=size,
                    finished_at=now,
                    expires_at=now + timedelta(days=settings.data_export_expiry_days),
                )
            )
            if rows_affected(stored) == 1:
                stage(
                    session,
                    EXPORT_COMPLETED.of(
                        user.id, ExportCompleted(export_id=export_id, size=int(size))
                    ),
                )
        if rows_affected(stored) != 1:  # the row went (its account was deleted) while building
            await storage.delete(key)
            log.info("data_export_dropped", export_id=export_id)
            return
    except Exception:
        log.exception("data_export_failed", export_id=export_id)
        await asyncio.to_thread(_unlink, partial)
        async with db.transaction() as session:
            failed = await session.execute(
                update(DataExport)
                .where(DataExport.id == export_id)
                .values(status=ExportStatus.FAILED, finished_at=utcnow())
            )
        if rows_affected(failed) == 1:
            await _tell_owner(app, export.user_id, export_id, done=False)
        return
    log.info("data_export_built", export_id=export_id, size=size)
    await _tell_owner(app, user.id, export_id, done=True)
    await send_mail(
        app,
        template="data_export_ready",
        to=user.email,
        context={
            "name": user.name,
            "link": f"{base_url}/account/privacy",
            "days": settings.data_export_expiry_days,
        },
    )


async def _tell_owner(app: web.Application, user_id: str, export_id: str, *, done: bool) -> None:
    """The owner's open tabs show a toast offering the download (or saying it failed)."""
    from multinotes.live import task_finished

    await task_finished(
        app,
        user_id,
        kind="data_export",
        task_id=export_id,
        status="done" if done else "failed",
        title="Your data export is ready" if done else "Your data export failed",
        excerpt="" if done else "Nothing was kept. Try again from the privacy page.",
        url="/account/privacy",
        download_url=f"/api/me/exports/{export_id}/download" if done else None,
    )


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


# -- requests -----------------------------------------------------------------------------------


async def start_export(
    app: web.Application, user_id: str, *, base_url: str
) -> tuple[DataExport, bool]:
    """The user's export in progress, or a new one (queued). Returns it and whether it is new.

    The user's row is locked while deciding, so two requests at once start one job."""
    db = app[DB]
    now = utcnow()
    async with db.transaction() as session:
        await session.execute(select(User.id).where(User.id == user_id).with_for_update())
        running = await session.scalar(
            select(DataExport)
            .where(
                DataExport.user_id == user_id,
                DataExport.status.in_((ExportStatus.PENDING, ExportStatus.RUNNING)),
            )
            .order_by(DataExport.created_at.desc())
            .limit(1)
        )
        if running is not None and running.created_at > now - STALE_AFTER:
            return running, False
        if running is not None:
            running.status = ExportStatus.FAILED
            running.finished_at = now
        export = DataExport(id=new_id(), user_id=user_id, status=ExportStatus.PENDING, progress=0)
        export.created_at = now
        session.add(export)
    await app[TASKS].enqueue(BUILD_TASK, export_id=export.id, base_url=base_url)
    return export, True


async def request_export(request: web.Request) -> DataExport:
    """Start an export for the person asking (or return the one in progress), audited.
    The API and the privacy page both call this."""
    actor = require_user(request)
    export, created = await start_export(
        request.app, actor.user_id, base_url=public_base_url(request)
    )
    if created:
        await audit.record(
            request.app,
            request,
            "privacy.export_requested",
            target_type="data_export",
            target_id=export.id,
        )
    return export


async def list_exports(db: Database, user_id: str) -> list[DataExport]:
    async with db.read() as session:
        rows = await session.scalars(
            select(DataExport)
            .where(DataExport.user_id == user_id)
            .order_by(DataExport.created_at.desc(), DataExport.id.desc())
            .limit(20)
        )
        return list(rows)


async def get_export(db: Database, user_id: str, export_id: str) -> DataExport:
    """One of the user's exports; someone else's is as unknown as a made-up id."""
    async with db.read() as session:
        export = await session.scalar(
            select(DataExport).where(DataExport.id == export_id, DataExport.user_id == user_id)
        )
    if export is None:
        raise NotFound("No such export.")
    return export


def downloadable(export: DataExport) -> bool:
    return (
        export.status == ExportStatus.DONE
        and export.path is not None
        and export.expires_at is not None
        and export.expires_at > utcnow()
    )


async def purge_data_exports(app: web.Application) -> int:
    """Remove expired exports (file and row), failed ones after the same time, and mark jobs
    that died with their worker as failed."""
    db = app[DB]
    now = utcnow()
    keep = timedelta(days=app[SETTINGS].data_export_expiry_days)
    async with db.transaction() as session:
        await session.execute(
            update(DataExport)
            .where(
                DataExport.status.in_((ExportStatus.PENDING, ExportStatus.RUNNING)),
                DataExport.created_at < now - STALE_AFTER,
            )
            .values(status=ExportStatus.FAILED, finished_at=now)
        )
        expired = list(
            await session.scalars(
                select(DataExport).where(
                    or_(
                        DataExport.expires_at < now,
                        (DataExport.status == ExportStatus.FAILED)
                        & (DataExport.created_at < now - keep),
                    )
                )
            )
        )
        for export in expired:
            await session.delete(export)
    await objects.delete_all(objects.storage_of(app), [e.path for e in expired if e.path])
    await asyncio.to_thread(_remove_partials, exports_dir(app[SETTINGS]))
    return len(expired)


async def remove_user_export_files(app: web.Application, user_id: str) -> None:
    """Delete every export file of a user (their account is being deleted)."""
    db = app[DB]
    async with db.read() as session:
        paths = list(
            await session.scalars(select(DataExport.path).where(DataExport.user_id == user_id))
        )
    await objects.delete_all(objects.storage_of(app), [path for path in paths if path])


def _remove_partials(folder: Path) -> None:
    """Partial files of jobs that died with their worker: someone's data, nobody's file."""
    if not folder.exists():
        return
    cutoff = time.time() - STALE_AFTER.total_seconds()
    for path in folder.glob(".*.zip.part"):
        if path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)


def export_tasks() -> list[TaskDef]:
    return [
        TaskDef("core", BUILD_TASK, build_data_export, None),
        TaskDef("core", PURGE_TASK, purge_data_exports, "7 * * * *"),
    ]
