"""What a plugin declares its own tables with (exported by ``multinotes.plugin``).

A plugin's tables live on its own ``MetaData`` rather than the core's ``Base``: they exist only
while the plugin is installed, its revisions create them (``register_migrations``), and the core's
metadata stays the core's schema. The metadata shares the core's naming convention, so
constraint names come out alike on SQLite and MySQL and match what ``op.f(...)`` writes in the
plugin's migrations. A foreign key to a core table (a row owned by a user) points at the core's
column object, which SQLAlchemy resolves across metadata.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, MetaData

from multinotes.db import NAMING_CONVENTION

#: The core tables a plugin's rows may reference (their ids are stable public API).
REFERENCEABLE = {"users", "folders", "documents", "conversations", "messages"}


def plugin_metadata() -> MetaData:
    """A new ``MetaData`` for one plugin's tables, named like the core's:
    ``class Base(DeclarativeBase): metadata = plugin_metadata()``."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def core_foreign_key(column: str, *, ondelete: str | None = None) -> ForeignKey:
    """A foreign key to a core table's column, e.g. ``core_foreign_key("users.id",
    ondelete="CASCADE")`` (deleting the account deletes the plugin's rows).

    :raises ValueError: for a table outside ``REFERENCEABLE`` or a column it does not have.
    """
    from multinotes.db import Base
    from multinotes.models_registry import import_all_models

    table_name, _, column_name = column.partition(".")
    if table_name not in REFERENCEABLE:
        raise ValueError(
            f"{column!r}: a plugin's table may reference {', '.join(sorted(REFERENCEABLE))}"
        )
    import_all_models()
    table = Base.metadata.tables[table_name]
    if column_name not in table.c:
        raise ValueError(f"{column!r}: the table {table_name} has no column {column_name!r}")
    return ForeignKey(table.c[column_name], ondelete=ondelete)
