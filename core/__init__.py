"""MultinotesAI core: the small plugin host that everything else plugs into.

A plugin imports from ``multinotes.plugin`` only (``from multinotes.plugin import hookimpl``).
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

PROJECT = "multinotes"

hookimpl = pluggy.HookimplMarker(PROJECT)
"""Marker for plugin hook implementations: ``@hookimpl def register_providers(register): ...``."""

hookspec = pluggy.HookspecMarker(PROJECT)

try:
    __version__ = version(PROJECT)
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["PROJECT", "__version__", "hookimpl", "hookspec"]
