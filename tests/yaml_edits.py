"""Editing a YAML text in tests, and finding the line an error should name."""

from __future__ import annotations


def edit(edits: list[tuple[str, str]], text: str) -> str:
    """Apply each (old, new) replacement; each ``old`` must occur exactly once."""
    for old, new in edits:
        assert text.count(old) == 1, f"edit target not unique: {old!r}"
        text = text.replace(old, new)
    return text


def line_of(text: str, anchor: str) -> int:
    """1-based line of the only occurrence of ``anchor``."""
    assert text.count(anchor) == 1, f"anchor not unique: {anchor!r}"
    return text[: text.index(anchor)].count("\n") + 1
