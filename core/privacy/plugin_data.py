"""What a plugin adds to a user's data export (``register_user_data``).

Every table with a user's rows is in their export; a plugin's tables are the plugin's to export,
since only it knows which columns are secrets and what its rows mean. It registers one
``UserDataExport`` per file: the core calls ``collect(app, user_id)`` while it builds the zip
and writes what comes back as ``plugins/<plugin>/<name>``. A plugin's data is exported whether
or not an admin has it switched on: the rows are the user's either way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: A file name in the plugin's folder of the zip.
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,60}\.json$")


@dataclass(frozen=True)
class UserDataExport:
    """One JSON file of a user's export, made by a plugin.

    :param name: the file name (``webhooks.json``), unique within the plugin.
    :param collect: ``async collect(app, user_id)`` → anything ``json.dumps`` takes (datetimes are
        written as ISO 8601). It reads through ``plugin_context(app, "<plugin>")``, leaves out
        secrets, and raises to fail the export (a user's export is complete or not made).
    :param tables: the plugin's tables whose rows of the user this file holds (the test suite
        checks that every table of a plugin with a ``user_id`` is covered).
    :param description: one line for the export's README.
    """

    name: str
    collect: Callable[[web.Application, str], Awaitable[Any]]
    tables: frozenset[str] = field(default_factory=frozenset)
    description: str = ""

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(
                f"user data file {self.name!r}: a lower-case name ending in .json "
                "(letters, digits, _ . -)"
            )
        object.__setattr__(self, "tables", frozenset(self.tables))
