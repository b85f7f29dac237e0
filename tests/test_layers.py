"""The layer rules import-linter cannot say (its contracts are in pyproject.toml and run in ``make check``):
no import cycle between any two modules of ``services``, and core code never owns a transaction."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

from services.core.config import PROJECT_ROOT

CORE = PROJECT_ROOT / "services" / "core"
# Calls that end (or open, to end later) a unit of work: the caller's, in core code. Savepoints
# (``begin_nested``) stay inside the caller's transaction and are fine.
TRANSACTION_CALLS = {"commit", "rollback", "begin", "transaction"}


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    edges = {module: sorted(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            module, position = work.pop()
            if position == 0:
                index[module] = low[module] = len(index)
                stack.append(module)
                on_stack.add(module)
            targets = edges[module]
            if position < len(targets):
                work.append((module, position + 1))
                target = targets[position]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[module] = min(low[module], index[target])
                continue
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[module])
    return found


def test_no_module_imports_itself_through_others() -> None:
    # Imports under TYPE_CHECKING count: a cycle that only type checkers see still ties the modules together.
    graph = grimp.build_graph("services", exclude_type_checking_imports=False)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_cycles() -> None:
    graph = grimp.ImportGraph()
    for importer, imported in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e"), ("e", "d")]:
        graph.add_import(importer=importer, imported=imported)
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def _transaction_calls(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno} .{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in TRANSACTION_CALLS
    ]


def test_core_code_never_commits() -> None:
    """Services take a session and leave its transaction to whoever owns the unit of work: the API's
    route class, the worker's loops and tasks (services/worker), the CLI."""
    found = [call for path in sorted(CORE.rglob("*.py")) for call in _transaction_calls(path)]
    assert found == []
