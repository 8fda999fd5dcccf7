"""The app's features, each composed by one ``setup_*(app)``: its JSON API (``multinotes.api``)
and its pages (``multinotes.web``). ``create_app`` calls ``setup(app)``, which calls them all.

A feature's services live in its package (``multinotes.identity``, ``multinotes.notes``, ...);
the API and the pages both call those services and never each other, and a feature package never
imports either of them (``tests/test_import_contracts.py``). This module is the one place that
knows every HTTP module, so adding one is a line in its feature's ``setup_*`` here.
"""

from __future__ import annotations

from types import ModuleType

from aiohttp import web

from multinotes.announcements import api as announcements_api
from multinotes.announcements import pages as announcements_pages
from multinotes.api import (
    account_security,
    admin_plugins,
    admin_users,
    audit_log,
    auth,
    comments,
    connections,
    conversations,
    documents,
    events,
    exports,
    files,
    folders,
    health,
    keys,
    models,
    notifications,
    oauth,
    privacy,
    profile,
    remote_exports,
    search,
    sessions,
    shares,
    tools,
    wallet,
)
from multinotes.arena import api as arena_api
from multinotes.arena import pages as arena_pages
from multinotes.billing import api as billing_api
from multinotes.billing import auto_reload, auto_reload_routes, storage_plans
from multinotes.billing import console as billing_console
from multinotes.billing import pages as billing_pages
from multinotes.prompts import api as prompts_api
from multinotes.prompts import pages as prompts_pages
from multinotes.sharing import low_balance
from multinotes.support import api as support_api
from multinotes.support import notifier as support_notifier
from multinotes.support import pages as support_pages
from multinotes.web import (
    account_pages,
    admin_user_pages,
    admin_workspace,
    connections_pages,
    docs,
    exports_pages,
    files_pages,
    notes_pages,
    oauth_pages,
    pages,
    privacy_pages,
    profile_pages,
    remote_export_pages,
    search_pages,
    sharing_pages,
    usage,
    workspace_pages,
)


def _add(app: web.Application, *modules: ModuleType) -> None:
    for module in modules:
        app.router.add_routes(module.routes)


def setup_platform(app: web.Application) -> None:
    """Health and readiness, the API documentation, the plugin console, the public pages, the
    domain event catalogue."""
    _add(app, health, admin_plugins, docs, pages, events)
    app.on_startup.append(docs.build_on_startup)


def setup_identity(app: web.Application) -> None:
    """Accounts: sign-up and sign-in (password and OAuth), sessions, API keys, email and
    password changes, profile and security events; the admin's users and audit log."""
    _add(app, auth, oauth, keys, account_security, sessions, profile, admin_users, audit_log)
    _add(app, account_pages, oauth_pages, profile_pages, admin_user_pages)


def setup_workspace(app: web.Application) -> None:
    """The model catalog, tools and conversations (the chat), and their admin console."""
    _add(app, models, tools, conversations, workspace_pages, admin_workspace)


def setup_wallet(app: web.Application) -> None:
    """Credits: the wallet, its ledger and usage; a notice and a mail when credits run low."""
    _add(app, wallet, usage)
    low_balance.setup(app)


def setup_billing(app: web.Application) -> None:
    """Plans, checkout, orders and payment webhooks; the pricing and billing pages; auto-reload
    reacting to the wallet's events; storage plans feeding the storage quota."""
    _add(app, billing_api, billing_pages, billing_console, auto_reload_routes)
    auto_reload.setup(app)
    storage_plans.setup(app)


def setup_notes(app: web.Application) -> None:
    """Notes and folders, and their exports (PDF, Word, Markdown, HTML, ...)."""
    _add(app, folders, documents, exports, notes_pages, exports_pages)


def setup_connections(app: web.Application) -> None:
    """Accounts at outside services (Notion, Google) connected through OAuth, and notes sent to
    them (remote export destinations)."""
    _add(app, connections, remote_exports, connections_pages, remote_export_pages)


def setup_files(app: web.Application) -> None:
    """Uploaded and generated files."""
    _add(app, files, files_pages)


def setup_sharing(app: web.Application) -> None:
    """Shares, public links, comments, activity and notifications."""
    _add(app, shares, comments, notifications, sharing_pages)


def setup_privacy(app: web.Application) -> None:
    """Data export, account deletion and the legal pages."""
    _add(app, privacy, privacy_pages)


def setup_arena(app: web.Application) -> None:
    """Blind comparisons of models and the leaderboard their votes make."""
    _add(app, arena_api, arena_pages)


def setup_search(app: web.Application) -> None:
    """Search and the command palette."""
    _add(app, search, search_pages)


def setup_prompts(app: web.Application) -> None:
    """The prompt library: templates with typed variables, shared or public, favourites and
    usage counts; the /prompts pages and the workspace's template picker; the built-in
    starter templates, seeded at startup."""
    from multinotes.prompts import starters

    _add(app, prompts_api, prompts_pages)
    app.on_startup.append(starters.seed_on_startup)


def setup_live(app: web.Application) -> None:
    """The live channel: balances and notifications pushed to open tabs (WebSocket or SSE)."""
    from multinotes import live
    from multinotes.live import api as live_api

    _add(app, live_api)
    live.setup(app)


def setup_collab(app: web.Application) -> None:
    """Editing a note together: the CRDT rooms and their WebSocket (issue #20 item 4)."""
    from multinotes import collab
    from multinotes.collab import api as collab_api

    _add(app, collab_api)
    collab.setup(app)


def setup_support(app: web.Application) -> None:
    """Support tickets: users open them and follow the thread; the console's queue answers,
    notes, assigns and closes; replies notify and mail the user."""
    _add(app, support_api, support_pages)
    support_notifier.setup(app)


def setup_organisations(app: web.Application) -> None:
    """Organisations (teams): members and roles, invitations by email, the shared wallet a
    member's generations draw from in the organisation's context, usage per member, email
    domains whose people join automatically."""
    from multinotes.domain_events import EVENTS
    from multinotes.organisations import api as organisations_api
    from multinotes.organisations import domains
    from multinotes.organisations import domains_api as organisation_domains_api
    from multinotes.organisations import pages as organisations_pages
    from multinotes.organisations import spaces_api as organisation_spaces_api

    _add(
        app,
        organisations_api,
        organisation_domains_api,
        organisation_spaces_api,
        organisations_pages,
    )
    # Domain auto-join reacts to verified addresses; DNS is looked up only to verify a claim.
    app[domains.TXT_RESOLVER] = domains.DnsTxtResolver()
    domains.subscribe(app[EVENTS])


def setup_batches(app: web.Application) -> None:
    """Batch runs: a prompt template over the rows of a CSV on several models, in the
    background, with progress, cancel and CSV/XLSX downloads."""
    from multinotes.batches import api as batches_api
    from multinotes.batches import pages as batches_pages

    _add(app, batches_api, batches_pages)


def setup_abuse(app: web.Application) -> None:
    """Abuse detection: sign-up rules (bursts from one network, throw-away addresses) run by
    registration; credit draining and content-filter refusals counted from generation events;
    API-key misuse and the throttle watched by ``abuse.watch``'s middlewares (in the app's
    middleware); the console's review queue and rule settings (``/admin/abuse``)."""
    from multinotes.abuse import api as abuse_api
    from multinotes.abuse import pages as abuse_pages
    from multinotes.abuse import watch as abuse_watch
    from multinotes.domain_events import EVENTS

    _add(app, abuse_api, abuse_pages)
    abuse_watch.setup(app, app[EVENTS])


def setup_analytics(app: web.Application) -> None:
    """The operator's analytics: dashboards read from rollup tables that an hourly task
    rebuilds (``/admin/analytics``, ``/api/admin/analytics/...``)."""
    from multinotes.analytics import api as analytics_api
    from multinotes.analytics import pages as analytics_pages

    _add(app, analytics_api, analytics_pages)


def setup_announcements(app: web.Application) -> None:
    """The operator's announcements: banners users dismiss once, a list page, the console."""
    _add(app, announcements_api, announcements_pages)


def setup_assist(app: web.Application) -> None:
    """Smart assistance: tags and a summary suggested for saved notes (a background task on
    note.created, charged like an answer), model recommendations for a prompt, and the
    catalogue's latency and availability from real traffic."""
    from multinotes.assist import api as assist_api
    from multinotes.assist import notes as assist_notes
    from multinotes.assist import pages as assist_pages
    from multinotes.assist.stats import MODEL_STATS, StatsCache
    from multinotes.domain_events import EVENTS

    _add(app, assist_api, assist_pages)
    app[MODEL_STATS] = StatsCache()
    assist_notes.subscribe(app[EVENTS])


def setup_schedules(app: web.Application) -> None:
    """Scheduled runs: templates run on a cron schedule, answers saved into a folder and
    mailed; the minutely due-finder is a core task (``multinotes.schedules.runner``)."""
    from multinotes.schedules import api as schedules_api
    from multinotes.schedules import pages as schedules_pages

    _add(app, schedules_api, schedules_pages)


def setup_flags(app: web.Application) -> None:
    """Feature flags and A/B experiments: the console's API and pages, the per-process cache
    of their rules (reloaded on every change, across processes), conversions counted from
    domain events, ``flags`` in templates."""
    from multinotes.flags import api as flags_api
    from multinotes.flags import cache as flags_cache
    from multinotes.flags import pages as flags_pages

    _add(app, flags_api, flags_pages)
    flags_cache.setup(app)


def setup_chains(app: web.Application) -> None:
    """Chains: prompts run one after another on chosen models, each step's answer feeding the
    next; document workflows (a run's input read from an uploaded file); the /chains pages."""
    from multinotes.chains import api as chains_api
    from multinotes.chains import pages as chains_pages
    from multinotes.chains.runner import CHAIN_RUNS, RunningChains, chain_runs_ctx

    _add(app, chains_api, chains_pages)
    app[CHAIN_RUNS] = RunningChains()
    app.cleanup_ctx.append(chain_runs_ctx)


FEATURES = (
    setup_platform,
    setup_identity,
    setup_workspace,
    setup_wallet,
    setup_billing,
    setup_notes,
    setup_connections,
    setup_files,
    setup_sharing,
    setup_privacy,
    setup_search,
    setup_live,
    setup_collab,
    setup_prompts,
    setup_arena,
    setup_chains,
    setup_assist,
    setup_support,
    setup_abuse,
    setup_analytics,
    setup_announcements,
    setup_organisations,
    setup_schedules,
    setup_batches,
    setup_flags,
)


def setup(app: web.Application) -> None:
    """Every feature's routes (plugins' routes and static files are added by the app)."""
    for setup_feature in FEATURES:
        setup_feature(app)
