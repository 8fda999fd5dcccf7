"""Maps the source folders onto the ``multinotes`` import package (see ARCHITECTURE.md):
core/ → multinotes, plugins/ → multinotes.plugins, webui/ → multinotes.webui.

Every folder under those roots that holds a ``.py`` file is a package, whether or not it has an
``__init__.py``: a folder that misses one must not vanish from the wheel (deploy installs the
wheel, not the source tree). Every other file in those folders ships as package data.
``tests/test_wheel.py`` builds the wheel and compares it with the source tree.
Everything else lives in pyproject.toml."""

from pathlib import Path

from setuptools import setup

ROOTS = {"multinotes": "core", "multinotes.plugins": "plugins", "multinotes.webui": "webui"}
SKIPPED_DIRS = {"__pycache__", "build", "dist", "tests"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def shipped_dirs(folder: str) -> list[Path]:
    root = Path(folder)
    return [
        d
        for d in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]
        if not SKIPPED_DIRS.intersection(d.relative_to(root).parts)
        and not any(part.endswith(".egg-info") for part in d.parts)
    ]


def has_python(folder: Path) -> bool:
    return next(folder.glob("*.py"), None) is not None


def packages() -> tuple[list[str], dict[str, str], dict[str, list[str]]]:
    names: list[str] = []
    dirs: dict[str, str] = {}
    data: dict[str, list[str]] = {}
    for package, folder in ROOTS.items():
        dirs[package] = folder
        for d in shipped_dirs(folder):
            rel = d.relative_to(folder)
            if rel.parts and not has_python(d):
                continue  # a data-only folder: its files ship with the nearest package above
            name = ".".join([package, *rel.parts]) if rel.parts else package
            names.append(name)
            files = []
            for f in d.rglob("*"):
                own_module = f.parent == d and f.suffix == ".py"
                if not f.is_file() or f.suffix in SKIPPED_SUFFIXES or own_module:
                    continue
                inner = f.relative_to(d)
                # files below a nested package belong to that package
                if any(has_python(d / Path(*inner.parts[:i])) for i in range(1, len(inner.parts))):
                    continue
                if SKIPPED_DIRS.intersection(inner.parts):
                    continue
                files.append(inner.as_posix())
            if files:
                data[name] = sorted(files)
    return names, dirs, data


names, dirs, data = packages()
setup(packages=names, package_dir=dirs, package_data=data, include_package_data=False)
