"""``multinotes plugin new <kind> <name>``: a new plugin package from the templates in
``plugin_templates/`` (shipped in the wheel as package data).

A template file's path and text name the plugin through placeholders: ``__module__`` and
``__name__`` in paths, ``{{name}}``, ``{{NAME}}``, ``{{module}}``, ``{{dist}}``, ``{{Class}}``,
``{{kind}}`` and ``{{description}}`` in text. A ``.tmpl`` suffix (on files, and on a folder
that must not be named ``tests`` in the wheel) is dropped.
"""

from __future__ import annotations

import re
from pathlib import Path

TEMPLATES = Path(__file__).parent / "plugin_templates"
KINDS = ("provider", "exporter", "integration", "billing")
_NAME = re.compile(r"[a-z][a-z0-9_]{1,30}")

DESCRIPTIONS = {
    "provider": "LLM models from the {Class} API for MultinotesAI.",
    "exporter": "Exports MultinotesAI notes as {Class} files.",
    "integration": "Sends MultinotesAI events to a {Class} webhook.",
    "billing": "Tops up MultinotesAI credit wallets with {Class} payments.",
}


def placeholders(kind: str, name: str) -> dict[str, str]:
    cls = "".join(part.capitalize() for part in name.split("_"))
    return {
        "name": name,
        "NAME": name.upper(),
        "module": f"multinotes_{name}",
        "dist": "multinotes-" + name.replace("_", "-"),
        "Class": cls,
        "kind": kind,
        "description": DESCRIPTIONS[kind].format(Class=cls),
    }


def _render(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)


def _target(relative: Path, values: dict[str, str]) -> Path:
    parts = []
    for part in relative.parts:
        part = part.removesuffix(".tmpl")
        part = part.replace("__module__", values["module"]).replace("__name__", values["name"])
        parts.append(part)
    return Path(*parts)


def scaffold(kind: str, name: str, destination: Path) -> list[Path]:
    """Write the package for a ``kind`` plugin called ``name`` into ``destination`` (which must
    not exist or be empty); return the files written, relative to it."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a plugin name: use 2-31 lowercase letters, digits and _, "
            "starting with a letter"
        )
    if destination.exists() and any(destination.iterdir()):
        raise ValueError(f"{destination} already exists and is not empty")
    values = placeholders(kind, name)
    written = []
    for folder in (TEMPLATES / "common", TEMPLATES / kind):
        for source in sorted(p for p in folder.rglob("*.tmpl") if p.is_file()):
            relative = _target(source.relative_to(folder), values)
            path = destination / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_render(source.read_text(), values))
            written.append(relative)
    return written
