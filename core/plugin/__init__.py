"""``multinotes.plugin``: the one module a plugin imports from MultinotesAI.

Everything here is public API with a stability promise (see ``docs/plugin-api.md``): names
are added, never removed or renamed in a minor release; hook specs gain arguments, never lose
them; the types' constructors and methods gain optional parameters only. What is not exported
here (``multinotes.keys``, ``multinotes.catalog``, the database, ...) is core-internal and may
change at any time, and a test fails when a built-in plugin imports it. A plugin's tests may
also use ``multinotes.testing``.

The surface, by family:

* hooks: ``hookimpl`` and the typed ``register`` callables each capability hook receives;
* providers: ``Provider``/``StaticProvider``, ``Model``, ``ModelInfo`` (a model declared as
  data), ``GenerationRequest`` (with the ``key`` and ``base_url`` the core read from the
  settings), ``Usage``, ``Pricing`` (``Pricing.from_usd`` converts list prices), the option
  models, chunks;
* exporters, integrations, billing: ``Exporter`` (with ``ExportDocument``, ``Provenance``,
  ``ExportOptions``, ``ExportFile``/``ExportLink``; ``export_blocks`` parses a note's Markdown
  into blocks, ``render_markdown`` into sanitised HTML), ``Integration``/``Event``,
  ``BillingBackend``/``Checkout``/``BillingEvent`` (``WebhookRejected``, ``BillingNotSupported``,
  ``PaymentDeclined``);
* connected accounts: ``ConnectionKind`` (an OAuth 2.0 service, ``register_connections``:
  ``OAuthEndpoints``, ``ConnectedAccount``), ``Connection`` (what a remote exporter with
  ``connection = "<kind>"`` gets), ``ConnectionRejected``, ``ConnectionUnavailable``;
* user interface: ``NavLink``, ``Action`` (offered on an ``ActionTarget`` to a ``Viewer``),
  ``SettingsPanel`` and assets; ``"default:<template>"`` names the core's own template;
* domain events: ``EventType`` (a catalogue entry: name, payload ``version``, description,
  ``EventPayload`` model), ``DomainEvent`` (one published event), ``EventRegistrar`` for
  ``register_events``, and the core's types (``NOTE_CREATED``, ``GENERATION_COMPLETED``, ...);
* own tables: ``plugin_metadata()`` (a ``MetaData`` named like the core's), ``core_foreign_key``
  (a row owned by a user), ``new_id``/``utcnow``/``UTCDateTime``, and ``MigrationsRegistrar`` for
  ``register_migrations`` (the plugin's Alembic revisions); ``UserDataExport`` and
  ``UserDataRegistrar`` for ``register_user_data`` (the user's rows in their data export);
* errors: the ``ProviderError`` family and the request errors a plugin may raise;
* SDK plumbing: ``ClientCache`` (long-lived SDK clients), ``openai_wire`` (the OpenAI wire
  protocol, shared by every server that speaks it), ``outgoing`` (the arguments every HTTP
  client must be built with, the error for a refused redirect, and the address guard:
  ``guard_httpx_client`` for httpx-based SDKs, ``connector()`` for aiohttp sessions),
  ``parse_retry_after``, ``configured_key``;
* run time: ``plugin_context(app, name)`` → ``PluginContext`` (settings, tasks, events, the
  wallet ledger, prompts sent on a user's behalf (``Answer``), templates, absolute URLs, sealed
  tokens);
* account links: ``AccountLinks`` (a user of another service, a chat app's, linked to an account
  through a one-time link) with ``LinkUseColumns`` (its table of used links).
"""

from multinotes import export_blocks, hookimpl, openai_wire, outgoing
from multinotes.billing import (
    BillingBackend,
    BillingEvent,
    BillingNotSupported,
    Checkout,
    PaymentDeclined,
    WebhookRejected,
)
from multinotes.connections import (
    ConnectedAccount,
    Connection,
    ConnectionKind,
    ConnectionRejected,
    ConnectionUnavailable,
    Destination,
    OAuthEndpoints,
)
from multinotes.db import UTCDateTime, new_id, utcnow
from multinotes.domain_events import (
    COMMENT_CREATED,
    CREDITS_LOW,
    EXPORT_COMPLETED,
    FOLDER_CREATED,
    GENERATION_COMPLETED,
    GENERATION_FAILED,
    NOTE_CREATED,
    NOTE_DELETED,
    NOTE_SHARED,
    NOTE_UPDATED,
    ORDER_PAID,
    DomainEvent,
    EventPayload,
    EventType,
)
from multinotes.errors import (
    Conflict,
    ContentFiltered,
    Forbidden,
    Invalid,
    NeedsKey,
    NotFound,
    PaymentRequired,
    PluginError,
    ProviderBadResponse,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from multinotes.exporters import (
    ExportAnswer,
    ExportDocument,
    Exporter,
    ExportFile,
    ExportImage,
    ExportLink,
    ExportMessage,
    ExportOptions,
    ExportResult,
    ExportSource,
    Provenance,
    export_actions,
    safe_filename,
)
from multinotes.hookspecs import (
    ActionRegistrar,
    AssetRegistrar,
    BillingRegistrar,
    ConnectionRegistrar,
    EventRegistrar,
    ExporterRegistrar,
    IntegrationRegistrar,
    MigrationsRegistrar,
    NavLinkRegistrar,
    ProviderRegistrar,
    RouteRegistrar,
    SettingsPanelRegistrar,
    SettingsRegistrar,
    TaskRegistrar,
    TemplateRegistrar,
    UserDataRegistrar,
)
from multinotes.http.endpoint import read_body
from multinotes.integrations import Event, Integration
from multinotes.markdown import render_markdown
from multinotes.plugin.context import Answer, Caller, PluginContext, WalletEntry, plugin_context
from multinotes.plugin.links import AccountLinks, LinkUseColumns
from multinotes.plugin_tables import core_foreign_key, plugin_metadata
from multinotes.privacy.plugin_data import UserDataExport
from multinotes.providers import (
    CAPABILITIES,
    CREDITS_PER_USD,
    Attachment,
    ChatMessage,
    Chunk,
    ClientCache,
    Closable,
    GenerationRequest,
    ImageOptions,
    MediaOutput,
    Model,
    ModelInfo,
    Options,
    Pricing,
    Provider,
    SpeechOptions,
    StaticProvider,
    TranscriptionOptions,
    Usage,
    configured_key,
    credits_from_usd,
    parse_retry_after,
)
from multinotes.ui import Action, ActionTarget, NavLink, SettingsPanel, Viewer
from multinotes.user_sets import UserSet

__all__ = [
    "CAPABILITIES",
    "COMMENT_CREATED",
    "CREDITS_LOW",
    "CREDITS_PER_USD",
    "EXPORT_COMPLETED",
    "FOLDER_CREATED",
    "GENERATION_COMPLETED",
    "GENERATION_FAILED",
    "NOTE_CREATED",
    "NOTE_DELETED",
    "NOTE_SHARED",
    "NOTE_UPDATED",
    "ORDER_PAID",
    "AccountLinks",
    "Action",
    "ActionRegistrar",
    "ActionTarget",
    "Answer",
    "AssetRegistrar",
    "Attachment",
    "BillingBackend",
    "BillingEvent",
    "BillingNotSupported",
    "BillingRegistrar",
    "Caller",
    "ChatMessage",
    "Checkout",
    "Chunk",
    "ClientCache",
    "Closable",
    "Conflict",
    "ConnectedAccount",
    "Connection",
    "ConnectionKind",
    "ConnectionRegistrar",
    "ConnectionRejected",
    "ConnectionUnavailable",
    "ContentFiltered",
    "Destination",
    "DomainEvent",
    "Event",
    "EventPayload",
    "EventRegistrar",
    "EventType",
    "ExportAnswer",
    "ExportDocument",
    "ExportFile",
    "ExportImage",
    "ExportLink",
    "ExportMessage",
    "ExportOptions",
    "ExportResult",
    "ExportSource",
    "Exporter",
    "ExporterRegistrar",
    "Forbidden",
    "GenerationRequest",
    "ImageOptions",
    "Integration",
    "IntegrationRegistrar",
    "Invalid",
    "LinkUseColumns",
    "MediaOutput",
    "MigrationsRegistrar",
    "Model",
    "ModelInfo",
    "NavLink",
    "NavLinkRegistrar",
    "NeedsKey",
    "NotFound",
    "OAuthEndpoints",
    "Options",
    "PaymentDeclined",
    "PaymentRequired",
    "PluginContext",
    "PluginError",
    "Pricing",
    "Provenance",
    "Provider",
    "ProviderBadResponse",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRegistrar",
    "ProviderUnavailable",
    "RouteRegistrar",
    "SettingsPanel",
    "SettingsPanelRegistrar",
    "SettingsRegistrar",
    "SpeechOptions",
    "StaticProvider",
    "TaskRegistrar",
    "TemplateRegistrar",
    "TranscriptionOptions",
    "UTCDateTime",
    "Usage",
    "UserDataExport",
    "UserDataRegistrar",
    "UserSet",
    "Viewer",
    "WalletEntry",
    "WebhookRejected",
    "configured_key",
    "core_foreign_key",
    "credits_from_usd",
    "export_actions",
    "export_blocks",
    "hookimpl",
    "new_id",
    "openai_wire",
    "outgoing",
    "parse_retry_after",
    "plugin_context",
    "plugin_metadata",
    "read_body",
    "render_markdown",
    "safe_filename",
    "utcnow",
]
