"""Maps the source folders onto the ``multinotes`` import package (see ARCHITECTURE.md):
core/ → multinotes, plugins/ → multinotes.plugins, webui/ → multinotes.webui.
Everything else lives in pyproject.toml."""

from pathlib import Path

from setuptools import setup

ROOTS = {"multinotes": "core", "multinotes.plugins": "plugins", "multinotes.webui": "webui"}


def packages() -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    dirs: dict[str, str] = {}
    for package, folder in ROOTS.items():
        dirs[package] = folder
        for init in sorted(Path(folder).rglob("__init__.py")):
            rel = init.parent.relative_to(folder)
            names.append(".".join([package, *rel.parts]) if rel.parts else package)
    return names, dirs


names, dirs = packages()
setup(packages=names, package_dir=dirs, include_package_data=True)
