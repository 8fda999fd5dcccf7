"""Plugins ship their own tables: Alembic revisions in a folder of the plugin
(``register_migrations``), applied with the core's as one tree, on the plugin's own metadata.

The example of docs/plugins/tables.md is installed as a package and used through its routes;
a plugin whose revisions break the rules is failed at load and the app starts; an uninstalled
plugin's head is parked and resumed; the webhooks plugin took over its tables from the core's
``0021_webhooks`` without losing a row; ``multinotes migrate`` applies installed plugins'
revisions.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from multinotes.db import Base, create_engine
from multinotes.keys import DB, PLUGINS
from multinotes.migrations import (
    MigrationError,
    PluginMigrations,
    at_heads,
    check_plugin_revisions,
    current_revision,
    installed_plugin_migrations,
    upgrade,
)
from multinotes.plugin import MigrationsRegistrar, hookimpl
from multinotes.testing import plugin_client
from tests.support.waiting import eventually

PARKED_HEADS = text("SELECT version_num FROM alembic_version_parked")
ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "plugins" / "tables.md"


def page_files() -> dict[str, str]:
    """The page's code blocks, by the path each one's first line names."""
    files = {}
    for source in re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S):
        first = source.partition("\n")[0]
        assert first.startswith("# "), first
        files[first[2:].strip()] = source
    return files


@pytest.fixture
def pinboard(tmp_path: Path) -> Iterator[ModuleType]:
    """The page's plugin, written out as the package a third party would install."""
    site = tmp_path / "site"
    for name, source in page_files().items():
        path = site / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    (site / "multinotes_pinboard" / "migrations" / "__init__.py").write_text("")
    sys.path.insert(0, str(site))
    try:
        yield importlib.import_module("multinotes_pinboard")
    finally:
        sys.path.remove(str(site))
        for name in [m for m in sys.modules if m.startswith("multinotes_pinboard")]:
            del sys.modules[name]


def pinboard_migrations(module: ModuleType, folder: Path | None = None) -> PluginMigrations:
    tables = sys.modules["multinotes_pinboard.tables"]
    versions = folder or Path(module.__file__ or "").parent / "migrations"
    return PluginMigrations("pinboard", versions, tables.Base.metadata)


def heads(connection: Any) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


async def test_the_documented_plugin_gets_its_table_and_uses_it(tmp_path, pinboard):
    assert set(page_files()) == {
        "multinotes_pinboard/tables.py",
        "multinotes_pinboard/migrations/pinboard_0001_pins.py",
        "multinotes_pinboard/__init__.py",
    }
    async with plugin_client(tmp_path / "data", [("pinboard", pinboard)]) as api:
        record = api.app[PLUGINS].get("pinboard")
        assert record.status == "loaded", record.error
        revision = await current_revision(api.app[DB].engine)
        assert revision is not None and "pinboard_0001" in revision.split(", ")

        await api.register_and_login("ann@example.com")
        created = await api.post("/api/plugins/pinboard/pins", {"text": "Buy milk"})
        assert created.status == 201
        pin = await created.json()
        refused = await api.post("/api/plugins/pinboard/pins", {"text": ""})
        assert refused.status == 422
        assert set((await refused.json())["error"]["fields"]) == {"text"}
        assert await api.get_json("/api/plugins/pinboard/pins") == [pin]

        export = await (await api.post("/api/me/export")).json()

        async def exported() -> bool:
            export.update(await api.get_json(f"/api/me/exports/{export['id']}"))
            assert export["status"] != "failed", export
            return bool(export["status"] == "done")

        await eventually(exported, timeout=20)
        response = await api.get(export["download_url"])
        archive = zipfile.ZipFile(io.BytesIO(await response.read()))
        assert json.loads(archive.read("plugins/pinboard/pins.json")) == [pin]

        await api.post("/api/auth/logout")
        await api.register_and_login("bob@example.com")
        assert await api.get_json("/api/plugins/pinboard/pins") == []  # only one's own

        tables = sys.modules["multinotes_pinboard.tables"]

        def differences(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            found = compare_metadata(context, [Base.metadata, tables.Base.metadata])
            return [d for d in found if "pinboard" in repr(d)]

        async with api.app[DB].engine.connect() as connection:
            assert await connection.run_sync(differences) == []
            fks = await connection.run_sync(lambda c: inspect(c).get_foreign_keys("pinboard_pins"))
        assert [(fk["referred_table"], fk["options"].get("ondelete")) for fk in fks] == [
            ("users", "CASCADE")
        ]


def write_revision(folder: Path, revision: str, down: str | None, body: str, **extra: str) -> None:
    lines = [
        "import sqlalchemy as sa",
        "from alembic import op",
        f"revision = {revision!r}",
        f"down_revision = {down!r}",
        f"branch_labels = {extra.get('labels', '()')}",
        f"depends_on = {extra.get('depends', repr('0001_core'))}",
        "def upgrade() -> None:",
        f"    {body}",
        "def downgrade() -> None:",
        "    pass",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{revision}.py").write_text("\n".join(lines) + "\n")


CREATE = "op.create_table('tidy_things', sa.Column('id', sa.String(32), primary_key=True))"


@pytest.mark.parametrize(
    ("revision", "down", "labels", "message"),
    [
        ("0001_tidy", None, "('tidy',)", "must start with 'tidy_'"),
        ("tidy_0001", None, "()", "branch_labels = ('tidy',)"),
        ("tidy_" + "x" * 30, None, "('tidy',)", "longer than 32"),
        ("tidy_0001", "0001_core", "('tidy',)", "name core revisions in depends_on"),
    ],
)
def test_revisions_that_would_break_the_shared_tree_are_refused(
    tmp_path, revision, down, labels, message
):
    folder = tmp_path / "migrations"
    write_revision(folder, revision, down, CREATE, labels=labels)
    with pytest.raises(ValueError, match=re.escape(message)):
        check_plugin_revisions("tidy", folder)


def test_a_dependency_on_a_core_revision_that_does_not_exist_is_refused(tmp_path):
    folder = tmp_path / "migrations"
    write_revision(folder, "tidy_0001", None, CREATE, labels="('tidy',)", depends="'0999_x'")
    with pytest.raises(ValueError, match="do not form a tree"):
        check_plugin_revisions("tidy", folder)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"tidy_0001.py": "revision = 'tidy_0001'\ndef upgrade(:\n"}, "does not parse"),
        ({"tidy_0001.py": "down_revision = None\n"}, "revision id"),  # Alembic's words
        ({"tidy_0001.py": "revision = '0001_core'\n"}, "'0001_core' is declared twice"),
        (
            {
                "tidy_0001.py": "revision = 'tidy_0001'\ndown_revision = 'tidy_0002'\n",
                "tidy_0002.py": "revision = 'tidy_0002'\ndown_revision = 'tidy_0001'\n",
            },
            "a cycle",
        ),
        (
            {"tidy_0001.py": "revision = 'tidy_0001'\ndown_revision = 'tidy_0000'\n"},
            "no revision 'tidy_0000'",
        ),
    ],
)
def test_revision_files_are_read_without_importing_them_and_a_broken_tree_is_refused(
    tmp_path, files, message
):
    """A process that does not migrate (a production web process) checks a plugin's revisions
    from their headers read as source, without Alembic."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, source in files.items():
        (folder / name).write_text(source)
    with pytest.raises(ValueError, match="do not form a tree") as refused:
        check_plugin_revisions("tidy", folder)
    assert message in str(refused.value)


def test_headers_written_as_expressions_are_read_by_importing_the_file(tmp_path):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "tidy_0001.py").write_text(
        "PREFIX = 'tidy_'\n"
        "revision = PREFIX + '0001'\n"
        "down_revision, branch_labels, depends_on = None, ('tidy',), '0001_core'\n"
        "def upgrade() -> None: ...\n"
        "def downgrade() -> None: ...\n"
    )
    check_plugin_revisions("tidy", folder)  # found sound, by Alembic
    (folder / "tidy_0001.py").write_text(
        "revision = 'tidy' + '_0001'\ndown_revision = None\nbranch_labels = ()\n"
    )
    with pytest.raises(ValueError, match=re.escape("branch_labels = ('tidy',)")):
        check_plugin_revisions("tidy", folder)


def test_the_headers_read_as_source_are_the_tree_alembic_reads():
    from multinotes.migrations import core_revisions, script_directory

    script = script_directory()
    by_alembic = {
        rev.revision: (rev.down_revision, rev.branch_labels, rev.dependencies)
        for rev in script.walk_revisions()
    }
    by_source = {
        rev.revision: (rev.down, set(rev.labels), rev.depends_on) for rev in core_revisions()
    }
    assert by_source.keys() == by_alembic.keys()
    for name, (down, labels, depends) in by_alembic.items():
        assert by_source[name] == (
            tuple([down] if isinstance(down, str) else down or ()),
            set(labels),
            tuple([depends] if isinstance(depends, str) else depends or ()),
        ), name


class Tidy:
    """A plugin whose only hook registers a folder of revisions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def register_migrations(self, register: MigrationsRegistrar) -> None:
        register(self.folder)


async def test_a_plugin_with_broken_revisions_is_failed_and_the_app_starts(tmp_path):
    folder = tmp_path / "migrations"
    write_revision(folder, "0001_tidy", None, CREATE, labels="('tidy',)")
    async with plugin_client(tmp_path / "data", [("tidy", Tidy(folder))]) as api:
        record = api.app[PLUGINS].get("tidy")
        assert record.status == "failed"
        assert "its migrations" in (record.error or "") and "'tidy_'" in (record.error or "")
        await api.register_admin()
        listed = {p["name"]: p for p in await api.get_json("/api/admin/plugins")}
        assert listed["tidy"]["status"] == "failed"
        async with api.app[DB].engine.connect() as connection:
            assert not await connection.run_sync(lambda c: inspect(c).has_table("tidy_things"))


async def test_a_start_applies_what_is_missing_and_skips_alembic_only_at_the_heads(tmp_path):
    """An embedded start reads the version table and the revision files' headers: at the heads
    it has nothing to do (and does not import Alembic); a revision missing (a plugin added to
    the database) is applied as before."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    folder = tmp_path / "migrations"
    write_revision(folder, "tidy_0001", None, CREATE, labels="('tidy',)")
    tidy = PluginMigrations("tidy", folder)
    try:
        await upgrade(engine, plugins=[])
        async with engine.connect() as connection:
            assert await connection.run_sync(at_heads, [])
            assert not await connection.run_sync(at_heads, [tidy])
        await upgrade(engine, plugins=[tidy])
        async with engine.connect() as connection:
            assert await connection.run_sync(lambda c: inspect(c).has_table("tidy_things"))
            assert await connection.run_sync(at_heads, [tidy])
            # One core revision missing from the version table: not at the heads.
            await connection.execute(text("DELETE FROM alembic_version"))
            await connection.execute(text("INSERT INTO alembic_version VALUES ('0003_workspace')"))
            assert not await connection.run_sync(at_heads, [tidy])
            await connection.rollback()
            # An unknown head (a plugin gone) is Alembic's to park.
            await connection.execute(text("INSERT INTO alembic_version VALUES ('gone_0001')"))
            assert not await connection.run_sync(at_heads, [tidy])
    finally:
        await engine.dispose()


async def test_an_uninstalled_plugins_head_is_parked_and_its_return_resumes_it(tmp_path, pinboard):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        first = pinboard_migrations(pinboard)
        await upgrade(engine, plugins=[first])
        async with engine.connect() as connection:
            assert "pinboard_0001" in await connection.run_sync(heads)

        await upgrade(engine, plugins=[])  # the plugin is gone: no error, its table stays
        async with engine.connect() as connection:
            assert "pinboard_0001" not in await connection.run_sync(heads)
            parked = await connection.execute(
                text("SELECT version_num FROM alembic_version_parked")
            )
            assert parked.scalars().all() == ["pinboard_0001"]
            assert await connection.run_sync(lambda c: inspect(c).has_table("pinboard_pins"))

        # It comes back in a newer version with a second revision: only that one runs.
        folder = tmp_path / "pinboard_v2"
        shutil.copytree(first.versions, folder)
        write_revision(
            folder,
            "pinboard_0002",
            "pinboard_0001",
            "op.add_column('pinboard_pins', sa.Column('colour', sa.String(16)))",
            depends="None",
        )
        await upgrade(engine, plugins=[pinboard_migrations(pinboard, folder)])
        async with engine.connect() as connection:
            assert "pinboard_0002" in await connection.run_sync(heads)
            columns = await connection.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns("pinboard_pins")]
            )
            assert "colour" in columns
            parked = await connection.execute(
                text("SELECT version_num FROM alembic_version_parked")
            )
            assert parked.scalars().all() == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize("unknown", ["0099_from_the_future", "pinboard_0009"])
async def test_a_head_of_a_newer_release_is_refused_not_parked(tmp_path, pinboard, unknown):
    """A core head this version does not know, or an installed plugin's: a newer release
    migrated the database; carrying on would run revisions over a schema they do not expect."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    try:
        await upgrade(engine, plugins=[pinboard_migrations(pinboard)])
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": unknown}
            )
        with pytest.raises(MigrationError, match=f"revision {unknown}, which this version"):
            await upgrade(engine, plugins=[pinboard_migrations(pinboard)])
    finally:
        await engine.dispose()


async def test_a_database_whose_webhook_tables_came_from_the_core_keeps_them(tmp_path):
    """Before plugins had migrations, the core's 0021_webhooks created the webhooks plugin's
    tables. Such a database goes on with its rows; the plugin's first revision finds them."""
    from multinotes.plugins.integrations.webhooks.tables import Base as WebhookTables

    data = tmp_path / "data"
    async with plugin_client(data, []) as api:  # the core alone: no webhook tables yet
        user = await api.register_and_login("ann@example.com")
    engine = create_engine(f"sqlite+aiosqlite:///{data / 'multinotes.db'}")
    try:
        async with engine.begin() as connection:
            assert not await connection.run_sync(
                lambda c: inspect(c).has_table("webhook_endpoints")
            )
            # What the old 0021 built (the same definitions), with a row in it.
            await connection.run_sync(WebhookTables.metadata.create_all)
            await connection.execute(
                text(
                    "INSERT INTO webhook_endpoints (id, user_id, scope, url, description, events,"
                    " secret, enabled, created_at, updated_at) VALUES ('e1', :user, 'user',"
                    " 'https://example.com/hook', '', '[]', 'x', 1, '2026-01-01 00:00:00',"
                    " '2026-01-01 00:00:00')"
                ),
                {"user": user["id"]},
            )
        await upgrade(engine, plugins=installed_plugin_migrations())
        async with engine.connect() as connection:
            assert "webhooks_0001" in await connection.run_sync(heads)
            rows = await connection.execute(text("SELECT id, url FROM webhook_endpoints"))
            assert rows.all() == [("e1", "https://example.com/hook")]
    finally:
        await engine.dispose()


def test_migrate_applies_the_installed_plugins_revisions(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "multinotes.cli", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "MULTINOTES_LOG_LEVEL": "ERROR"},
    )
    assert result.returncode == 0, result.stderr
    assert "webhooks_0001" in result.stdout  # the webhooks plugin's branch, next to the core's
