"""RSS of one fresh process at three points: after ``import multinotes.app``, after
``create_app()`` with every built-in plugin, and after startup (the app's cleanup contexts ran:
plugin state applied, enabled providers warmed). ``--providers-off`` first stores the four
provider plugins (openai, openai_compatible, gemini, together) as switched off, through a
CLI-role app, which warms nothing.

The database is migrated first by another process (as ``multinotes migrate`` does before a
production web process starts, or an earlier start of the embedded app); ``--fresh`` lets the
measured process migrate a new database itself (the figures of the rounds before the twelfth).

Run: ``python bench/rss_startup.py [--providers-off] [--fresh]`` (embedded mode, a throwaway
data folder). RSS does not depend on how busy the machine is; run it twice, the figures repeat
within 0.5 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile

PROVIDERS = ("openai", "openai_compatible", "gemini", "together")
SDKS = ("openai", "google.genai", "together")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers-off", action="store_true")
    parser.add_argument("--fresh", action="store_true", help="migrate a new database here")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("MULTINOTES_DATA_DIR", tempfile.mkdtemp(prefix="rss-startup-"))
    if not args.fresh and not args.prepare:
        prepare = [sys.executable, __file__, "--prepare"]
        subprocess.run(prepare + ["--providers-off"] * args.providers_off, check=True)
    report: dict[str, object] = {}
    from aiohttp import web

    from multinotes.app import create_app

    report["import_mb"] = rss_mb()

    async def run() -> None:
        if args.prepare:  # a CLI-role app migrates the database (embedded) and warms nothing
            cli = web.AppRunner(create_app(role="cli"))
            await cli.setup()
            await cli.cleanup()
        if args.providers_off and (args.prepare or args.fresh):
            await switch_off(create_app)
        if args.prepare:
            return
        app = create_app()
        report["create_app_mb"] = rss_mb()
        runner = web.AppRunner(app)
        await runner.setup()
        report["started_mb"] = rss_mb()
        report["provider_sdks_loaded"] = [m for m in SDKS if m in sys.modules]
        await runner.cleanup()

    asyncio.run(run())
    if not args.prepare:
        print(json.dumps(report))


async def switch_off(create_app: object) -> None:
    """Store the provider plugins as switched off, through a CLI-role app (which warms
    nothing)."""
    from aiohttp import web

    from multinotes.keys import DB
    from multinotes.plugin_models import PluginState

    cli = web.AppRunner(create_app(role="cli"))  # type: ignore[operator]
    await cli.setup()
    async with cli.app[DB].transaction() as session:
        for name in PROVIDERS:
            session.add(PluginState(name=name, enabled=False))
    await cli.cleanup()


if __name__ == "__main__":
    main()
