"""The exporter contract: what a note, a comparison, a conversation or a folder becomes as a file
(or, for a remote destination, the address of what was created there).

The core gathers everything a format needs into an ``ExportDocument`` (title, Markdown, where a
saved answer came from, the images of the user's files it shows) and hands it to the exporter
with the options the user chose, validated against the exporter's ``Options`` model. A folder is
exported note by note: ``render`` runs once per note (with ``folder_path`` set) and the core keeps
the tree in a ZIP. An exporter never reads the database or the storage: everything it may show
is in the document, already checked against what the person exporting may read.

An exporter implements ``render(document, options) -> ExportFile | ExportLink``. Exporters
written for the first contract implement ``export(document) -> bytes`` only; they keep working
(the core wraps their bytes in an ``ExportFile``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from multinotes.connections import Connection
    from multinotes.ui import Action

#: Credits are integers; one credit is this many US dollars (see ``multinotes.wallet``).
USD_PER_CREDIT = 0.00001

ExportKind = Literal["note", "comparison", "conversation"]


@dataclass(frozen=True)
class ExportImage:
    """An image of the user's files that a note shows: ``src`` as written in the Markdown
    (``/api/files/<id>/content``), its bytes, type (PNG, JPEG, GIF or WebP: never SVG) and
    file name. ``file_id`` is the file's id; ``url``, set for a remote exporter, is a signed,
    expiring absolute link to the bytes that works without signing in (for a service that fetches
    the image itself, such as Notion)."""

    src: str
    data: bytes
    media_type: str
    name: str
    file_id: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class ExportSource:
    """One model's answer behind a note: the model, its provider, tokens and cost."""

    model: str
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    #: Credits charged (integers; ``cost_usd`` converts).
    cost: int = 0
    created_at: datetime | None = None

    @property
    def cost_usd(self) -> float:
        return self.cost * USD_PER_CREDIT

    def summary(self) -> str:
        """This answer's provenance on one line (under its model's name in a comparison):
        provider, tokens, cost and date."""
        parts = [self.provider] if self.provider else []
        parts.append(f"{self.input_tokens:,} in, {self.output_tokens:,} out tokens")
        parts.append(f"{self.cost:,} credits (${self.cost_usd:.5f})")
        if self.created_at is not None:
            parts.append(self.created_at.strftime("%Y-%m-%d %H:%M UTC"))
        return " · ".join(parts)


@dataclass(frozen=True)
class Provenance:
    """Where a saved answer came from: the prompt, each model's answer (``sources``), when it
    was saved, and links back to the note and its conversation in the app."""

    prompt: str | None = None
    sources: tuple[ExportSource, ...] = ()
    saved_at: datetime | None = None
    link: str | None = None
    conversation_link: str | None = None

    @property
    def models(self) -> list[str]:
        return [s.model for s in self.sources]

    def rows(self) -> list[tuple[str, str]]:
        """The provenance as (label, value) pairs, the same in every format: prompt, models,
        tokens, cost, date and link."""
        rows: list[tuple[str, str]] = []
        if self.prompt:
            rows.append(("Prompt", self.prompt))
        for source in self.sources:
            provider = f" ({source.provider})" if source.provider else ""
            rows.append(("Model", f"{source.model}{provider}"))
            rows.append(
                (
                    "Tokens",
                    f"{source.input_tokens:,} in, {source.output_tokens:,} out",
                )
            )
            rows.append(("Cost", f"{source.cost:,} credits (${source.cost_usd:.5f})"))
        if self.saved_at is not None:
            rows.append(("Saved", self.saved_at.strftime("%Y-%m-%d %H:%M UTC")))
        elif self.sources and self.sources[0].created_at is not None:
            rows.append(("Date", self.sources[0].created_at.strftime("%Y-%m-%d %H:%M UTC")))
        if self.link:
            rows.append(("Link", self.link))
        return rows

    def shared_rows(self) -> list[tuple[str, str]]:
        """The rows every answer of a comparison shares (date and link): a side-by-side layout
        shows the prompt above the answers and each model's own rows in its column
        (``ExportSource.summary``)."""
        shared = ("Saved", "Date", "Link")
        return [(label, value) for label, value in self.rows() if label in shared]


@dataclass(frozen=True)
class ExportAnswer:
    """One model's answer in a comparison (one prompt, several models' answers)."""

    model: str
    markdown: str
    source: ExportSource | None = None


@dataclass(frozen=True)
class ExportMessage:
    """One message of a conversation branch, oldest first."""

    role: Literal["user", "assistant", "system"]
    markdown: str
    model: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ExportDocument:
    """What is exported. ``markdown`` always holds the whole content (for a comparison every
    answer under its model's heading, for a conversation every message in turn), so a format
    that knows only Markdown exports everything; the other fields let a format do better.

    ``metadata`` (strings) is the first contract's provenance and stays filled: ``model``,
    ``prompt``, ``saved_at``, ``link``, ... ``images`` maps each ``src`` of the Markdown that
    names one of the user's files to its bytes; an image not in it is shown as a link."""

    title: str
    markdown: str
    metadata: dict[str, str] = field(default_factory=dict)
    kind: ExportKind = "note"
    provenance: Provenance | None = None
    images: Mapping[str, ExportImage] = field(default_factory=dict)
    #: A comparison's answers, one per model.
    answers: tuple[ExportAnswer, ...] = ()
    #: A conversation's branch, from its first message to the one exported.
    messages: tuple[ExportMessage, ...] = ()
    #: The note (or conversation) in the app, as an absolute URL.
    link: str | None = None
    #: The names of the folders from the export's root down to the note (folder exports).
    folder_path: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def image(self, src: str) -> ExportImage | None:
        return self.images.get(src)

    @property
    def side_by_side(self) -> bool:
        """A comparison taken from a conversation (its messages end with the answers): formats
        lay the answers out side by side, one column per model. A saved comparison is a note
        whose Markdown the user may have edited, so it is exported as that Markdown."""
        return (
            self.kind == "comparison"
            and bool(self.answers)
            and len(self.messages) > len(self.answers)
        )

    @property
    def lead_messages(self) -> tuple[ExportMessage, ...]:
        """For a side-by-side comparison, the messages before the answers (the branch down to
        the prompt, the prompt last); otherwise every message."""
        if not self.side_by_side:
            return self.messages
        return self.messages[: len(self.messages) - len(self.answers)]


@dataclass(frozen=True)
class ExportFile:
    """A file to download: the whole content, or a stream of chunks."""

    content: bytes | AsyncIterable[bytes]
    media_type: str
    filename: str

    async def read(self) -> bytes:
        if isinstance(self.content, bytes):
            return self.content
        return b"".join([chunk async for chunk in self.content])


@dataclass(frozen=True)
class ExportLink:
    """What a remote destination made: the address of the page or document it created or
    updated, and the service's id of it (``remote_id``): the core keeps it, and an export of the
    same note through the same connection gets it back (``Connection.remote_id``) to update
    that page instead of making another."""

    url: str
    remote_id: str | None = None


ExportResult = ExportFile | ExportLink


class ExportOptions(BaseModel):
    """The options every exporter takes; an exporter's ``Options`` subclasses it. Unknown
    options are refused (a 400 naming the field)."""

    model_config = ConfigDict(extra="forbid")

    include_provenance: bool = Field(
        default=True,
        description="Show where an answer came from: prompt, model, tokens, cost, date, link.",
    )


_UNSAFE_NAME = re.compile(r"[^\w .()-]+")


def safe_filename(title: str, extension: str, *, default: str = "note") -> str:
    """A file name from a title: letters, digits, spaces, ``.()-_`` only, at most 80 characters
    before the extension, never empty, never hidden (no leading dot)."""
    text = unicodedata.normalize("NFC", title)
    text = _UNSAFE_NAME.sub("-", text).strip(" .-") or default
    text = re.sub(r"-{2,}", "-", text)[:80].rstrip(" .-") or default
    return f"{text}.{extension}" if extension else text


#: The Export menu's heading, under which every exporter's actions are listed.
EXPORT_GROUP = "Export"
#: The heading of a prompt's menu in the workspace, for its answers exported side by side.
EXPORT_COMPARISON_GROUP = "Export comparison"


@dataclass(frozen=True)
class _ExportTarget:
    """One thing an Export menu exports: where its entry shows (``on``), how a file exporter
    gets it at once (``download``, a GET answering the file), and the form that exports it in
    the background instead (``post``: what a remote destination always uses, and a file
    exporter when there is no ``download``)."""

    name: str
    on: str
    download: str | None
    post: str
    group: str = EXPORT_GROUP


_EXPORT_TARGETS = (
    _ExportTarget("note", "note", "/api/documents/{id}/export", "/exports/remote/{id}"),
    _ExportTarget("answer", "answer", "/api/messages/{id}/export", "/exports/answer/{id}"),
    _ExportTarget(
        "comparison",
        "prompt",
        "/api/messages/{id}/export-comparison",
        "/exports/comparison/{id}",
        EXPORT_COMPARISON_GROUP,
    ),
    _ExportTarget("conversation", "conversation", None, "/exports/conversation/{id}"),
    _ExportTarget("folder", "folder", None, "/exports/folder/{id}"),
)


def export_actions(exporter: Exporter) -> list[Action]:
    """The Export menu entries of a file exporter, for its plugin's ``register_actions``: a
    note downloads at once (``GET /api/documents/{id}/export?format=<id>``; a saved comparison
    is a note too), and so do an answer in the workspace (``GET /api/messages/{id}/export``,
    with its provenance) and a prompt with its answers side by side
    (``GET /api/messages/{id}/export-comparison``); a conversation or a folder (a ZIP keeping
    its tree) is exported in the background, with a progress bar in the menu.

    A remote destination answers with a link (or, when the account is not connected yet, with
    a link to connect it that comes back here): a note at once, the rest through a background
    export whose progress ends in the link; folders only when it implements ``container``."""
    from multinotes.ui import Action

    format_id = exporter.exporter_id
    actions = []
    query = f"?format={format_id}"
    for target in _EXPORT_TARGETS:
        if exporter.remote and target.name == "folder" and not exporter.takes_folders:
            continue
        download = None if exporter.remote else target.download
        zipped = target.name == "folder" and not exporter.remote
        actions.append(
            Action(
                id=f"{format_id}-export-{target.name}",
                label=f"{exporter.name} (ZIP)" if zipped else exporter.name,
                on=frozenset({target.on}),
                url=download + query if download else None,
                post=None if download else target.post + query,
                group=target.group,
            )
        )
    return actions


class Exporter:
    """An export format (or a remote destination), registered by ``register_exporters``.

    Declare ``exporter_id`` (unique), ``name`` (shown in menus), ``media_type`` and
    ``extension`` of the files it makes, and ``Options`` (a pydantic model subclassing
    ``ExportOptions``). A remote destination sets ``remote = True`` and returns an
    ``ExportLink``. Raise ``multinotes.plugin.Invalid`` (naming the part in ``fields``) for
    content the format cannot take: the user sees the message, and no file is kept.

    Implement ``render``; ``export`` (bytes with the default options) is the first contract's
    method and is still honoured when it is the one implemented."""

    exporter_id: ClassVar[str]
    name: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[ExportOptions]] = ExportOptions
    remote: ClassVar[bool] = False
    #: The kind of connected account a remote destination acts on (a ``ConnectionKind`` id, e.g.
    #: ``"notion"``). The core then calls ``render(document, options, connection=...)`` with a
    #: ``multinotes.plugin.Connection`` (a current access token, the plugin's settings, the
    #: remote id of an earlier export of this note); raise ``ConnectionRejected`` when the
    #: service refuses the token.
    connection: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.render is Exporter.render and cls.export is Exporter.export:
            raise TypeError(f"{cls.__name__} must implement render() (or export())")

    @property
    def id(self) -> str:
        return self.exporter_id

    @property
    def takes_folders(self) -> bool:
        """A remote destination that implements ``container`` (a folder's notes go under it)."""
        return type(self).container is not Exporter.container

    async def container(
        self, title: str, link: str | None, options: ExportOptions, *, connection: Connection
    ) -> ExportLink:
        """A remote destination that takes folders implements this: make the place that holds
        a folder's notes (a Notion page, a Drive folder) named ``title``, with ``link`` (the
        folder in the app) where the service can show it, under ``connection.parent_id`` (the
        place of the folder above) or else the default destination; with
        ``connection.remote_id`` (made by an earlier export, maybe since deleted at the
        service), rename that one instead when it still exists. The core then sends each note
        of the folder with ``render`` and ``connection.parent_id`` set to it."""
        raise NotImplementedError(f"{self.exporter_id} does not take folders")

    def filename(self, document: ExportDocument) -> str:
        """The file name for ``document``: its title, made safe, with ``extension``."""
        return safe_filename(document.title, self.extension)

    async def render(self, document: ExportDocument, options: ExportOptions) -> ExportResult:
        """Make the file (or the remote page) for ``document`` with ``options`` (an instance of
        ``Options``)."""
        data = await self.export(document)
        return ExportFile(data, self.media_type, self.filename(document))

    async def export(self, document: ExportDocument) -> bytes:
        """The file's bytes with the default options (the first contract's method)."""
        result = await self.render(document, self.Options())
        if not isinstance(result, ExportFile):
            raise TypeError(f"{self.exporter_id} makes remote pages, not files")
        return await result.read()
