"""Install throwaway plugin distributions the way pip does: a module plus a ``.dist-info`` folder
with ``entry_points.txt``, in a folder on ``sys.path``. ``importlib.metadata`` finds them exactly
as it finds a real ``pip install``."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def write_dist(
    root: Path,
    dist: str,
    modules: dict[str, str],
    entry_points: dict[str, str],
    version: str = "1.0.0",
) -> None:
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = ["[multinotes]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (info / "RECORD").write_text("")


@contextmanager
def on_path(root: Path) -> Iterator[None]:
    sys.path.insert(0, str(root))
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for name in [
            m
            for m, mod in sys.modules.items()
            if getattr(mod, "__file__", None) and str(root) in str(mod.__file__)
        ]:
            del sys.modules[name]


ONE_OF_EACH_KIND = {
    "mn_test_provider": """
        from multinotes import hookimpl
        from multinotes.providers import StaticProvider

        @hookimpl
        def register_providers(register):
            register(StaticProvider("testprov", "Test provider", []))
    """,
    "mn_test_exporter": """
        from multinotes import hookimpl
        from multinotes.exporters import Exporter

        class TextExporter(Exporter):
            exporter_id = "plaintext"
            name = "Plain text"
            media_type = "text/plain"
            extension = "txt"

            async def export(self, document):
                return document.markdown.encode()

        @hookimpl
        def register_exporters(register):
            register(TextExporter())
    """,
    "mn_test_integration": """
        from multinotes import hookimpl
        from multinotes.integrations import Integration

        class Recorder(Integration):
            integration_id = "recorder"
            name = "Recorder"
            seen = []

            async def handle(self, event, config):
                self.seen.append(event)

        @hookimpl
        def register_integrations(register):
            register(Recorder())
    """,
    "mn_test_billing": """
        from multinotes import hookimpl
        from multinotes.billing import BillingBackend, Checkout

        class FreeBackend(BillingBackend):
            backend_id = "free"
            name = "Free"

            async def create_checkout(self, *, user_id, plan_id, amount_cents, currency, config):
                return Checkout(url="/thanks", reference=f"free-{user_id}-{plan_id}")

        @hookimpl
        def register_billing(register):
            register(FreeBackend())
    """,
    "mn_test_routes": """
        from aiohttp import web
        from multinotes import hookimpl

        async def ping(request):
            return web.json_response({"pong": True})

        @hookimpl
        def register_routes(register):
            register("GET", "/api/plugins/routes/ping", ping, access="public")
    """,
}
