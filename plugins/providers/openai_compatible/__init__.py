"""OpenAI-compatible servers: any number of named connections (Ollama, vLLM, LM Studio,
OpenRouter, ...), each offering its configured models or, when none are listed, the models the
server itself lists. Model ids are ``<connection>/<model>``.

Set up in the Plugins console, or from the environment, e.g.
``MULTINOTES_PLUGINS__OPENAI_COMPATIBLE__CONNECTIONS='[{"name": "ollama",
"base_url": "http://127.0.0.1:11434/v1"}]'``.
"""

from __future__ import annotations

from multinotes.plugin import ProviderRegistrar, SettingsRegistrar, hookimpl

from .provider import CompatibleModel, CompatibleProvider
from .settings import CompatibleSettings, Connection

__version__ = "1.0.0"
__all__ = ["CompatibleModel", "CompatibleProvider", "CompatibleSettings", "Connection"]


@hookimpl
def register_providers(register: ProviderRegistrar) -> None:
    register(CompatibleProvider())


@hookimpl
def register_settings(register: SettingsRegistrar) -> None:
    register(CompatibleSettings)
