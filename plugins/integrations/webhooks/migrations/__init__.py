"""The webhooks plugin's Alembic revisions (the ``webhooks`` branch; ``register_migrations``).
A package, so any packaging tool ships these files; Alembic skips this ``__init__``."""
