"""Alembic migrations (async), runnable on SQLite and MySQL/MariaDB alike.

One revision tree holds the core's revisions (``versions/``, ids ``NNNN_name``) and those of
every installed plugin that ships its own (``register_migrations``): each plugin's folder is one
more Alembic ``version_location``, its revisions are one branch labelled with the plugin's name
(ids ``<plugin>_...``), rooted at no revision and ``depends_on`` the core revision whose tables
it needs. Upgrading to ``heads`` applies the core and every plugin branch together.

A plugin that is uninstalled (or fails to import) after its revisions ran leaves a head in the
version table that the tree no longer knows, which would stop every later upgrade. Such heads
are *parked* in ``alembic_version_parked`` and put back when the plugin returns, so removing a
plugin is deleting its folder and entry point, and reinstalling it resumes where it stopped.
A head the tree does not know that belongs to the core, or to a plugin that is installed, is
a newer release's: that stays an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError, to_tuple
from sqlalchemy import Column, MetaData, String, Table, delete, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.script import Script

HERE = Path(__file__).parent
CORE_VERSIONS = HERE / "versions"
#: Core revision ids; a plugin's start with its name (a letter first), so they never look alike.
CORE_REVISION = re.compile(r"^\d{4}_")
#: Alembic's version table stores ids in a VARCHAR(32).
MAX_REVISION_LENGTH = 32

# Alembic's version table, and the heads of plugins that are not installed now (both live
# outside the models' metadata, which the schema test compares with the migrations).
_bookkeeping = MetaData()
VERSION = Table(
    "alembic_version",
    _bookkeeping,
    Column("version_num", String(MAX_REVISION_LENGTH), primary_key=True),
)
PARKED = Table(
    "alembic_version_parked",
    _bookkeeping,
    Column("version_num", String(MAX_REVISION_LENGTH), primary_key=True),
)


class MigrationError(Exception):
    """The schema cannot be brought to the requested revision (message says why and what to do)."""


@dataclass(frozen=True)
class PluginMigrations:
    """The revisions one plugin ships (``register_migrations``)."""

    plugin: str
    #: The folder of its revision files.
    versions: Path
    #: The metadata its tables are declared on (compared with the migrated schema in the tests).
    metadata: MetaData | None = None


def alembic_config(url: str | None = None, plugins: Iterable[PluginMigrations] = ()) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    locations = [CORE_VERSIONS, *(p.versions for p in plugins)]
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates %: a folder name may contain one.
    joined = os.pathsep.join(str(path) for path in locations).replace("%", "%%")
    config.set_main_option("version_locations", joined)
    config.attributes["plugin_migrations"] = list(plugins)
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def installed_plugin_migrations(blocked: Iterable[str] = ()) -> list[PluginMigrations]:
    """What the installed plugins (the entry points, minus ``blocked``) ship, for the commands
    that run without an app (``multinotes migrate``, the test database templates)."""
    from multinotes.plugin_host import PluginHost

    host = PluginHost(blocked=blocked)
    host.load_entrypoints()
    return host.migrations()


def script_directory(plugins: Iterable[PluginMigrations] = ()) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(plugins=plugins))


def is_known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def is_parkable(revision: str, plugins: Iterable[PluginMigrations]) -> bool:
    """An unknown head that belongs to a plugin not installed now (not the core's, and not one
    of an installed plugin's, which would be a newer release of it)."""
    if CORE_REVISION.match(revision):
        return False
    return not any(revision.startswith(f"{p.plugin}_") for p in plugins)


def check_plugin_revisions(plugin: str, versions: Path) -> None:
    """Refuse a plugin's revision folder that would break the shared tree: ids that are not
    ``<plugin>_...`` (they could collide with the core's or another plugin's), that do not fit
    Alembic's version table, or a branch that is not rooted and labelled with the plugin's
    name. Raises ``ValueError`` saying which file and what to change."""
    if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", plugin):
        raise ValueError(
            f"a plugin with migrations needs a name made of letters, digits and _ (not {plugin!r})"
        )
    if not versions.is_dir():
        raise ValueError(f"the migrations folder {versions} does not exist")
    script = ScriptDirectory.from_config(
        alembic_config(plugins=[PluginMigrations(plugin, versions)])
    )
    try:
        revisions: list[Script] = list(script.walk_revisions())
    except KeyError as exc:  # how Alembic reports a depends_on naming no revision
        raise ValueError(
            f"its migrations do not form a tree with the core's: no revision {exc}"
        ) from exc
    except Exception as exc:  # a file that does not import, a cycle, a duplicate id, ...
        raise ValueError(f"its migrations do not form a tree with the core's: {exc}") from exc
    own = [rev for rev in revisions if Path(rev.path).parent.resolve() == versions.resolve()]
    if not own:
        raise ValueError(f"the migrations folder {versions} holds no revision")
    for rev in own:
        where = Path(rev.path).name
        if not rev.revision.startswith(f"{plugin}_"):
            raise ValueError(f"{where}: revision id {rev.revision!r} must start with '{plugin}_'")
        if len(rev.revision) > MAX_REVISION_LENGTH:
            raise ValueError(
                f"{where}: revision id {rev.revision!r} is longer than {MAX_REVISION_LENGTH}"
            )
        down = to_tuple(rev.down_revision, default=())
        if not down and plugin not in rev.branch_labels:
            raise ValueError(f"{where}: the first revision needs branch_labels = ({plugin!r},)")
        if any(not d.startswith(f"{plugin}_") for d in down):
            raise ValueError(
                f"{where}: down_revision must be one of the plugin's own revisions; name core "
                "revisions in depends_on"
            )


def _park_and_restore(connection: Connection, plugins: Sequence[PluginMigrations]) -> None:
    from alembic.runtime.migration import MigrationContext

    script = script_directory(plugins)
    heads = set(MigrationContext.configure(connection).get_current_heads())
    gone = {head for head in heads if not is_known(script, head)}
    parkable = {head for head in gone if is_parkable(head, plugins)}
    if gone - parkable:
        names = ", ".join(sorted(gone - parkable))
        raise MigrationError(
            f"the database is at revision {names}, which this version does not know (a newer "
            "release migrated it): install that release again, or restore a backup taken "
            "before the upgrade"
        )
    if not parkable and not inspect(connection).has_table(PARKED.name):
        return  # the usual case: nothing to park, nothing parked
    PARKED.create(connection, checkfirst=True)
    for head in sorted(parkable):
        connection.execute(insert(PARKED).values(version_num=head))
        connection.execute(delete(VERSION).where(VERSION.c.version_num == head))
    parked = connection.execute(select(PARKED.c.version_num)).scalars().all()
    for head in (h for h in parked if is_known(script, h)):  # its plugin is back
        VERSION.create(connection, checkfirst=True)
        connection.execute(insert(VERSION).values(version_num=head))
        connection.execute(delete(PARKED).where(PARKED.c.version_num == head))


def _upgrade(connection: Connection, revision: str, plugins: Sequence[PluginMigrations]) -> None:
    _park_and_restore(connection, plugins)
    config = alembic_config(plugins=plugins)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade(
    engine: AsyncEngine,
    revision: str = "heads",
    plugins: Sequence[PluginMigrations] | None = None,
) -> None:
    """Bring the schema to ``revision`` over the app's own engine (no second connection).

    ``plugins``: whose revisions join the core's (the app passes its loaded plugins'); None
    means every installed plugin's."""
    if plugins is None:
        plugins = installed_plugin_migrations()
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision, plugins)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(connection).get_current_heads()
    return ", ".join(sorted(heads)) or None


async def current_revision(engine: AsyncEngine) -> str | None:
    """The applied revision(s): feature areas and plugins branch from the core revision, so
    there may be several heads, all applied."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def target_metadata(plugins: Iterable[PluginMigrations]) -> list[MetaData]:
    """The core's tables and the plugins' (what autogenerate compares with a database)."""
    from multinotes.db import Base
    from multinotes.models_registry import import_all_models

    import_all_models()
    return [Base.metadata, *(p.metadata for p in plugins if p.metadata is not None)]


__all__ = [
    "PARKED",
    "MigrationError",
    "PluginMigrations",
    "alembic_config",
    "check_plugin_revisions",
    "current_revision",
    "installed_plugin_migrations",
    "is_known",
    "is_parkable",
    "script_directory",
    "target_metadata",
    "upgrade",
]
