"""The architecture as the imports have it: each layer imports only what it may, and no file cycles.

Reads every product module's imports with ``ast`` (top-level and inside functions; the ones under
``if TYPE_CHECKING:`` count for cycles but not for the layer rules, since they never run). The
rules are the README's code map:

- ``drivers`` never imports ``console``;
- ``console.common`` (the shared leaf) imports nothing else of ours;
- the engine (``console.station``) never imports Textual, therapy, records, the UI or remote;
- therapy reaches cuffs only through the engine: never ``drivers``, never Textual or the UI;
- publishing (``console.mqtt``) knows no Textual, no serial port, no records: it reads snapshots and events;
- records know no Textual, no serial port and no engine;
- the UI does no serial I/O and no SQL: never ``drivers``, ``serial``, ``sqlite3`` or the records' store;
- nothing imports a ``_private`` name from another module, and no product module passes 500 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("console", "drivers")
MAX_LINES = 500


@dataclass(frozen=True)
class Import:
    importer: str
    module: str
    names: tuple[str, ...]
    line: int
    type_only: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def product_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path) -> Iterator[Import]:
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    type_only_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if hasattr(inner, "lineno"):
                        type_only_lines.add(inner.lineno)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(here, alias.name, (), node.lineno, node.lineno in type_only_lines)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = tuple(a.name for a in node.names)
            yield Import(here, module, names, node.lineno, node.lineno in type_only_lines)


ALL_IMPORTS = [imp for path in product_files() for imp in imports_of(path)]
MODULES = {module_name(p) for p in product_files()}


def in_layer(module: str, layer: str) -> bool:
    return module == layer or module.startswith(layer + ".")


def runtime_imports_from(layer: str) -> list[Import]:
    return [i for i in ALL_IMPORTS if in_layer(i.importer, layer) and not i.type_only]


FORBIDDEN: dict[str, tuple[str, ...]] = {
    "drivers": ("console", "textual"),
    "console.common": (
        "console.station",
        "console.therapy",
        "console.records",
        "console.config",
        "console.ui",
        "console.remote",
        "drivers",
        "textual",
    ),
    "console.station": (
        "textual",
        "console.therapy",
        "console.records",
        "console.ui",
        "console.remote",
        "console.mqtt",
        "aiomqtt",
        "sqlite3",
    ),
    "console.mqtt": ("textual", "drivers", "console.ui", "console.remote", "console.records", "sqlite3", "serial"),
    "console.therapy": ("drivers", "textual", "console.ui", "console.remote", "serial", "serial_asyncio_fast"),
    "console.records": ("textual", "drivers", "console.station", "console.ui", "console.remote", "serial"),
    "console.config": ("textual", "drivers", "console.station", "console.ui", "console.remote", "sqlite3"),
    "console.remote": ("textual", "drivers", "console.ui", "sqlite3"),
    "console.setup": ("textual", "console.ui", "console.remote", "console.records", "console.station", "sqlite3"),
    "console.ui": (
        "drivers",
        "serial",
        "serial_asyncio_fast",
        "sqlite3",
        "console.records.store",
        "console.records.schema",
        "console.records.writer",
    ),
}
"""Layer -> what it must never import at run time (a prefix matches its submodules)."""


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_each_layer_imports_only_what_it_may(layer: str) -> None:
    bad = [
        f"{i.importer}:{i.line} imports {i.module}"
        for i in runtime_imports_from(layer)
        for banned in FORBIDDEN[layer]
        if in_layer(i.module, banned)
    ]
    assert not bad, "\n".join(bad)


def test_the_rules_see_real_imports() -> None:
    """The reader is not blind: it finds imports we know are there (else every rule passes vacuously)."""
    pairs = {(i.importer, i.module) for i in ALL_IMPORTS}
    assert ("console.station.station", "console.station.supervisor") in pairs
    assert ("console.station.controller_state", "drivers.link") in pairs
    assert any(i.importer.startswith("console.ui") and i.module.startswith("textual") for i in ALL_IMPORTS)
    assert ("console.config.schema", "console.therapy.plans") in {
        (i.importer, i.module) for i in ALL_IMPORTS if i.type_only
    }


def test_no_module_imports_a_private_name_of_another() -> None:
    bad = [
        f"{i.importer}:{i.line} imports {n} from {i.module}"
        for i in ALL_IMPORTS
        if i.module.startswith(PACKAGES) and i.module != i.importer
        for n in i.names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert not bad, "\n".join(bad)


def _resolve(module: str, names: tuple[str, ...]) -> set[str]:
    """The product modules an import statement loads (``from pkg import mod`` loads ``pkg.mod``)."""
    out = set()
    if module in MODULES:
        out.add(module)
    for n in names:
        if f"{module}.{n}" in MODULES:
            out.add(f"{module}.{n}")
    return out


def test_no_import_cycle_between_files() -> None:
    """Counting imports under TYPE_CHECKING too: a cycle there still means two files that need each other."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in ALL_IMPORTS:
        for target in _resolve(i.module, i.names):
            if (
                target != i.importer
                and not i.importer.startswith(target + ".")
                and i.importer + "." not in target + "."
            ):
                graph[i.importer].add(target)
    # a package's __init__ importing its own submodules is its public face, not a cycle
    for m in list(graph):
        graph[m] = {t for t in graph[m] if not (t.startswith(m + ".") and (ROOT / m.replace(".", "/")).is_dir())}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t) :] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_product_module_over_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in product_files() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, long
