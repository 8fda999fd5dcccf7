"""The wheel is what deploy installs: it must hold every file of the source tree that ships.

The wheel is built from a copy of the tracked files (what a clone builds), so the test neither
writes build/ into the checkout nor picks up local leftovers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Source folder → where it lands in the installed package (setup.py's ROOTS).
SHIPPED = {"core": "multinotes", "plugins": "multinotes/plugins", "webui": "multinotes/webui"}

pytestmark = pytest.mark.slow


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--", *SHIPPED, "setup.py", "pyproject.toml", "README.md"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in out.split("\0") if name and (ROOT / name).is_file()]


def expected_in_wheel(files: list[str]) -> set[str]:
    """Every tracked file under core/, plugins/ and webui/, except tests, at its package path."""
    expected = set()
    for name in files:
        path = PurePosixPath(name)
        top = path.parts[0]
        if top not in SHIPPED or "tests" in path.parts[1:] or path.suffix in (".pyc", ".pyo"):
            continue
        expected.add(str(PurePosixPath(SHIPPED[top], *path.parts[1:])))
    return expected


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in tracked_files():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(dist),
            str(source),
        ],
        check=True,
        timeout=300,
    )
    (built,) = dist.glob("multinotes-*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {n for n in archive.namelist() if not n.split("/", 1)[0].endswith(".dist-info")}


def test_the_wheel_ships_exactly_the_source_trees_files(wheel_files):
    expected = expected_in_wheel(tracked_files())
    assert sorted(expected - wheel_files) == [], "tracked files missing from the wheel"
    assert sorted(wheel_files - expected) == [], "files in the wheel that are not in the source"


@pytest.mark.parametrize(
    "folder, installed",
    [
        ("core/migrations/versions/", "multinotes/migrations/versions/"),
        # A plugin's own revisions (register_migrations): `multinotes migrate` reads them there.
        (
            "plugins/integrations/webhooks/migrations/",
            "multinotes/plugins/integrations/webhooks/migrations/",
        ),
        ("webui/templates/", "multinotes/webui/templates/"),
        ("webui/static/", "multinotes/webui/static/"),
    ],
)
def test_every_migration_revision_template_and_static_file_ships(wheel_files, folder, installed):
    files = [name for name in tracked_files() if name.startswith(folder)]
    assert files, f"nothing tracked under {folder}"
    missing = [name for name in files if installed + name.removeprefix(folder) not in wheel_files]
    assert missing == []


def test_folders_without_init_py_still_ship_their_modules(wheel_files):
    # core/migrations/versions has no __init__.py (core/chat had none until it got one): a
    # folder without one must not vanish from the wheel. Plugins' tests/ folders stay out.
    folder = "core/migrations/versions/"
    files = tracked_files()
    modules = [name for name in files if name.startswith(folder) and name.endswith(".py")]
    assert modules and folder + "__init__.py" not in files
    for name in modules:
        assert "multinotes/migrations/versions/" + name.removeprefix(folder) in wheel_files
    assert [name for name in files if name.startswith("plugins/providers/gemini/tests/")]
    assert not [name for name in wheel_files if "tests" in name.split("/")]


def test_the_console_script_and_every_built_in_plugin_are_entry_points(wheel, wheel_files):
    import configparser
    import tomllib

    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        points = configparser.ConfigParser(delimiters=("=",))
        points.optionxform = str  # keep the names case as written
        points.read_string(archive.read(name).decode())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert dict(points["console_scripts"]) == project["scripts"]
    plugins = {key: value.strip() for key, value in points["multinotes"].items()}
    assert plugins == project["entry-points"]["multinotes"]
    for module in plugins.values():
        path = module.replace(".", "/")
        assert f"{path}/__init__.py" in wheel_files or f"{path}.py" in wheel_files, module


def test_type_checking_sees_the_same_package_roots_as_the_wheel():
    """mypy reads core/ as ``multinotes`` and plugins/ as ``multinotes.plugins`` through the
    symlinks in .mypy-paths/ (a folder cannot be mapped to a package name in mypy's config): each
    link must name its package and point at the folder setup.py maps it from, or ``multinotes.*``
    imports would again be unresolved (and silently ``Any``)."""
    import ast
    import tomllib

    tree = ast.parse((ROOT / "setup.py").read_text())
    [roots] = [
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "ROOTS" for t in node.targets)
    ]
    links = {
        "multinotes": ROOT / ".mypy-paths" / "core" / "multinotes",
        "multinotes.plugins": ROOT / ".mypy-paths" / "plugins" / "multinotes" / "plugins",
        "multinotes.webui": ROOT / ".mypy-paths" / "plugins" / "multinotes" / "webui",
    }
    assert set(links) == set(roots)
    for package, link in links.items():
        assert link.is_symlink(), link
        assert link.resolve() == (ROOT / roots[package]).resolve(), package
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert config["explicit_package_bases"] is True
    search = config["mypy_path"].replace("$MYPY_CONFIG_FILE_DIR/", "").split(":")
    assert search == [".mypy-paths/core", ".mypy-paths/plugins"]
    checked = [f for f in config["files"] if not f.startswith("docs/")]
    assert checked == [".mypy-paths/core/multinotes", ".mypy-paths/plugins/multinotes/plugins"]
    assert {folder: package.replace(".", "/") for package, folder in roots.items()} == SHIPPED
