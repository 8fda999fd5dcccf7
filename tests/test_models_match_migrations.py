"""The tables as the models describe them are the tables the migrations build.

Every feature keeps its tables in its own package (listed by ``multinotes.models_registry``);
Alembic's autogenerate compares that metadata with a database migrated to every head, so a
model that moved, changed type (a status that became an enum) or lost its module from the
registry shows up here as a difference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from multinotes.db import Base, create_engine
from multinotes.migrations import upgrade
from multinotes.models_registry import MODEL_MODULES, import_all_models


def our_tables() -> set[str]:
    import_all_models()
    return set(Base.metadata.tables)


def differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    ours = our_tables()

    def table_of(diff: Any) -> str | None:
        subject = diff[1]
        table = getattr(subject, "table", None)
        return str(getattr(table, "name", None) or getattr(subject, "name", None))

    found = []
    for diff in compare_metadata(context, Base.metadata):
        if isinstance(diff, list):  # column changes of one table come as a list
            found.append(diff)
        elif diff[0] in ("remove_table", "remove_index") and table_of(diff) not in ours:
            continue  # full-text shadow tables and plugins' own metadata live elsewhere
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
