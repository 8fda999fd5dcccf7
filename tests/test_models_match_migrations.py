"""The tables as the models describe them are the tables the migrations build.

Every feature keeps its tables in its own package (listed by ``multinotes.models_registry``),
and every installed plugin with tables declares them on its own metadata next to its own
revisions (``register_migrations``). Alembic's autogenerate compares all that metadata with a
database migrated to every head (the core's and the plugins'), so a model that moved, changed
type (a status that became an enum), lost its module from the registry, or a plugin table whose
model and revision disagree shows up here as a difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from multinotes.db import Base, create_engine
from multinotes.migrations import installed_plugin_migrations, target_metadata, upgrade
from multinotes.models_registry import MODEL_MODULES, import_all_models


def our_tables() -> set[str]:
    import_all_models()
    return set(Base.metadata.tables)


def all_metadata() -> list[Any]:
    """The core's metadata and each installed plugin's (those that declare tables)."""
    return target_metadata(installed_plugin_migrations())


def differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    metadata = all_metadata()
    ours = {name for md in metadata for name in md.tables}

    def table_of(diff: Any) -> str | None:
        subject = diff[1]
        table = getattr(subject, "table", None)
        return str(getattr(table, "name", None) or getattr(subject, "name", None))

    found = []
    for diff in compare_metadata(context, metadata):
        if isinstance(diff, list):  # column changes of one table come as a list
            found.append(diff)
        elif diff[0] in ("remove_table", "remove_index") and table_of(diff) not in ours:
            continue  # full-text shadow tables, Alembic's parked heads
        else:
            found.append(diff)
    return found


async def test_the_models_describe_exactly_the_migrated_tables(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}")
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(differences) == []
    finally:
        await engine.dispose()


def test_every_table_lives_in_its_features_models_module() -> None:
    """``multinotes.models`` only re-exports (old imports keep working); no table is defined
    there, and every module that defines one is in the registry Alembic's env imports."""
    our_tables()
    modules = {mapper.class_.__module__ for mapper in Base.registry.mappers}
    assert "multinotes.models" not in modules
    assert modules <= set(MODEL_MODULES), modules - set(MODEL_MODULES)


def test_the_installed_plugins_tables_are_compared_too() -> None:
    """The webhooks plugin ships its tables: they are in the comparison, on its metadata."""
    plugin_tables = {name for md in all_metadata()[1:] for name in md.tables}
    assert {"webhook_endpoints", "webhook_deliveries", "webhook_attempts"} <= plugin_tables
    assert not plugin_tables & our_tables()
