"""The public plugin API, ``multinotes.plugin``: plugins import core only through it, and the
documented examples (README, docs/plugin-api.md, docs/example-plugin/) load and work."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from multinotes.testing import plugin_client
from tests.support.sse import by_model, parse_sse

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = "multinotes.plugin"
#: A plugin's tests may also use the public test tooling (and its fake OpenAI-wire server).
TESTING = ("multinotes.testing", "multinotes.testing_openai")


def _python_files() -> list[Path]:
    files = sorted((ROOT / "plugins").rglob("*.py"))
    files += sorted((ROOT / "docs" / "example-plugin").rglob("*.py"))
    return files


def _own_package(path: Path) -> str | None:
    """``multinotes.plugins.<kind>.<name>`` for a built-in plugin's file, else None."""
    parts = path.relative_to(ROOT).parts
    if parts[0] == "plugins" and len(parts) >= 4:
        return f"multinotes.plugins.{parts[1]}.{parts[2]}"
    return None


def _is_test(path: Path) -> bool:
    return path.name.startswith("test_") or "tests" in path.parts


def _core_imports(source: str, own: str | None, *, test: bool = False) -> list[str]:
    """Every ``multinotes`` module ``source`` imports that is neither the public module nor the
    plugin's own package ``own`` (nor, in a ``test`` file, ``multinotes.testing``)."""
    tree = ast.parse(source)
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "multinotes":
                # ``from multinotes import x`` imports the submodule or name ``x`` of core.
                names = [f"multinotes.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        for name in names:
            if name != "multinotes" and not name.startswith("multinotes."):
                continue
            allowed = name == PUBLIC or (test and name in TESTING)
            if allowed or (own and (name == own or name.startswith(own + "."))):
                continue
            found.append(name)
    return found


def test_plugins_import_core_only_through_the_public_module():
    files = _python_files()
    assert len(files) > 10  # the walk found the plugins
    offenders = {
        str(path.relative_to(ROOT)): names
        for path in files
        if (names := _core_imports(path.read_text(), _own_package(path), test=_is_test(path)))
    }
    assert offenders == {}


def test_the_boundary_check_catches_a_reach_into_core():
    source = (
        "from multinotes import hookimpl\n"
        "from multinotes.keys import PLUGINS\n"
        "import multinotes.providers\n"
        "from multinotes.plugin import Model\n"
        "from multinotes.plugins.providers.demo import EchoModel\n"
        "from multinotes.plugins.providers.gemini import GeminiProvider\n"
        "from . import sibling\n"
        "from multinotes.testing import plugin_client\n"
    )
    assert _core_imports(source, "multinotes.plugins.providers.demo") == [
        "multinotes.hookimpl",
        "multinotes.keys",
        "multinotes.providers",
        "multinotes.plugins.providers.gemini",
        "multinotes.testing",
    ]
    assert _core_imports("from multinotes.testing import plugin_client", None, test=True) == []


# -- the README's plugin example -----------------------------------------------------------------


def _readme_plugin_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Writing a plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    [example] = [b for b in blocks if "@hookimpl" in b]
    return example


def _load_module(name: str, source: str, folder: Path) -> ModuleType:
    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


async def test_readme_plugin_example_loads_and_streams_an_answer(tmp_path):
    module = _load_module("multinotes_shout", _readme_plugin_example(), tmp_path)
    try:
        async with plugin_client(tmp_path / "data", [("shout", module)]) as api:
            await api.register_admin()
            [plugin] = await api.get_json("/api/admin/plugins")
            assert (plugin["status"], plugin["kinds"]) == ("loaded", ["provider"]), plugin
            assert await api.get_json("/api/plugins/shout/ping") == {"pong": True}
            conversation = (await (await api.post("/api/conversations", {})).json())["id"]
            response = await api.post(
                f"/api/conversations/{conversation}/messages",
                {"content": "hello there", "models": ["shout/loud"]},
            )
            assert response.status == 200, await response.text()
            events = by_model(parse_sse(await response.text()))["shout/loud"]
            text = "".join(data["text"] for name, data in events if name == "delta")
            assert text == "HELLO THERE!"
            assert events[-1][0] == "done", events[-1]
    finally:
        sys.modules.pop("multinotes_shout", None)


# -- the example plugin ----------------------------------------------------------------------------


@pytest.fixture
def hello_module() -> ModuleType:
    sys.path.insert(0, str(ROOT / "docs" / "example-plugin"))
    try:
        import multinotes_hello

        yield multinotes_hello
    finally:
        sys.path.remove(str(ROOT / "docs" / "example-plugin"))
        sys.modules.pop("multinotes_hello", None)


async def test_example_plugin_periodic_task_runs(tmp_path, hello_module):
    from multinotes.keys import PLUGINS

    async with plugin_client(tmp_path, [("hello", hello_module)]) as api:
        await api.register_admin()
        response = await api.patch("/api/admin/plugins/hello", {"settings": {"greeting": "Howdy"}})
        assert response.status == 200, await response.text()
        task = api.app[PLUGINS].tasks["hello.count_models"]
        assert task.schedule == "0 * * * *"
        assert await task.func(api.app) == "Howdy: 1 model(s) offered"


# -- prices ----------------------------------------------------------------------------------------


def test_list_prices_in_dollars_become_credits_in_one_place():
    from multinotes.plugin import CREDITS_PER_USD, Pricing, credits_from_usd

    assert CREDITS_PER_USD == 100_000
    assert credits_from_usd(0.15) == 15_000  # not 15000.000000000002
    assert Pricing.from_usd(
        input_per_million=2.5, output_per_million=10, per_image=0.04, per_audio_minute=0.006
    ) == Pricing(
        input_per_million=250_000,
        output_per_million=1_000_000,
        per_image=4_000,
        per_audio_minute=600,
    )


async def test_builtin_providers_price_their_models_from_dollar_list_prices():
    from multinotes.plugin_host import PluginHost

    host = PluginHost()
    host.load_entrypoints()
    prices = {}
    for name in ("openai", "gemini", "together"):
        provider = host.registries.providers[name].obj
        for model in await provider.list_models(None):
            prices[model.model_id] = model.pricing
    assert prices["openai/gpt-4o-mini"].input_per_million == 15_000
    assert prices["openai/whisper-1"].per_audio_minute == 600
    assert prices["gemini/gemini-2.5-flash"].output_per_million == 250_000
    assert prices["together/deepseek-ai/DeepSeek-V3"].input_per_million == 125_000


# -- docs/plugin-api.md ----------------------------------------------------------------------------


def _doc_blocks() -> list[str]:
    text = (ROOT / "docs" / "plugin-api.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_docs_plugin_api_lists_exactly_the_public_surface():
    import multinotes.plugin

    listing = _doc_blocks()[0]
    namespace: dict[str, object] = {}
    exec(compile(listing, "plugin-api.md", "exec"), namespace)
    documented = {name for name in namespace if not name.startswith("__")}
    assert documented == set(multinotes.plugin.__all__)


async def test_docs_plugin_api_example_plugin_and_its_test_run(tmp_path):
    blocks = _doc_blocks()
    assert len(blocks) == 3  # the surface, the plugin, its test: each one runs here
    _, plugin_source, test_source = blocks
    assert _core_imports(plugin_source, None) == []
    assert _core_imports(test_source, None, test=True) == []
    _load_module("multinotes_gift", plugin_source, tmp_path)
    try:
        tests = _load_module("test_gift_doc", test_source, tmp_path)
        names = [name for name in dir(tests) if name.startswith("test_")]
        assert names == ["test_a_paid_gift_card_credits_the_wallet_once"]
        for name in names:
            await getattr(tests, name)(tmp_path / name)
    finally:
        sys.modules.pop("multinotes_gift", None)
        sys.modules.pop("test_gift_doc", None)


def test_builtin_plugins_type_their_register_callbacks():
    untyped = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or not node.name.startswith("register_"):
                continue
            for arg in node.args.args:
                if arg.arg == "register":
                    annotation = ast.unparse(arg.annotation) if arg.annotation else "Any"
                    if not annotation.endswith("Registrar"):
                        untyped.append(f"{path.relative_to(ROOT)}:{node.name}: {annotation}")
    assert untyped == []
