"""What people typed, made safe for where it is shown: a terminal, Markdown, HTML.

Comments, reasons, notes, titles, model versions and payload values reach a terminal (through
Rich, which reads ``[...]`` as markup), the Markdown and HTML dossiers and the Temporal UI's
details (Markdown). Each is written through one function here, at the place it is shown, so a
value is stored as typed and never changes meaning on the way out:

- :func:`for_terminal`: control characters (ESC, CR, backspace, C1 codes, bidi overrides) are
  neutralised, so a value cannot move the cursor, recolour the terminal or hide text;
- :func:`for_markup`: the same, and Rich markup escaped, for values inside a markup string;
- :func:`for_markdown`: one line (CR and LF folded to spaces), with Markdown syntax, table pipes
  and HTML (``<``, ``>``, ``&``) escaped, so a value can add no heading, row, link or tag;
- :func:`for_html`: controls neutralised, then HTML-escaped (quotes included).

And :func:`when`, how a time reads wherever one is shown: messages, details, the CLI, dossiers.

Pure (standard library only, no I/O): the release workflow uses it in its sandbox.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

#: What a neutralised control character reads as.
REPLACEMENT = "\N{REPLACEMENT CHARACTER}"

# C0 controls but TAB (line breaks never reach this: lines are split first), DEL, C1 controls,
# and the Unicode formatting controls that reorder or hide text (bidi embeddings, overrides and
# isolates, marks).
_CONTROLS = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
# Rich's own pattern (rich.markup.escape): a ``[`` starting a tag, with any backslashes before it.
_RICH_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
# Characters that give inline Markdown (CommonMark, GFM tables and strikethrough) a meaning, and
# ``#``; each is backslash-escaped. A value never starts a line, so list and quote markers are
# inert. ``_`` between two letters or digits cannot emphasise anything (``internal_review``
# stays as written).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]#!|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_HTML_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}


def _lines(value: object) -> list[str]:
    # splitlines() knows every line break: LF, CR, CRLF, VT, FF, FS, GS, RS, NEL, LS, PS.
    return [_CONTROLS.sub(REPLACEMENT, line) for line in str(value).splitlines()]


def for_terminal(value: object, *, one_line: bool = False) -> str:
    """``value`` with every control character but TAB and line breaks replaced by U+FFFD.

    Line breaks become ``\\n`` (a lone CR would return the cursor and let a value overwrite what
    was printed before it); with ``one_line`` they, and tabs, become single spaces, for values
    printed inside a line of their own (so nobody can forge a second line of output).
    """
    lines = _lines(value)
    if one_line:
        return " ".join(line.replace("\t", " ") for line in lines)
    return "\n".join(lines)


def for_markup(value: object, *, one_line: bool = False) -> str:
    """:func:`for_terminal`, then escaped for a Rich markup string (``[/link]`` prints as typed)."""
    text = _RICH_TAG.sub(
        lambda match: f"{match.group(1)}{match.group(1)}\\{match.group(2)}",
        for_terminal(value, one_line=one_line),
    )
    if text.endswith("\\") and not text.endswith("\\\\"):
        text += "\\"
    return text


def for_markdown(value: object) -> str:
    """One line of Markdown that renders as exactly ``value`` (controls neutralised).

    Line breaks fold to spaces, so a value cannot start a line (no heading, list, quote, table
    row or fence); every ASCII character Markdown gives a meaning is backslash-escaped (table
    pipes included), and ``<``, ``>``, ``&`` become entities, so no HTML reaches a renderer.
    """
    text = " ".join(line.replace("\t", " ") for line in _lines(value))
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return "".join(_HTML_ENTITIES.get(char, char) if char in "&<>" else char for char in text)


def for_html(value: object) -> str:
    """``value`` as HTML text: controls neutralised, ``& < > " '`` escaped."""
    text = for_terminal(value)
    return "".join(_HTML_ENTITIES.get(char, char) for char in text)


def when(value: datetime | str | None, *, seconds: bool = False) -> str:
    """How a time reads for people: ``2026-12-27 09:30 UTC`` (with ``seconds``,
    ``2026-12-27 09:30:12 UTC``); ``—`` when there is none.

    An aware time is shown in UTC; a naive one is taken to be UTC already. A string is read as
    ISO 8601, and shown as it is if it is not.
    """
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value
        value = parsed
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
