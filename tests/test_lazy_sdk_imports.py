"""Idle memory (issue #17): an exporter's, billing backend's or chat app's SDK is imported the
first time the plugin does its work, not when the plugin loads. A web process that never
exports a PDF or a Word file, sends a receipt, takes a payment or answers Slack does not carry
fpdf2, python-docx, stripe, razorpay or slack-sdk (~40 MB of a web process's RSS, measured on top
of what the app imports anyway; bench/README.md). notion-client stays imported at load: on top of
the httpx the app already holds it adds 0.3 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

#: The SDKs of plugins whose work is occasional: loaded on first use.
OCCASIONAL = ["fpdf", "docx", "stripe", "razorpay", "slack_sdk", "pypdf"]


def modules_after(code: str, tmp_path: Path, *, full: bool = False) -> set[str]:
    """The top-level modules (every module with ``full``) a fresh interpreter holds after
    ``code`` ran."""
    names = "sys.modules" if full else '{m.split(".")[0] for m in sys.modules}'
    script = textwrap.dedent(
        """
        import json, sys
        {code}
        print(json.dumps(sorted({names})))
        """
    ).format(code=textwrap.indent(textwrap.dedent(code), "").strip(), names=names)
    return set(run(script, tmp_path))


def run(script: str, tmp_path: Path) -> Any:
    """Run ``script`` in a fresh interpreter; what its last line printed, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"MULTINOTES_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_web_process_with_every_builtin_plugin_loaded_imports_no_occasional_sdk(tmp_path):
    loaded = modules_after(
        """
        from multinotes.app import create_app
        app = create_app()
        """,
        tmp_path,
    )
    assert "multinotes" in loaded
    assert [sdk for sdk in OCCASIONAL if sdk in loaded] == []
    # numpy (+11 MB) comes with the first semantic search or embedding.
    assert "numpy" not in loaded


#: What only some requests use, imported by the code that uses it (issue #17, tenth round):
#: Sentry's SDK with urllib3 when a DSN is set (~4 MB), Pillow with the first avatar (~2 MB),
#: tiktoken with the first token count (~1 MB).
ON_FIRST_USE = ["sentry_sdk", "urllib3", "PIL", "tiktoken"]


def test_a_web_process_without_a_sentry_dsn_imports_no_sentry_pillow_or_tiktoken(tmp_path):
    loaded = modules_after(
        """
        from multinotes.app import create_app
        app = create_app()
        """,
        tmp_path,
    )
    assert "multinotes" in loaded
    assert [name for name in ON_FIRST_USE if name in loaded] == []


def test_pillow_and_tiktoken_arrive_with_the_first_avatar_and_token_count(tmp_path):
    loaded = modules_after(
        """
        from multinotes.identity.profile import reencode_avatar
        from multinotes.tokens import count_tokens

        png = bytes.fromhex(  # one red pixel
            "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
            "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082"
        )
        assert reencode_avatar(png)[1:4] == b"PNG"
        assert count_tokens("hello world") == 2
        """,
        tmp_path,
    )
    assert "PIL" in loaded and "tiktoken" in loaded


def test_the_sdk_arrives_when_the_plugin_first_works(tmp_path):
    loaded = modules_after(
        """
        import asyncio
        from multinotes.plugin import ExportDocument
        from multinotes.plugins.exports.docx import DocxExporter
        from multinotes.plugins.exports.pdf import PdfExporter, PdfOptions

        note = ExportDocument(title="Plan", markdown="# Plan\\n\\nShip **it**.")
        pdf = asyncio.run(PdfExporter().render(note, PdfOptions()))
        word = asyncio.run(DocxExporter().render(note, DocxExporter.Options()))
        assert pdf.content[:4] == b"%PDF" and word.content[:2] == b"PK"
        """,
        tmp_path,
    )
    assert "fpdf" in loaded and "docx" in loaded


# -- provider SDKs -------------------------------------------------------------------------------
# openai (~14 MB), google-genai (~15 MB) and together (~6 MB) load in a web or worker process only
# when their provider is switched on: at startup for the enabled ones (warmed in a thread, so no
# answer pays for the import), and when an admin switches one on, here or in another process.

PROVIDER_SDKS = {"openai": "openai", "gemini": "google.genai", "together": "together"}
PROVIDER_PLUGINS = ["openai", "openai_compatible", "gemini", "together"]


def sdks_in(loaded: set[str]) -> list[str]:
    return sorted(sdk for sdk in PROVIDER_SDKS.values() if sdk in loaded)


def test_create_app_imports_no_provider_sdk(tmp_path):
    loaded = modules_after(
        """
        from multinotes.app import create_app
        app = create_app()
        """,
        tmp_path,
        full=True,
    )
    assert "multinotes.plugins.providers.gemini" in loaded
    assert sdks_in(loaded) == []


SWITCHED_OFF_THEN_ON = """
    import asyncio, json, sys
    from aiohttp import web
    from multinotes import plugin_control
    from multinotes.app import create_app
    from multinotes.keys import DB, PLUGINS
    from multinotes.plugin_models import PluginState

    def sdks():
        return sorted(m for m in ("openai", "google.genai", "together") if m in sys.modules)

    async def started(role):
        runner = web.AppRunner(create_app(role=role))
        await runner.setup()
        return runner

    async def main():
        # Switched off, as another process would store it (a CLI process warms nothing).
        cli = await started("cli")
        async with cli.app[DB].transaction() as session:
            for name in {plugins}:
                session.add(PluginState(name=name, enabled=False))
        await cli.cleanup()
        assert sdks() == [], sdks()

        runner = await started("web")
        app = runner.app
        seen = {{"started": sdks()}}
        await plugin_control.set_enabled(app, "gemini", True, None)  # an admin, here
        seen["gemini on"] = sdks()
        async with app[DB].transaction() as session:  # another process switched Together on
            (await session.get(PluginState, "together")).enabled = True
        await plugin_control.reload_state(app)  # what its bus message (or the poll) runs
        seen["together on"] = sdks()
        seen["enabled"] = sorted(app[PLUGINS].registries.providers)
        await runner.cleanup()
        print(json.dumps(seen))

    asyncio.run(main())
"""


def test_a_web_process_loads_a_provider_sdk_when_the_provider_is_switched_on(tmp_path):
    seen = run(SWITCHED_OFF_THEN_ON.format(plugins=PROVIDER_PLUGINS), tmp_path)
    assert seen["started"] == []
    assert seen["gemini on"] == ["google.genai"]
    assert seen["together on"] == ["google.genai", "together"]
    assert "openai" not in seen["enabled"] and "gemini" in seen["enabled"]


def test_enabled_providers_are_warmed_at_startup(tmp_path):
    seen = run(
        """
        import asyncio, json, sys
        from aiohttp import web
        from multinotes.app import create_app

        async def main():
            runner = web.AppRunner(create_app())
            await runner.setup()
            print(json.dumps(sorted(m for m in ("openai", "google.genai", "together")
                                    if m in sys.modules)))
            await runner.cleanup()

        asyncio.run(main())
        """,
        tmp_path,
    )
    # The OpenAI plugin reads its chat stream itself: it has nothing to warm (below).
    assert seen == ["google.genai", "together"]


def test_openai_chat_answers_and_the_key_check_do_not_import_the_sdk(tmp_path):
    """The OpenAI plugin streams chat and checks its key over its own aiohttp reader (the path
    of openai_compatible, held to the SDK's errors by the conformance suite): a web process
    that answers GPT chats does not carry the SDK (~14 MB). An image, speech or transcription
    call still goes through it and imports it then."""
    seen = run(
        """
        import asyncio, json, sys
        from pydantic import SecretStr
        from multinotes.plugin import outgoing
        from multinotes.plugins.providers.openai import OpenAIProvider, OpenAISettings
        from multinotes.testing import LOOPBACK_ALLOW, collect, make_request, serve_fake
        from multinotes.testing_openai import FakeOpenAIWire

        async def main():
            outgoing.install(outgoing.OutgoingPolicy.parse(LOOPBACK_ALLOW))
            fake = FakeOpenAIWire(api_key="sk-test")
            provider = OpenAIProvider()
            provider.warm()
            async with serve_fake(fake.app()) as url:
                config = OpenAISettings(api_key=SecretStr("sk-test"), base_url=f"{url}/v1")
                checked = await provider.check(config, key="sk-test")
                [chat] = [m for m in await provider.list_models(config)
                          if m.id == "openai/gpt-4o-mini"]
                request = make_request(chat, config, "Say hello")
                text = "".join(await collect(chat, request))
            print(json.dumps({"checked": checked, "text": text == fake.reply,
                              "sdk": "openai" in sys.modules}))

        asyncio.run(main())
        """,
        tmp_path,
    )
    assert seen == {"checked": "Connected: 2 models", "text": True, "sdk": False}


def test_the_first_openai_media_call_imports_the_sdk_off_the_event_loop(tmp_path):
    """The SDK's first import takes ~0.3 s, seconds on a busy machine: on the event loop it
    would stall every request of the process (two media browser tests timed out on it)."""
    imported_on = run(
        """
        import asyncio, json, sys, threading
        from multinotes import openai_wire

        seen = []

        class Spy:
            def find_spec(self, name, path=None, target=None):
                if name == "openai":
                    seen.append(threading.current_thread().name)
                return None

        sys.meta_path.insert(0, Spy())
        assert "openai" not in sys.modules

        async def main():
            await openai_wire.sdk_ready()
            await openai_wire.sdk_ready()  # once imported, nothing more

        asyncio.run(main())
        assert "openai" in sys.modules
        print(json.dumps(seen))
        """,
        tmp_path,
    )
    assert len(imported_on) == 1 and imported_on != ["MainThread"], imported_on


def test_pycrdt_arrives_with_the_first_note_edited_together(tmp_path):
    """Collaborative editing's CRDT (pycrdt, ~2.5 MB) is imported by the first room, not by a
    started web process whose notes nobody edits together."""
    seen = run(
        """
        import asyncio, json, sys
        from aiohttp import web
        from multinotes.app import create_app
        from multinotes.collab import protocol

        async def main():
            runner = web.AppRunner(create_app())
            await runner.setup()
            started = "pycrdt" in sys.modules
            frame = protocol.parse(protocol.sync_step1(b"\\x00"))
            await runner.cleanup()
            print(json.dumps({"started": started, "frame": frame.step == protocol.STEP1,
                              "first room": "pycrdt" in sys.modules}))

        asyncio.run(main())
        """,
        tmp_path,
    )
    assert seen == {"started": False, "frame": True, "first room": True}


# -- alembic -------------------------------------------------------------------------------------
# Alembic and the revision modules it imports (~10 MB) are for migrating: a web process checks
# its plugins' revisions from the files' source, and an embedded start that finds the database
# at the heads (one read of the version table) does not import it.


def test_create_app_checks_the_plugins_revisions_without_alembic(tmp_path):
    loaded = modules_after(
        """
        from multinotes.app import create_app
        from multinotes.keys import PLUGINS
        app = create_app()
        assert {m.plugin for m in app[PLUGINS].migrations()} >= {"discord", "slack", "webhooks"}
        """,
        tmp_path,
    )
    assert "multinotes" in loaded and "alembic" not in loaded


def test_an_embedded_start_on_a_migrated_database_does_not_import_alembic(tmp_path):
    start = """
        import asyncio, json, sys
        from aiohttp import web
        from multinotes.app import create_app

        async def main():
            runner = web.AppRunner(create_app())
            await runner.setup()
            loaded = "alembic" in sys.modules
            await runner.cleanup()
            print(json.dumps(loaded))

        asyncio.run(main())
    """
    assert run(start, tmp_path) is True  # a new database: migrated at start
    assert run(start, tmp_path) is False  # at the heads: nothing to apply
