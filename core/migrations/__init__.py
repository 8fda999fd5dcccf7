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

Alembic (~10 MB with the revision modules it imports) is imported only to migrate: a web
process checks a plugin's revisions, and an embedded start sees that the database is at the
heads, from the revision files' headers read as source (``read_revisions``, issue #17).
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, MetaData, String, Table, delete, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

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
    from alembic.config import Config

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


#: Revision trees read, by their folders and the state of their files: reading one imports
#: every revision file (~0.05-0.1 s of CPU), and each app's start (a test suite starts
#: thousands) reads the same tree. Any file added, removed or changed is read again.
_SCRIPTS: dict[tuple[object, ...], ScriptDirectory] = {}
_SCRIPTS_KEPT = 8


def script_directory(plugins: Iterable[PluginMigrations] = ()) -> ScriptDirectory:
    plugins = list(plugins)
    folders = [CORE_VERSIONS, *(p.versions for p in plugins)]
    key = tuple((str(f), _files_state(f) if f.is_dir() else None) for f in folders)
    script = _SCRIPTS.get(key)
    if script is None:
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(alembic_config(plugins=plugins))
        while len(_SCRIPTS) >= _SCRIPTS_KEPT:
            del _SCRIPTS[next(iter(_SCRIPTS))]
        _SCRIPTS[key] = script
    return script


def is_known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

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


#: Plugin revision folders found sound, with the state of their files and the core's then: a
#: process that builds many apps (a test suite builds hundreds) reads each folder's revisions
#: once, not at every start. Any file added, removed or changed is checked again.
_SOUND: set[tuple[object, ...]] = set()


def _files_state(folder: Path) -> tuple[tuple[str, int, int], ...]:
    state = []
    for path in folder.iterdir():
        stat = path.stat()
        state.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(state))


def check_plugin_revisions(plugin: str, versions: Path) -> None:
    """Refuse a plugin's revision folder that would break the shared tree: ids that are not
    ``<plugin>_...`` (they could collide with the core's or another plugin's), that do not fit
    Alembic's version table, or a branch that is not rooted and labelled with the plugin's
    name. Raises ``ValueError`` saying which file and what to change."""
    state: tuple[object, ...] | None = None
    if versions.is_dir():
        state = (
            plugin,
            str(versions.resolve()),
            _files_state(versions),
            _files_state(CORE_VERSIONS),
        )
        if state in _SOUND:
            return
    _check_plugin_revisions(plugin, versions)
    if state is not None:
        _SOUND.add(state)


def _check_plugin_revisions(plugin: str, versions: Path) -> None:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", plugin):
        raise ValueError(
            f"a plugin with migrations needs a name made of letters, digits and _ (not {plugin!r})"
        )
    if not versions.is_dir():
        raise ValueError(f"the migrations folder {versions} does not exist")
    try:
        try:
            own = read_revisions(versions)
            _check_tree([*core_revisions(), *own])
        except Unreadable:  # headers that are not literals: Alembic imports the files
            own = _alembic_headers(plugin, versions)
    except ValueError as exc:  # a file that does not parse, a cycle, a duplicate id, ...
        raise ValueError(f"its migrations do not form a tree with the core's: {exc}") from exc
    if not own:
        raise ValueError(f"the migrations folder {versions} holds no revision")
    for rev in own:
        where = rev.path.name
        if not rev.revision.startswith(f"{plugin}_"):
            raise ValueError(f"{where}: revision id {rev.revision!r} must start with '{plugin}_'")
        if len(rev.revision) > MAX_REVISION_LENGTH:
            raise ValueError(
                f"{where}: revision id {rev.revision!r} is longer than {MAX_REVISION_LENGTH}"
            )
        if not rev.down and plugin not in rev.labels:
            raise ValueError(f"{where}: the first revision needs branch_labels = ({plugin!r},)")
        if any(not d.startswith(f"{plugin}_") for d in rev.down):
            raise ValueError(
                f"{where}: down_revision must be one of the plugin's own revisions; name core "
                "revisions in depends_on"
            )


# -- the revision tree without Alembic ----------------------------------------------------------


@dataclass(frozen=True)
class RevisionHeader:
    """What a revision file declares about its place in the tree."""

    revision: str
    down: tuple[str, ...]
    labels: tuple[str, ...]
    depends_on: tuple[str, ...]
    path: Path


#: The files Alembic reads as revisions in a version folder (its ``_only_source_rev_file``).
_REVISION_FILE = re.compile(r"^(?!\.#)(?!__init__).*\.py$")
_HEADER = ("revision", "down_revision", "branch_labels", "depends_on")
#: Headers read, by folder and the state of its files (a test suite starts thousands of apps).
_HEADERS: dict[tuple[object, ...], list[RevisionHeader]] = {}


def _names(value: object, where: str, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple | list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{where}: {name} must be a string, a tuple of strings or None")


class Unreadable(ValueError):
    """A revision file whose headers are not written as literals: only importing it tells."""


def _read_header(path: Path) -> RevisionHeader:
    where = path.name
    try:
        module = ast.parse(path.read_bytes(), str(path))
    except (SyntaxError, ValueError) as exc:
        raise ValueError(f"{where} does not parse: {exc}") from None
    values: dict[str, object] = {}
    for node in module.body:
        if isinstance(node, ast.Assign):
            pairs = [(target, node.value) for target in node.targets]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs = [(node.target, node.value)]
        else:
            continue
        for target, value in pairs:
            # ``revision, down_revision = "x", None`` names two headers at once.
            if (
                isinstance(target, ast.Tuple)
                and isinstance(value, ast.Tuple)
                and len(target.elts) == len(value.elts)
            ):
                named = list(zip(target.elts, value.elts, strict=True))
            else:
                named = [(target, value)]
            for name, literal in named:
                headers = {n.id for n in ast.walk(name) if isinstance(n, ast.Name)} & set(_HEADER)
                if not headers:
                    continue
                if not isinstance(name, ast.Name):
                    raise Unreadable(f"{where}: {', '.join(sorted(headers))} not a literal")
                try:
                    values[name.id] = ast.literal_eval(literal)
                except ValueError:
                    raise Unreadable(f"{where}: {name.id} is not a literal") from None
    revision = values.get("revision")
    if not isinstance(revision, str) or not revision:
        raise Unreadable(f"{where}: no revision id as a literal")
    return RevisionHeader(
        revision,
        _names(values.get("down_revision"), where, "down_revision"),
        _names(values.get("branch_labels"), where, "branch_labels"),
        _names(values.get("depends_on"), where, "depends_on"),
        path,
    )


def _alembic_headers(plugin: str, versions: Path) -> list[RevisionHeader]:
    """The headers of a plugin's revisions as Alembic reads them, importing the files (for
    headers written as expressions), once Alembic found that they form a tree with the
    core's."""
    from alembic.script import ScriptDirectory
    from alembic.util import to_tuple

    script = ScriptDirectory.from_config(
        alembic_config(plugins=[PluginMigrations(plugin, versions)])
    )
    try:
        revisions = list(script.walk_revisions())
    except KeyError as exc:  # how Alembic reports a depends_on naming no revision
        raise ValueError(f"no revision {exc}") from exc
    except Exception as exc:  # a file that does not import, a cycle, a duplicate id, ...
        raise ValueError(str(exc)) from exc
    return [
        RevisionHeader(
            rev.revision,
            to_tuple(rev.down_revision, default=()),
            tuple(rev.branch_labels),
            to_tuple(rev.dependencies, default=()),
            Path(rev.path),
        )
        for rev in revisions
        if Path(rev.path).parent.resolve() == versions.resolve()
    ]


def read_revisions(folder: Path) -> list[RevisionHeader]:
    """The headers (``revision``, ``down_revision``, ``branch_labels``, ``depends_on``) of the
    revision files in ``folder``, read from their source without importing them: what a process
    that does not migrate needs to know of the tree. Raises ``ValueError`` naming the file
    (``Unreadable`` for a header written as an expression: then only Alembic can read it)."""
    key = (str(folder), _files_state(folder))
    headers = _HEADERS.get(key)
    if headers is None:
        headers = [
            _read_header(path)
            for path in sorted(folder.iterdir())
            if _REVISION_FILE.match(path.name) and path.is_file()
        ]
        while len(_HEADERS) >= 4 * _SCRIPTS_KEPT:
            del _HEADERS[next(iter(_HEADERS))]
        _HEADERS[key] = headers
    return headers


def core_revisions() -> list[RevisionHeader]:
    return read_revisions(CORE_VERSIONS)


def _check_tree(revisions: Sequence[RevisionHeader]) -> dict[str, RevisionHeader]:
    """The revisions by id, once they are found to form one tree: ids unique, every
    ``down_revision`` and ``depends_on`` (an id or a branch label) naming one, no cycle."""
    by_id: dict[str, RevisionHeader] = {}
    for rev in revisions:
        if rev.revision in by_id:
            raise ValueError(
                f"revision {rev.revision!r} is declared twice ({by_id[rev.revision].path.name}, "
                f"{rev.path.name})"
            )
        by_id[rev.revision] = rev
    labels = {label: rev.revision for rev in revisions for label in rev.labels}
    for rev in revisions:
        for down in rev.down:
            if down not in by_id:
                raise ValueError(f"no revision {down!r} ({rev.path.name}'s down_revision)")
        for dependency in rev.depends_on:
            if dependency not in by_id and dependency not in labels:
                raise ValueError(f"no revision {dependency!r} ({rev.path.name}'s depends_on)")
    done: set[str] = set()
    for start in by_id:
        path: list[str] = []
        stack = [(start, iter(_parents(by_id[start], labels)))]
        on_path = {start}
        while stack:
            name, parents = stack[-1]
            parent = next(parents, None)
            if parent is None:
                stack.pop()
                on_path.discard(name)
                done.add(name)
                continue
            if parent in on_path:
                path = [n for n, _ in stack]
                raise ValueError(f"a cycle: {' -> '.join([*path, parent])}")
            if parent not in done:
                on_path.add(parent)
                stack.append((parent, iter(_parents(by_id[parent], labels))))
    return by_id


def _parents(rev: RevisionHeader, labels: dict[str, str]) -> list[str]:
    return [*rev.down, *(labels.get(d, d) for d in rev.depends_on)]


def at_heads(connection: Connection, plugins: Sequence[PluginMigrations]) -> bool:
    """Whether the database has every revision of the tree applied and no other (nothing for
    ``upgrade`` to apply, park or put back), from one read of the version table and the
    revision files' headers. Anything else (or a tree that does not read) answers False, and
    Alembic looks."""
    try:
        revisions = [*core_revisions(), *(h for p in plugins for h in read_revisions(p.versions))]
        by_id = _check_tree(revisions)
    except (ValueError, OSError):
        return False
    tables = inspect(connection)
    if not tables.has_table(VERSION.name):
        return False
    if tables.has_table(PARKED.name):
        parked = connection.execute(select(PARKED.c.version_num)).scalars()
        if any(head in by_id for head in parked):
            return False  # a parked plugin's head whose plugin is back: upgrade restores it
    current = set(connection.execute(select(VERSION.c.version_num)).scalars())
    if not current or not current <= by_id.keys():
        return False
    labels = {label: rev.revision for rev in revisions for label in rev.labels}
    applied: set[str] = set()
    todo = list(current)
    while todo:
        name = todo.pop()
        if name not in applied:
            applied.add(name)
            todo.extend(_parents(by_id[name], labels))
    return applied == by_id.keys()


def _park_and_restore(
    connection: Connection, plugins: Sequence[PluginMigrations], script: ScriptDirectory
) -> None:
    from alembic.runtime.migration import MigrationContext

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
    from alembic.runtime.environment import EnvironmentContext

    script = script_directory(plugins)
    _park_and_restore(connection, plugins, script)
    config = alembic_config(plugins=plugins)
    config.attributes["connection"] = connection

    # What ``alembic.command.upgrade`` does, on the tree already read.
    def steps(current: Any, context: Any) -> Any:
        return script._upgrade_revs(revision, current)

    with EnvironmentContext(config, script, fn=steps, destination_rev=revision):
        script.run_env()


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
        # The usual start: nothing to apply, and no need to import Alembic to see it.
        if revision == "heads" and await connection.run_sync(at_heads, plugins):
            return
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
    "RevisionHeader",
    "alembic_config",
    "at_heads",
    "check_plugin_revisions",
    "current_revision",
    "installed_plugin_migrations",
    "is_known",
    "is_parkable",
    "read_revisions",
    "script_directory",
    "target_metadata",
    "upgrade",
]
