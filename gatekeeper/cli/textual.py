"""A person's or a payload's text, safe to print: what every command's tables use.

Apart from :mod:`gatekeeper.cli.render` (release views and what they import), so a command that
only prints tables (``gatekeeper access ...``) does not load the release views and the Temporal
client they bring.
"""

from __future__ import annotations

from rich.text import Text

from gatekeeper.text import for_markup, for_terminal


def plain(value: object, *, one_line: bool = True) -> Text:
    """A person's or a payload's text as a ``Text``: never markup, controls neutralised."""
    return Text(for_terminal(value, one_line=one_line))


def markup(value: object) -> str:
    """A person's or a payload's text for a markup string: one line, markup escaped."""
    return for_markup(value, one_line=True)
