"""docs/security.md names a test for every protection: each name must exist, so the page cannot
drift from the suite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)*)`")


def _names(path: Path) -> dict[str, set[str]]:
    """Top-level names of a test module, and each class's method names."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names[node.name] = {
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names[node.name] = set()
    return names


class TestSecurityDoc:
    """Every test docs/security.md cites exists: its file, its class and its test."""

    def test_every_cited_test_exists(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        cited = REFERENCE.findall(text)
        assert len(cited) >= 40, "the page should cite a test for each protection"
        missing = []
        for file, parts in cited:
            path = ROOT / file
            if not path.is_file():
                missing.append(file)
                continue
            chain = [p for p in parts.split("::") if p]
            names = _names(path)
            if chain and chain[0] not in names:
                missing.append(f"{file}::{chain[0]}")
            elif len(chain) > 1 and chain[1] not in names[chain[0]]:
                missing.append(f"{file}::{chain[0]}::{chain[1]}")
        assert missing == []
