"""The example plugins in docs/examples/ and ``multinotes plugin new``: each example is
pip-installed the way a third party installs it, passes its own ``pytest`` run in its folder,
appears in the plugin console and switches off and on at run time; the scaffolder writes exactly
those examples."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from multinotes.cli import main
from multinotes.testing import plugin_client

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
BIN = Path(sys.executable).parent
#: kind → the plugin name its example was scaffolded with
NAMES = {
    "provider": "acme",
    "exporter": "htmlpage",
    "integration": "hookpost",
    "billing": "paydemo",
}
IGNORED = shutil.ignore_patterns("__pycache__", ".pytest_cache", "build", "*.egg-info")


def _files(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="session")
def installed_examples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """Every example copied out of the tree (so nothing is built inside docs/) and installed
    with pip into one target folder: no dependencies (they are the app's, already here), no
    build isolation (no index needed). The copies then lose their own package folder, so their
    tests can only import what pip installed."""
    base = tmp_path_factory.mktemp("examples")
    target = base / "site"
    copies = {}
    for kind in NAMES:
        copies[kind] = base / kind
        shutil.copytree(EXAMPLES / kind, copies[kind], ignore=IGNORED)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*pip, "--target", str(target), *map(str, copies.values())],
        check=True,
        timeout=600,
    )
    for kind, copy in copies.items():
        shutil.rmtree(copy / f"multinotes_{NAMES[kind]}")
    return target, copies


# Four pytest runs at once, each starting its own apps: 125 s measured on a loaded machine (load
# 9-11 on 2 cores), past the suite's 120 s limit, which cut it off before the runs' own 600 s.
@pytest.mark.timeout(600)
def test_every_example_passes_its_own_tests_once_installed(installed_examples):
    target, copies = installed_examples
    env = {**os.environ, "PYTHONPATH": str(target)}
    # The four runs in parallel: each starts its own apps, so this is mostly waiting.
    runs = {
        kind: subprocess.Popen(
            [str(BIN / "pytest"), "-q", "-p", "no:cacheprovider"],
            cwd=copy,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for kind, copy in copies.items()
    }
    failed = {}
    for kind, run in runs.items():
        output, _ = run.communicate(timeout=600)
        if run.returncode != 0 or " passed" not in output:
            failed[kind] = output[-4000:]
    assert failed == {}


@pytest.fixture(scope="module")
def example_plugins(installed_examples) -> Iterator[dict[str, tuple[str, ModuleType]]]:
    """Each example loaded from what pip installed, through its entry point in the
    ``multinotes`` group, as the app's plugin host finds a third-party package. The target
    folder leaves sys.path once they are imported, so no other test's entry-point scan finds
    them."""
    target, _ = installed_examples
    sys.path.insert(0, str(target))
    found = {}
    try:
        for dist in importlib.metadata.distributions(path=[str(target)]):
            for entry in dist.entry_points.select(group="multinotes"):
                found[entry.name] = entry.load()
    finally:
        sys.path.remove(str(target))
    try:
        yield {kind: (name, found[name]) for kind, name in NAMES.items()}
    finally:
        for name in NAMES.values():
            sys.modules.pop(f"multinotes_{name}", None)


@pytest.mark.parametrize("kind", list(NAMES))
async def test_each_example_appears_in_the_console_and_toggles_at_run_time(
    tmp_path, example_plugins, kind
):
    name, module = example_plugins[kind]
    assert module.__file__ is not None and "site" in Path(module.__file__).parts
    async with plugin_client(tmp_path, [(name, module)]) as api:
        await api.register_admin()
        [plugin] = await api.get_json("/api/admin/plugins")
        assert (plugin["name"], plugin["kinds"], plugin["status"], plugin["enabled"]) == (
            name,
            [kind],
            "loaded",
            True,
        )
        for enabled in (False, True):
            response = await api.patch(f"/api/admin/plugins/{name}", {"enabled": enabled})
            assert response.status == 200, await response.text()
            [plugin] = await api.get_json("/api/admin/plugins")
            assert plugin["enabled"] is enabled


@pytest.mark.parametrize("kind", list(NAMES))
def test_plugin_new_writes_exactly_the_example(tmp_path, kind, capsys):
    """``multinotes plugin new`` writes the example (which passes its tests above); the
    examples were only formatted with ruff, as an author would."""
    folder = tmp_path / kind
    assert main(["plugin", "new", kind, NAMES[kind], "--directory", str(folder)]) == 0
    assert f"Created a {kind} plugin in {folder}" in capsys.readouterr().out
    ruff = str(BIN / "ruff")
    subprocess.run([ruff, "check", "-q", "--fix", "--select", "I", str(folder)], check=True)
    subprocess.run([ruff, "format", "-q", str(folder)], check=True)
    assert _files(folder) == _files(EXAMPLES / kind)


def test_plugin_new_refuses_a_bad_name_an_unknown_kind_and_a_used_folder(tmp_path, capsys):
    assert main(["plugin", "new", "provider", "Acme-AI", "--directory", str(tmp_path / "a")]) == 2
    assert "is not a plugin name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["plugin", "new", "theme", "acme"])
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    assert main(["plugin", "new", "exporter", "acme", "--directory", str(tmp_path / "used")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"


def test_examples_import_multinotes_only_through_the_public_modules():
    from tests.test_plugin_api import _core_imports

    files = sorted(EXAMPLES.rglob("*.py"))
    assert len(files) >= 4 * 2
    offenders = {
        str(path.relative_to(ROOT)): names
        for path in files
        if (names := _core_imports(path.read_text(), None, test="tests" in path.parts))
    }
    assert offenders == {}


def test_the_templates_ship_in_the_wheel_as_data():
    """setup.py ships non-.py files as package data but skips folders named ``tests``: the
    templates name theirs ``tests.tmpl`` and hold no ``.py`` file, so none is importable."""
    templates = ROOT / "core" / "plugin_templates"
    files = [p for p in templates.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert files and all(p.suffix == ".tmpl" for p in files)
    assert not any(p.name == "tests" for p in templates.rglob("*"))
