"""Import contracts: the shape of the import tree, checked on every run.

- No feature package imports the HTTP layer: services live in the feature packages, and the JSON
  API (``multinotes.api``) and the pages (``multinotes.web``) both call them, never each other;
  the HTTP machinery they share (``multinotes.http``) imports neither.
- No cycles between feature packages.
- The generation pipeline (``multinotes.chat``) does not import search, files or integrations:
  they react to its domain events instead, and it reaches stored bytes and the storage quota
  through ``multinotes.storage``, which sits below every feature.

The forbidden-import contracts are import-linter's, configured under ``[tool.importlinter]`` in
pyproject.toml (``lint-imports`` runs them too); the cycle check is grimp's graph, which
import-linter is built on, limited to the feature packages.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "multinotes"

#: The packages that hold a feature's tables and services.
FEATURES = (
    "billing",
    "chat",
    "files",
    "identity",
    "notes",
    "privacy",
    "search",
    "sharing",
    "wallet",
)

#: Imports between features that a change under way removes; each entry says which and why.
PENDING: dict[tuple[str, str], str] = {}


def run_contract(contract: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = lint_imports(
        config_filename=str(ROOT / "pyproject.toml"),
        limit_to_contracts=(contract,),
        no_cache=True,
        no_logo=True,
    )
    return code, capsys.readouterr().out


@pytest.mark.parametrize("contract", ["features-below-http", "services-without-http"])
def test_feature_packages_never_import_the_http_layer(
    contract: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_contract(contract, capsys)
    assert code == 0, report


@pytest.mark.parametrize("contract", ["api-and-pages-apart", "http-below-api-and-pages"])
def test_the_api_and_the_pages_stand_side_by_side_on_the_http_machinery(
    contract: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = run_contract(contract, capsys)
    assert code == 0, report


def test_the_generation_pipeline_does_not_import_search_files_or_integrations(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report = run_contract("pipeline-reacts-through-events", capsys)
    assert code == 0, report


def test_file_storage_sits_below_the_features(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_contract("storage-below-features", capsys)
    assert code == 0, report


def feature_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FEATURES else None


def feature_imports() -> dict[tuple[str, str], list[str]]:
    """(importer feature, imported feature) -> the module-level imports behind it."""
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    edges: dict[tuple[str, str], list[str]] = {}
    for module in sorted(graph.modules):
        source = feature_of(module)
        if source is None:
            continue
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            target = feature_of(imported)
            if target is not None and target != source:
                edges.setdefault((source, target), []).append(f"{module} -> {imported}")
    return edges


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Every elementary cycle of a small graph, each once, starting at its smallest node."""
    found: list[list[str]] = []
    nodes = sorted({n for edge in edges for n in edge})

    def walk(start: str, path: list[str]) -> None:
        for a, b in sorted(edges):
            if a != path[-1]:
                continue
            if b == start:
                found.append([*path, start])
            elif b not in path and b > start:
                walk(start, [*path, b])

    for start in nodes:
        walk(start, [start])
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c", "a"]]
    assert cycles({("a", "b"), ("b", "c")}) == []


def test_no_cycles_between_feature_packages() -> None:
    edges = feature_imports()
    kept = set(edges) - set(PENDING)
    problems = [
        " -> ".join(cycle)
        + "\n"
        + "\n".join(f"    {line}" for a, b in itertools.pairwise(cycle) for line in edges[(a, b)])
        for cycle in cycles(kept)
    ]
    assert problems == [], "Feature packages import each other in a cycle:\n" + "\n".join(problems)


def test_every_pending_exception_is_still_needed() -> None:
    """An entry of PENDING that no import needs any more must go, so it cannot hide a new
    cycle later."""
    edges = feature_imports()
    stale = [pair for pair in PENDING if pair not in edges]
    assert stale == []
