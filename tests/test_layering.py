"""The packages import in one direction only, read from the source (``ast``, nothing executed).

From the bottom up: the core (``gatekeeper``: models, rules, ledger, stages, adapters, dossier,
identity, the client-side API), then the Temporal shells over it (``workflows``,
``activities``), then the worker process (``workers``), then the command line
(``gatekeeper.cli`` and ``python -m gatekeeper``), and beside everything the benchmarks
(``bench``, outside the wheel). A package imports only from its own layer or those below it, so
the core never reaches into workflows, activities, workers or the CLI, and the worker never
into the CLI; nothing that ships imports the benchmarks or the tests.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Top-level directories whose modules are checked.
PACKAGES = ("gatekeeper", "workflows", "activities", "workers", "bench")

#: What each layer may import (besides the standard library and third-party packages).
ALLOWED: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "workflows": frozenset({"core", "workflows"}),
    "activities": frozenset({"core", "activities"}),
    "workers": frozenset({"core", "workflows", "activities", "workers"}),
    "cli": frozenset({"core", "workflows", "activities", "workers", "cli"}),
    "bench": frozenset({"core", "workflows", "activities", "workers", "bench"}),
}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name; ``None`` for the standard library and third parties."""
    if module in ("gatekeeper.cli", "gatekeeper.__main__") or module.startswith("gatekeeper.cli."):
        return "cli"
    top = module.split(".")[0]
    if top == "gatekeeper":
        return "core"
    if top in ("workflows", "activities", "workers", "bench", "tests"):
        return top
    return None


@dataclass(frozen=True)
class Edge:
    """One import statement: where it is and what it names."""

    where: str  # the file, relative to the checked root
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return (
            f"{self.where}:{self.line}: {self.importer} imports {self.imported} "
            f"({layer_of(self.importer)} -> {layer_of(self.imported)})"
        )


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Edge]:
    """Every import in ``path``, at any depth (inside functions and ``TYPE_CHECKING`` too),
    relative ones resolved."""
    importer = module_name(path, root)
    where = path.relative_to(root).as_posix()
    package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(where, node.lineno, importer, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            yield Edge(where, node.lineno, importer, target)


def violations(root: Path) -> list[Edge]:
    """Every import under ``root`` that goes against the direction."""
    found = []
    for top in PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            for edge in imports_of(path, root):
                source, target = layer_of(edge.importer), layer_of(edge.imported)
                if source is None or target is None:
                    continue
                if target not in ALLOWED[source]:
                    found.append(edge)
    return found


def package_cycles(root: Path) -> list[tuple[str, str]]:
    """Pairs of layers that import each other (a package cycle)."""
    edges = {
        (layer_of(e.importer), layer_of(e.imported))
        for top in PACKAGES
        for path in (root / top).rglob("*.py")
        for e in imports_of(path, root)
    }
    return sorted(
        (a, b) for a, b in edges if a is not None and b is not None and a < b and (b, a) in edges
    )


class TestImportDirection:
    """No module imports from a layer above its own, and no two packages import each other."""

    def test_no_import_goes_up(self) -> None:
        found = violations(ROOT)
        assert not found, "imports against the direction:\n" + "\n".join(map(str, found))

    def test_no_package_cycle(self) -> None:
        assert package_cycles(ROOT) == []

    def test_a_core_module_importing_the_worker_is_named(self, tmp_path: Path) -> None:
        """The check reads what is written: a core module importing ``workers`` (even inside a
        function), or ``workers`` importing the CLI, is reported with its file and line."""
        (tmp_path / "gatekeeper" / "cli").mkdir(parents=True)
        (tmp_path / "workers").mkdir()
        (tmp_path / "gatekeeper" / "__init__.py").write_text("")
        (tmp_path / "gatekeeper" / "cli" / "__init__.py").write_text("")
        (tmp_path / "gatekeeper" / "thing.py").write_text(
            "import json\n\n\ndef f():\n    from workers.worker import build_worker\n"
        )
        (tmp_path / "workers" / "__init__.py").write_text("")
        (tmp_path / "workers" / "__main__.py").write_text("from gatekeeper.cli import main\n")
        (tmp_path / "workers" / "ok.py").write_text("from gatekeeper.thing import f\n")
        found = sorted(map(str, violations(tmp_path)))
        assert found == [
            "gatekeeper/thing.py:5: gatekeeper.thing imports workers.worker (core -> workers)",
            "workers/__main__.py:1: workers.__main__ imports gatekeeper.cli (workers -> cli)",
        ]
        assert package_cycles(tmp_path) == [("core", "workers")]

    def test_relative_imports_are_resolved(self, tmp_path: Path) -> None:
        (tmp_path / "gatekeeper" / "ledger").mkdir(parents=True)
        (tmp_path / "gatekeeper" / "ledger" / "state.py").write_text(
            "from ..cli import common\nfrom . import notices\n"
        )
        found = [e.imported for e in violations(tmp_path)]
        assert found == ["gatekeeper.cli"]


class TestWheel:
    """The wheel ships the engine, not the benchmarks or the tests."""

    def test_benchmarks_are_not_packaged(self) -> None:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        packaged = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
        assert "bench" not in packaged
        assert (ROOT / "bench" / "__main__.py").is_file()
        stray = [
            p.relative_to(ROOT).as_posix()
            for top in packaged
            for p in (ROOT / top).rglob("bench*.py")
        ]
        assert stray == []
