"""webhook_endpoints, webhook_deliveries, webhook_attempts (the webhooks plugin): history only

Revision ID: 0021_webhooks
Revises: 0001_core
Create Date: 2026-12-06 05:55:00.000000

This revision created the tables of the outgoing-webhooks plugin while plugins could not ship
migrations. They now belong to the plugin's own branch (``plugins/integrations/webhooks/
migrations``, revision ``webhooks_0001``), which creates each one only if it is absent: a
database that ran this revision keeps its tables and rows, a new one gets them from the plugin
(and not at all when the plugin is not installed). The revision stays, doing nothing, because
databases record it as applied.
"""

from __future__ import annotations

revision = "0021_webhooks"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
