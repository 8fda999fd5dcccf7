"""docs/plugins/: every code block runs, and the hook reference covers every hook in
core/hookspecs.py with its current signature and docstring.

The tutorial's blocks are the files of a package (each starts with a comment naming its path)
and the commands run in its folder. Commands run as written, with this venv's programs, except
that ``pip install -e X`` installs ``X`` into a target folder with ``--no-deps
--no-build-isolation`` (the shared venv must not gain entry points, and there is no index), and
``pip wheel`` gets ``--no-build-isolation``. ``python tests/test_plugin_docs.py`` rewrites the
generated part of docs/plugins/hooks.md.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "plugins"
BIN = Path(sys.executable).parent
BLOCK = re.compile(r"```(\w+)\n(.*?)```", flags=re.S)
BEGIN, END = "<!-- hooks: generated from core/hookspecs.py -->", "<!-- end of generated hooks -->"


def blocks(page: str) -> list[tuple[str, str]]:
    return BLOCK.findall((DOCS / page).read_text())


# -- the hook reference ----------------------------------------------------------------------------


def hook_reference() -> str:
    """The hooks, in the order of hookspecs.py, each with its signature and docstring."""
    from multinotes import hookspecs

    source = Path(inspect.getfile(hookspecs)).read_text()
    names = re.findall(r"@hookspec[^\n]*\ndef (\w+)\(", source)
    sections = []
    for name in names:
        func = getattr(hookspecs, name)
        signature = str(inspect.signature(func)).replace("'", "")
        doc = inspect.cleandoc(func.__doc__ or "")
        sections.append(f"### `{name}{signature}`\n\n{doc}\n")
    return "\n".join(sections)


def _generated_part() -> str:
    text = (DOCS / "hooks.md").read_text()
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n")


def test_the_hook_reference_documents_every_hook_as_hookspecs_does():
    from multinotes import hookspecs

    page = (DOCS / "hooks.md").read_text()
    for name, _ in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(getattr(hookspecs, name), "multinotes_spec"):
            assert f"### `{name}(" in page, f"{name} is missing from docs/plugins/hooks.md"
    assert _generated_part() == hook_reference().strip("\n"), (
        "docs/plugins/hooks.md is stale: run `python tests/test_plugin_docs.py`"
    )


def test_the_hook_reference_would_notice_a_missing_hook():
    reference = hook_reference()
    assert reference.count("### `") == 19
    assert "### `register_billing(register: BillingRegistrar) -> None`" in reference


async def test_the_all_hooks_example_in_the_reference_loads_as_every_kind(tmp_path):
    from multinotes.testing import plugin_client
    from tests.test_plugin_api import _core_imports, _load_module

    [(language, source)] = blocks("hooks.md")
    assert language == "python"
    assert _core_imports(source, None) == []
    module = _load_module("multinotes_everything", source, tmp_path)
    try:
        async with plugin_client(tmp_path / "data", [("everything", module)]) as api:
            await api.register_admin()
            [plugin] = await api.get_json("/api/admin/plugins")
            assert plugin["status"] == "loaded", plugin
            assert sorted(plugin["kinds"]) == ["billing", "exporter", "integration", "provider"]
            assert await api.get_json("/api/plugins/everything/hello") == {"hello": "world"}
            assert module.STARTED == [True]
    finally:
        sys.modules.pop("multinotes_everything", None)


# -- the tutorial ----------------------------------------------------------------------------------


def _command(line: str, site: Path) -> list[str]:
    words = shlex.split(line)
    if words[:3] == ["pip", "install", "-e"]:
        words = ["pip", "install", "--no-deps", "--no-build-isolation", "--target", str(site)]
        words += shlex.split(line)[3:]
    elif words[:2] == ["pip", "wheel"]:
        words.insert(2, "--no-build-isolation")
    if words[0] == "pip":
        return [sys.executable, "-m", *words]
    return [str(BIN / words[0]), *words[1:]]


def test_the_tutorial_builds_a_package_whose_tests_pass_and_a_wheel(tmp_path):
    package = tmp_path / "multinotes-parrot"
    site = tmp_path / "site"
    commands: list[str] = []
    files = 0
    for language, text in blocks("tutorial.md"):
        if language == "sh":
            commands += [line for line in text.splitlines() if line.strip()]
            continue
        first = text.partition("\n")[0]
        path = package / first.removeprefix("# ").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        files += 1
    assert files == 5 and len(commands) == 4
    env = {**os.environ, "PYTHONPATH": str(site)}
    # the tests must run against what pip installed, not the source folder
    for line in commands:
        if line.startswith("pytest"):
            source = package / "multinotes_parrot"
            source.rename(tmp_path / "moved-away")
        result = subprocess.run(
            _command(line, site),
            cwd=package,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (line, result.stdout[-4000:], result.stderr[-4000:])
        if line.startswith("pytest"):
            (tmp_path / "moved-away").rename(source)
            assert "3 passed" in result.stdout, result.stdout[-2000:]
    [wheel] = (package / "dist").glob("multinotes_parrot-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read("multinotes_parrot-0.1.0.dist-info/entry_points.txt").decode()
        assert "multinotes_parrot/__init__.py" in archive.namelist()
    assert "[multinotes]\nparrot = multinotes_parrot" in entry_points
    assert (tmp_path / "multinotes-acme" / "tests" / "test_acme.py").exists()


def test_the_exporters_example_runs():
    """docs/plugins/exporters.md: the example exporter renders with its options."""
    [(language, source)] = blocks("exporters.md")
    assert language == "python"
    exec(compile(source, "exporters.md", "exec"), {"__name__": "exporters_md"})


async def test_the_webhooks_receiver_example_trusts_only_signed_deliveries():
    """docs/plugins/webhooks.md: the receiver verifies what the webhooks plugin signs."""
    from aiohttp.test_utils import TestClient, TestServer

    from multinotes.plugins.integrations.webhooks import signing

    [(language, source)] = blocks("webhooks.md")
    assert language == "python"
    namespace: dict[str, Any] = {"__name__": "webhooks_md"}
    exec(compile(source, "webhooks.md", "exec"), namespace)
    secret = signing.new_secret()
    body = '{"type":"note.created","timestamp":"2026-12-06T05:00:00+00:00","data":{}}'
    signed = signing.headers([secret], "msg_1", int(time.time()), body)
    forged = signing.headers([signing.new_secret()], "msg_2", int(time.time()), body)
    async with TestClient(TestServer(namespace["receiver"](secret))) as client:
        assert (await client.post("/hooks", data=body, headers=signed)).status == 204
        assert (await client.post("/hooks", data=body, headers=forged)).status == 401
        received = await (await client.get("/received")).json()
    assert [m["type"] for m in received] == ["note.created"]


def test_every_block_in_docs_plugins_is_run_by_a_test():
    """A new page, or a block of a new language, needs a test here first."""
    pages = {path.name: blocks(path.name) for path in sorted(DOCS.glob("*.md"))}
    assert set(pages) == {
        "README.md",
        "tutorial.md",
        "hooks.md",
        "exporters.md",
        "events.md",
        "webhooks.md",
        "ui.md",
        "tables.md",
    }
    assert [language for language, _ in pages["webhooks.md"]] == ["python"]
    assert pages["events.md"] == []  # tested against the catalogue: tests/test_domain_events.py
    assert pages["README.md"] == []
    # ui.md: a plugin module, two templates and a stylesheet (tests/test_plugin_ui.py)
    assert [language for language, _ in pages["ui.md"]] == ["python", "html", "html", "css"]
    assert [language for language, _ in pages["hooks.md"]] == ["python"]
    assert [language for language, _ in pages["exporters.md"]] == ["python"]
    # tables.md: a plugin's three files (tests/test_plugin_migrations.py)
    assert [language for language, _ in pages["tables.md"]] == ["python", "python", "python"]
    assert {language for language, _ in pages["tutorial.md"]} == {"toml", "python", "sh"}


if __name__ == "__main__":
    text = (DOCS / "hooks.md").read_text()
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    (DOCS / "hooks.md").write_text(f"{head}{BEGIN}\n\n{hook_reference()}\n{END}{tail}")
