"""Workflow modules keep no state between releases.

The worker's sandbox shares the ``workflows`` package with the process (issue 16,
``workers.worker.SANDBOX_PASSTHROUGH``): its modules are imported once and every release's
workflow runs against the same module objects. A module-level value that workflow code changed
would then carry from one release (or one replay) into the next and make histories diverge. This
scan refuses the ways Python code changes a module's state: ``global`` statements, assigning to
an item or attribute of a module-level name, and calling a mutating method on one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
MUTATING = {
    "append",
    "extend",
    "insert",
    "remove",
    "pop",
    "popitem",
    "clear",
    "update",
    "add",
    "discard",
    "setdefault",
    "sort",
    "reverse",
    "__setitem__",
    "__delitem__",
}


def _module_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _root(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def changes_to_module_state(source: str) -> list[str]:
    """Each place in ``source`` where a function changes a module-level name's value."""
    tree = ast.parse(source)
    names = _module_names(tree)
    found: list[str] = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        local = {a.arg for a in function.args.args + function.args.kwonlyargs}
        for node in ast.walk(function):
            if isinstance(node, ast.Global):
                found.append(f"line {node.lineno}: global {', '.join(node.names)}")
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                targets = (
                    node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                )
                for target in targets:
                    root = _root(target)
                    if (
                        isinstance(target, ast.Attribute | ast.Subscript)
                        and root in names
                        and root not in local
                    ):
                        found.append(f"line {node.lineno}: {ast.unparse(target)} changed")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in MUTATING
                and _root(node.func.value) in names
                and _root(node.func.value) not in local
            ):
                found.append(f"line {node.lineno}: {ast.unparse(node.func)}() called")
    return found


class TestTheScan:
    """The scan finds each way of changing module state, and leaves locals alone."""

    @pytest.mark.parametrize(
        "body",
        [
            "global SEEN\n    SEEN = 1",
            "SEEN.append(x)",
            "SEEN['a'] = x",
            "SEEN.count += 1",
            "del SEEN['a']",
            "SEEN.setdefault('a', []).append(x)",
        ],
    )
    def test_a_change_is_found(self, body: str) -> None:
        source = f"SEEN = {{}}\n\ndef step(x):\n    {body}\n"
        assert changes_to_module_state(source)

    def test_locals_and_reads_are_not_changes(self) -> None:
        source = (
            "SEEN = {}\n\ndef step(x, SEEN2):\n    mine = []\n    mine.append(SEEN['a'])\n"
            "    SEEN2.append(x)\n    return dict(SEEN)\n"
        )
        assert changes_to_module_state(source) == []


class TestWorkflowModules:
    """No module of the ``workflows`` package changes a module-level value."""

    @pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.py")), ids=lambda p: p.name)
    def test_no_module_state_is_changed(self, path: Path) -> None:
        assert changes_to_module_state(path.read_text(encoding="utf-8")) == []
