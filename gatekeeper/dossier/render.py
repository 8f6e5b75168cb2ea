"""Writing a dossier: JSON (the canonical data), Markdown and HTML (for people).

The JSON puts each audit event on a line of its own, as compact canonical JSON. A person can read
and diff it, and ``audit verify`` can name the event a damaged line belongs to even when the
damage makes the file unparseable.

Every value a person or a payload supplied is escaped for the format it is written in
(:mod:`gatekeeper.text`): in Markdown it stays on its line (CR and LF fold to spaces) and its
Markdown and HTML read as text; in HTML it is entity-escaped. Only the headings, labels and notes
written here are markup.
"""

from __future__ import annotations

import json
from enum import StrEnum

from gatekeeper.canonical import canonical_json
from gatekeeper.dossier.document import Section, Table, sections, title
from gatekeeper.dossier.model import Dossier
from gatekeeper.text import for_html, for_markdown


class DossierFormat(StrEnum):
    MD = "md"
    JSON = "json"
    HTML = "html"


def render(dossier: Dossier, fmt: DossierFormat) -> str:
    """The dossier as text in ``fmt``."""
    if fmt is DossierFormat.JSON:
        return to_json(dossier)
    if fmt is DossierFormat.HTML:
        return to_html(dossier)
    return to_markdown(dossier)


def to_json(dossier: Dossier) -> str:
    """Indented JSON with the ``audit`` array last, one canonical event per line."""
    data = dossier.model_dump(mode="json")
    audit = data.pop("audit")
    head = json.dumps(data, indent=2, ensure_ascii=False)
    events = ",\n    ".join(canonical_json(event).decode("utf-8") for event in audit)
    body = f"\n    {events}\n  " if events else ""
    return f'{head[:-2]},\n  "audit": [{body}]\n}}\n'


def to_markdown(dossier: Dossier) -> str:
    out = [f"# {for_markdown(title(dossier))}", ""]
    for section in sections(dossier):
        out += _md_section(section)
    return "\n".join(out)


def _md_section(section: Section) -> list[str]:
    out = [f"## {section.title}", ""]
    if section.facts:
        out += [f"- **{name}:** {_md_text(value)}" for name, value in section.facts]
        out.append("")
    for table in section.tables:
        if table.rows:
            out += _md_table(table)
            out.append("")
    out += [*(f"_{note}_" for note in section.notes), ""] if section.notes else []
    return out


def _md_table(table: Table) -> list[str]:
    out = [
        "| " + " | ".join(table.headers) + " |",
        "|" + "---|" * len(table.headers),
    ]
    out += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in table.rows]
    return out


def _md_text(text: str) -> str:
    return for_markdown(text)


def _md_cell(text: str) -> str:
    return for_markdown(text) or " "


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #1d1d1f; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0 1em; width: 100%; }
th, td { border: 1px solid #d0d0d0; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td { word-break: break-word; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { font-weight: 600; } dd { margin: 0; font-family: ui-monospace, monospace; }
.note { color: #555; font-style: italic; }
"""


def to_html(dossier: Dossier) -> str:
    """A self-contained HTML page (inline style, no scripts)."""
    heading = for_html(title(dossier))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{heading}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{heading}</h1>",
    ]
    for section in sections(dossier):
        parts.append(f"<section><h2>{for_html(section.title)}</h2>")
        if section.facts:
            parts.append("<dl>")
            parts += [
                f"<dt>{for_html(name)}</dt><dd>{for_html(value)}</dd>"
                for name, value in section.facts
            ]
            parts.append("</dl>")
        for table in section.tables:
            if table.rows:
                parts.append(_html_table(table))
        parts += [f'<p class="note">{for_html(note)}</p>' for note in section.notes]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{for_html(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{for_html(cell)}</td>" for cell in row) + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
