"""The layering of docs/architecture.md: which package may import which, no cycles, one home per table."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ["lake", "ingest", "publish", "serving", "builds", "embeddings", "sid_index", "quality"]
ALLOWED = {  # what each package may import (besides itself); assets and pipelines sit above all of them
    "lake": set(),
    "sid_index": set(),
    "embeddings": set(),
    "quality": {"lake", "builds", "sid_index"},
    "builds": {"lake", "sid_index", "quality"},
    "ingest": {"lake", "builds", "sid_index"},
    "publish": {"lake", "builds", "ingest", "sid_index"},
    "serving": {"lake", "builds", "publish", "quality", "sid_index"},
    "assets": set(LIBRARIES),
    "pipelines": {*LIBRARIES, "assets"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in [*LIBRARIES, "assets", "pipelines"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Project modules imported anywhere in the file (top level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            submodules = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
            names |= submodules if len(submodules) == len(node.names) else {node.module, *submodules}
    return {n for n in names if n in MODULES}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _package(module: str) -> str:
    return module.split(".", maxsplit=1)[0]


def test_packages_import_only_the_floors_below_them():
    wrong = sorted(
        f"{m} -> {d}"
        for m, deps in GRAPH.items()
        for d in deps
        if _package(d) != _package(m) and _package(d) not in ALLOWED[_package(m)]
    )
    assert not wrong, "imports across the layering of docs/architecture.md:\n" + "\n".join(wrong)


def test_the_module_graph_has_no_cycle():
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_lake_is_the_storage_floor_only():
    per_package: dict[str, int] = {}
    for module, path in MODULES.items():
        if _package(module) in LIBRARIES:
            per_package[_package(module)] = per_package.get(_package(module), 0) + len(path.read_text().splitlines())
    assert per_package["lake"] < sum(per_package.values()) / 3, per_package


def test_the_build_table_is_named_in_one_library_module():
    naming = [m for m, path in MODULES.items() if _package(m) in LIBRARIES and '"sid_builds"' in path.read_text()]
    assert naming == ["lake.catalog"], naming


@pytest.mark.parametrize("blocked", [["polars", "deltalake", "dagster", "pyspark"]])
def test_the_shard_reader_needs_torch_and_pyarrow_only(blocked: list[str]):
    code = (
        "import sys\n"
        + "".join(f"sys.modules[{b!r}] = None\n" for b in blocked)
        + "from serving.reader import GRShards\nprint(GRShards.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "GRShards", done.stderr
