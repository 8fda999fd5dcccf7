"""Routes of the account and admin-console features built on the identity core: profile,
security events, admin user management and the audit log."""

from __future__ import annotations

from aiohttp import web


def setup_account_routes(app: web.Application) -> None:
    from multinotes.api import admin_users, audit_log, profile
    from multinotes.web import admin_user_pages, profile_pages

    for table in (
        profile.routes,
        admin_users.routes,
        audit_log.routes,
        profile_pages.routes,
        admin_user_pages.routes,
    ):
        app.router.add_routes(table)
