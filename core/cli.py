"""The ``multinotes`` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import getpass
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from multinotes.errors import AppError, ConfigError, PluginError
from multinotes.settings import Settings


def load_settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    settings = Settings(**overrides)
    # Refused here, where every production process starts, rather than in create_app: test
    # suites build production-mode apps with the cheap cost.
    if settings.is_production and settings.password_hash_cost != "standard":
        raise ConfigError(
            "Refusing to start in production: MULTINOTES_PASSWORD_HASH_COST is "
            f"{settings.password_hash_cost!r}, which is for test suites only; unset it."
        )
    return settings


@contextlib.asynccontextmanager
async def started(settings: Settings, role: str) -> AsyncIterator[web.Application]:
    """An app with every resource started but no socket open (for commands and workers)."""
    from multinotes.app import create_app

    app = create_app(settings, role=role)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


def run(coro: Coroutine[Any, Any, int | None]) -> int:
    return asyncio.run(coro) or 0


# -- commands -----------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from multinotes.app import create_app

    settings = load_settings(args)
    # Embedded mode is someone at a terminal: the address and what goes wrong, not a JSON line
    # per request. --verbose (or MULTINOTES_LOG_LEVEL) brings the full log back.
    quiet = (
        not args.verbose
        and not settings.is_production
        and "log_level" not in settings.model_fields_set
    )
    if quiet:
        settings = settings.model_copy(update={"log_level": "WARNING"})
    app = create_app(settings)
    url = f"http://{settings.host}:{settings.port}/"
    hint = "Ctrl+C to stop; --verbose logs every request" if quiet else "Ctrl+C to stop"
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            print=lambda _msg: print(f"MultinotesAI is running at {url}  ({hint})", flush=True),
            access_log=None,
            # SIGTERM: stop listening at once, let open streams finish (an upgrade's drain).
            shutdown_timeout=settings.shutdown_timeout,
        )
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        reason = {
            errno.EADDRINUSE: "the port is already in use (is MultinotesAI running already?)",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
            errno.EADDRNOTAVAIL: "this machine has no such address",
        }[exc.errno]
        other = settings.port + 1 if settings.port < 65535 else 8080
        print(
            f"error: cannot listen on {settings.host}:{settings.port}: {reason}. "
            f"Choose another port with --port {other} or MULTINOTES_PORT={other}.",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from multinotes.db import create_engine
    from multinotes.migrations import (
        MigrationError,
        current_revision,
        installed_plugin_migrations,
        upgrade,
    )

    settings = load_settings(args)
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    # The core's revisions and every installed plugin's (those the operator blocked excepted).
    plugins = installed_plugin_migrations(settings.disable_plugins)

    async def main() -> int:
        engine = create_engine(settings.effective_database_url)
        try:
            try:
                await upgrade(engine, args.revision, plugins)
            except MigrationError as exc:
                print(f"Cannot migrate: {exc}", file=sys.stderr)
                return 1
            print(f"Database at revision {await current_revision(engine)}.")
        finally:
            await engine.dispose()
        return 0

    return run(main())


def cmd_worker(args: argparse.Namespace) -> int:
    from multinotes.keys import REDIS, TASKS
    from multinotes.tasks import run_worker

    settings = load_settings(args)
    if not settings.is_production:
        print(
            "Embedded mode runs background tasks inside `multinotes serve`; "
            "a worker is only needed in production mode.",
            file=sys.stderr,
        )
        return 2

    async def main() -> int:
        async with started(settings, "worker") as app:
            print(f"Worker consuming {len(app[TASKS].names())} task types.", flush=True)
            await run_worker(app, app[REDIS], args.concurrency)
        return 0

    return run(main())


def cmd_scheduler(args: argparse.Namespace) -> int:
    from multinotes.keys import REDIS
    from multinotes.tasks import run_scheduler

    settings = load_settings(args)
    if not settings.is_production:
        print("Embedded mode runs the scheduler inside `multinotes serve`.", file=sys.stderr)
        return 2

    async def main() -> int:
        async with started(settings, "scheduler") as app:
            print("Scheduler running.", flush=True)
            await run_scheduler(app, app[REDIS])
        return 0

    return run(main())


def _plugin_rows(app: web.Application) -> list[dict[str, Any]]:
    from multinotes.keys import PLUGINS
    from multinotes.plugin_admin import plugin_out

    return [plugin_out(r) for r in sorted(app[PLUGINS].records.values(), key=lambda r: r.name)]


def cmd_plugins(args: argparse.Namespace) -> int:
    from multinotes import plugin_control
    from multinotes.plugin_admin import plugin_detail

    settings = load_settings(args)

    async def main() -> int:
        async with started(settings, "cli") as app:
            if args.action in ("list", "info"):
                # Providers load their SDK on demand: try it, so a missing one shows as failed.
                await plugin_control.warm_providers(app, any_role=True)
            if args.action == "list":
                rows = _plugin_rows(app)
                if args.json:
                    print(json.dumps(rows, indent=2))
                    return 0
                for row in rows:
                    state = (
                        row["status"]
                        if row["status"] != "loaded"
                        else ("enabled" if row["enabled"] else "disabled")
                    )
                    kinds = ",".join(row["kinds"]) or "-"
                    print(f"{row['name']:<20} {state:<9} {kinds:<30} {row['version'] or '-'}")
                    if row["error"]:
                        print(f"    {row['error']}")
                return 0
            if args.action == "info":
                detail = await plugin_detail(app, args.name)
                print(json.dumps(detail.model_dump(), indent=2, default=str))
                return 0
            enabled = args.action == "enable"
            await plugin_control.set_enabled(app, args.name, enabled, None)
            print(f"Plugin {args.name} {'enabled' if enabled else 'disabled'}.")
            return 0

    return run(main())


def cmd_admin(args: argparse.Namespace) -> int:
    from multinotes.identity.service import create_admin
    from multinotes.keys import DB

    settings = load_settings(args)
    password = args.password or os.environ.get("MULTINOTES_ADMIN_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            print("Give --password or MULTINOTES_ADMIN_PASSWORD.", file=sys.stderr)
            return 2
        password = getpass.getpass("Password for the new admin: ")

    async def main() -> int:
        async with started(settings, "cli") as app:
            user = await create_admin(
                app[DB],
                email=args.email,
                password=password,
                name=args.name or args.email.split("@")[0],
            )
            print(f"{user.email} is an admin.")
        return 0

    return run(main())


def cmd_secrets(args: argparse.Namespace) -> int:
    from multinotes.keys import DB, SECRETS
    from multinotes.plugin_settings import rotate_all_secrets

    settings = load_settings(args)

    async def main() -> int:
        async with started(settings, "cli") as app:
            count = await rotate_all_secrets(app[DB], app[SECRETS])
            print(f"Re-encrypted {count} secret(s) under the newest key.")
        return 0

    return run(main())


def cmd_gen_secret(args: argparse.Namespace) -> int:
    print(secrets.token_urlsafe(48))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from multinotes.preflight import run_checks

    try:
        settings = load_settings(args)
    except ValidationError as exc:
        for error in exc.errors():
            name = "MULTINOTES_" + "__".join(str(part) for part in error["loc"]).upper()
            print(f"[FAIL] settings: {name} is invalid: {error['msg']}")
        print("Correct the settings above, then run `multinotes check` again.")
        return 1
    checks = asyncio.run(run_checks(settings))
    for check in checks:
        print(f"[{'PASS' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    failed = [c for c in checks if not c.ok]
    print("Ready for production." if not failed else f"{len(failed)} check(s) failed.")
    return 0 if not failed else 1


def cmd_plugin(args: argparse.Namespace) -> int:
    from multinotes.plugin_scaffold import placeholders, scaffold

    destination = args.directory or Path(placeholders(args.kind, args.name)["dist"])
    try:
        written = scaffold(args.kind, args.name, destination)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(destination / path)
    print(
        f"Created a {args.kind} plugin in {destination}: "
        f"cd {destination} && pip install -e '.[test]' && pytest"
    )
    return 0


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multinotes", description="MultinotesAI: one prompt, many models, notes you keep."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # Accepted before or after a sub-action: `plugins --data-dir X list` or `plugins list
    # --data-dir X`. SUPPRESS keeps an inner parser from resetting an outer value.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="Data folder (embedded database, secret key, uploads).",
    )

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help_text: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(func=func)
        return p

    serve = add("serve", cmd_serve, "Run the web server.")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--verbose",
        action="store_true",
        help="Log every request and background task to the console (embedded mode logs only "
        "warnings and errors unless MULTINOTES_LOG_LEVEL says otherwise).",
    )

    migrate = add("migrate", cmd_migrate, "Upgrade the database schema.")
    migrate.add_argument("--revision", default="heads")

    worker = add("worker", cmd_worker, "Run a background-task worker (production mode).")
    worker.add_argument("--concurrency", type=int, default=50)
    add("scheduler", cmd_scheduler, "Run the periodic-task scheduler (production mode).")

    plugins = add("plugins", cmd_plugins, "List, inspect, enable or disable plugins.")
    plugins_sub = plugins.add_subparsers(dest="action", required=True)
    listing = plugins_sub.add_parser("list", help="Every plugin with its state.", parents=[common])
    listing.add_argument("--json", action="store_true")
    for action in ("info", "enable", "disable"):
        p = plugins_sub.add_parser(
            action, help=f"{action.capitalize()} one plugin.", parents=[common]
        )
        p.add_argument("name")

    plugin = sub.add_parser(
        "plugin", help="Write a new plugin.", description="Write a new plugin package."
    )
    plugin.set_defaults(func=cmd_plugin)
    plugin_sub = plugin.add_subparsers(dest="action", required=True)
    new = plugin_sub.add_parser(
        "new",
        help="Scaffold a plugin package (pyproject, module, tests, fakes, README).",
        description="Scaffold a plugin package whose tests pass as written.",
    )
    new.add_argument("kind", choices=["provider", "exporter", "integration", "billing"])
    new.add_argument("name", help="Plugin name: lowercase letters, digits and _ (e.g. acme).")
    new.add_argument(
        "--directory", type=Path, default=None, help="Where to write it (default: multinotes-NAME)."
    )

    admin = add("admin", cmd_admin, "Administer accounts.")
    admin_sub = admin.add_subparsers(dest="action", required=True)
    create = admin_sub.add_parser(
        "create", help="Create an admin (or promote an account).", parents=[common]
    )
    create.add_argument("--email", required=True)
    create.add_argument("--name", default=None)
    create.add_argument("--password", default=None)

    secrets_cmd = add("secrets", cmd_secrets, "Manage encrypted secrets.")
    secrets_sub = secrets_cmd.add_subparsers(dest="action", required=True)
    secrets_sub.add_parser(
        "rotate", help="Re-encrypt every stored secret under the newest key.", parents=[common]
    )

    add("gen-secret", cmd_gen_secret, "Print a new random secret key.")
    add("check", cmd_check, "Check production readiness; exit code 0 means ready.")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, PluginError, AppError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
