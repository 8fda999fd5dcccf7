"""The core's tables used to live here; each feature keeps its own now (identity's in
``multinotes.identity.models``, the plugin platform's in ``multinotes.plugin_models``, the rest
in their packages, all listed by ``multinotes.models_registry`` for Alembic). This module only
re-exports the old names, so existing imports keep working; new code imports the feature's
module.
"""

from __future__ import annotations

from multinotes.identity.models import (
    RATE_LIMIT_TIERS,
    ROLES,
    ApiKey,
    AuthSession,
    User,
    UserToken,
)
from multinotes.plugin_models import PluginSetting, PluginState, Secret

__all__ = [
    "RATE_LIMIT_TIERS",
    "ROLES",
    "ApiKey",
    "AuthSession",
    "PluginSetting",
    "PluginState",
    "Secret",
    "User",
    "UserToken",
]
