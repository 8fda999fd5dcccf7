"""Imports every module that defines tables, so metadata (and Alembic) sees them all."""

from __future__ import annotations

import importlib

MODEL_MODULES = [
    "multinotes.identity.models",
    "multinotes.plugin_models",
    "multinotes.app_settings",
    "multinotes.catalog",
    "multinotes.organisations.models",
    "multinotes.wallet.models",
    "multinotes.chat.models",
    "multinotes.tools",
    "multinotes.identity.oauth_models",
    "multinotes.audit",
    "multinotes.privacy.models",
    "multinotes.files.models",
    "multinotes.notes.models",
    "multinotes.note_exports.models",
    "multinotes.sharing.models",
    "multinotes.search.models",
    "multinotes.billing.models",
    "multinotes.connections.models",
    "multinotes.billing.reload_models",
    "multinotes.billing.refund_models",
    "multinotes.support.models",
    "multinotes.abuse.models",
    "multinotes.announcements.models",
    "multinotes.flags.models",
    "multinotes.arena.models",
    "multinotes.prompts.models",
    "multinotes.chains.models",
    "multinotes.schedules.models",
    "multinotes.assist.models",
    "multinotes.batches.models",
    "multinotes.analytics.models",
]


def import_all_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)
