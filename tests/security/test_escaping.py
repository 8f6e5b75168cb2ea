"""What people type is shown as typed, everywhere: it never becomes terminal markup, control
sequences, Markdown structure or HTML.

A reviewer's comment and an operator's hold reason are free text that every other reader of the
release sees: in ``release status``, in the Markdown and HTML dossiers, and on the Temporal UI's
workflow page. Each test writes hostile text into a real release on the dev server and reads it
back through the public interface.
"""

from __future__ import annotations

import re
import uuid

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token
from rich.text import Text
from temporalio.api.sdk.v1 import WorkflowMetadata

from gatekeeper.errors import DecisionRefused
from gatekeeper.models import DecisionKind, DecisionRequest, OperatorRequest, ReleaseState
from gatekeeper.text import for_html, for_markdown, for_markup, for_terminal
from tests import factories
from tests.security.process import environment, gatekeeper
from tests.workflows.conftest import Harness

#: A hold reason that Rich reads as a closing tag with nothing to close (MarkupError).
MARKUP = "[/link] and [bold]not bold"
#: A comment that breaks out of its Markdown line: a line break starts a heading, then raw HTML.
#: (Comments and reasons may span lines, so a newline is accepted; a CR is refused at input.)
INJECTION = "looks fine\n# Injected\n<script>alert(1)</script>"
#: Terminal control sequences: clear the screen, set the window title, move the cursor. Requests
#: refuse them (gatekeeper/models/base.py), so they never reach a status to be shown.
CONTROLS = "\x1b[2J\x1b]0;pwned\x07\x1b[1A\x9b31m"
COMMENT = f"{INJECTION} {MARKUP} end"
REASON = f"{MARKUP}\n# Held heading\n<img src=x onerror=alert(2)>"


async def hostile_release(harness: Harness) -> str:
    """A release at its review gate with a hostile comment on a decision and a hostile hold."""
    rid = f"r-{uuid.uuid4().hex[:10]}"
    await harness.start(factories.spec(rid))
    await harness.at_stage(rid, "internal_review")
    for smuggled in (CONTROLS, "looks fine\r# Injected"):
        unchecked = DecisionRequest.model_construct(
            decider="sam.safety", role="safety", stage=None, comment=smuggled, signature=None
        )
        with pytest.raises(DecisionRefused) as refused:
            await harness.releases.decide(rid, DecisionKind.APPROVE, unchecked)
        assert refused.value.rule == "bad_input"
    await harness.approve(rid, "sam.safety", "safety", comment=COMMENT)
    await harness.releases.operate(
        rid, "hold", OperatorRequest(by=factories.OPERATOR, reason=REASON)
    )
    status = await harness.releases.status(rid)
    assert status.state is ReleaseState.HELD
    # Stored exactly as typed (except the edges the models strip): escaping is for display only.
    assert any(d.comment == COMMENT for gate in status.gates.values() for d in gate.decisions)
    assert status.active_holds()[0].reason == REASON
    return rid


def markdown_blocks(text: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse(text)


def headings(tokens: list[Token]) -> list[str]:
    return [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]


def html_tokens(tokens: list[Token]) -> list[str]:
    found = [t.content for t in tokens if t.type == "html_block"]
    for token in tokens:
        found += [c.content for c in token.children or [] if c.type == "html_inline"]
    return found


class TestTerminal:
    """``release status`` prints a comment and a hold reason as typed: markup such as ``[/link]``
    neither crashes it nor styles anything, and no control character reaches the terminal."""

    async def test_status_prints_markup_literally(self, harness: Harness) -> None:
        rid = await hostile_release(harness)

        ran = await gatekeeper("release", "status", rid, env=environment(harness))

        assert ran.code == 0, ran.stderr
        assert ran.stderr == ""
        assert "[/link] and [bold]not bold" in ran.stdout  # the hold reason and the comment
        assert ran.stdout.count("[/link]") >= 2
        assert "# Injected" in ran.stdout and "<script>alert(1)</script>" in ran.stdout
        assert "<img src=x onerror=alert(2)>" in ran.stdout
        forbidden = [
            c for c in ran.stdout if (ord(c) < 32 and c not in "\n") or 0x7F <= ord(c) < 0xA0
        ]
        assert forbidden == []

    async def test_watch_prints_markup_literally(self, harness: Harness) -> None:
        rid = await hostile_release(harness)
        await harness.releases.operate(
            rid, "withdraw", OperatorRequest(by=factories.OPERATOR, reason=REASON)
        )

        ran = await gatekeeper("release", "watch", rid, env=environment(harness))

        assert ran.code == 1, ran.stderr  # withdrawn
        assert "[/link] and [bold]not bold" in ran.stdout
        assert "\r" not in ran.stdout and "\x1b" not in ran.stdout


class TestDossiers:
    """The Markdown dossier gains no heading and no HTML from what people typed (CR, LF, ``#``,
    pipes and tags are escaped), yet renders their text; the HTML dossier entity-escapes it."""

    async def test_markdown_dossier(self, harness: Harness) -> None:
        rid = await hostile_release(harness)

        ran = await gatekeeper("audit", "export", rid, "--format", "md", env=environment(harness))

        assert ran.code == 0, ran.stderr
        document = ran.stdout
        assert "\r" not in document and "\x1b" not in document
        assert "<script" not in document and "<img" not in document
        tokens = markdown_blocks(document)
        titles = headings(tokens)
        assert titles[0].startswith("Release dossier:")
        assert not [t for t in titles if "Injected" in t or "Held heading" in t]
        assert html_tokens(tokens) == []
        rendered = MarkdownIt("commonmark").enable("table").render(document)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
        assert "# Injected" in rendered and "[/link] and [bold]not bold" in rendered
        # Every decision row still has its eight cells: no pipe in the comment split it.
        row = next(line for line in document.splitlines() if "looks fine" in line)
        assert len(re.findall(r"(?<!\\)\|", row)) == 9

    async def test_html_dossier(self, harness: Harness) -> None:
        rid = await hostile_release(harness)

        ran = await gatekeeper("audit", "export", rid, "--format", "html", env=environment(harness))

        assert ran.code == 0, ran.stderr
        page = ran.stdout
        assert "<script" not in page and "<img" not in page and "\x1b" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(2)&gt;" in page


class TestTemporalUi:
    """The current details the Temporal UI renders as Markdown show a hold reason as one escaped
    line: no heading, no HTML."""

    async def test_current_details(self, harness: Harness) -> None:
        rid = await hostile_release(harness)

        metadata = await harness.handle(rid).query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        details = metadata.current_details

        assert "**Held (" in details
        assert "\r" not in details and "<img" not in details
        tokens = markdown_blocks(details)
        assert not [t for t in headings(tokens) if "Held heading" in t]
        assert html_tokens(tokens) == []
        rendered = MarkdownIt("commonmark").enable("table").render(details)
        assert "[/link] and [bold]not bold # Held heading &lt;img src=x" in rendered


HOSTILE = [
    COMMENT,
    REASON,
    "trailing backslash \\",
    "\\[b]escaped already",
    "x\u202eevil\u2066",
    "tab\there\x00nul\x7fdel",
    "*a* _b_ `c` ~~d~~ [e](f) ![g](h) <i> &amp; | j",
]


class TestEscapingFunctions:
    """The one module every display goes through: Rich renders :func:`for_markup` back to the
    neutralised text, Markdown renders :func:`for_markdown` back to it on one line."""

    @pytest.mark.parametrize("value", HOSTILE)
    def test_rich_round_trip(self, value: str) -> None:
        shown = Text.from_markup(for_markup(value)).plain
        assert shown.rstrip("\\") == for_terminal(value).rstrip("\\")
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", shown)

    @pytest.mark.parametrize("value", HOSTILE)
    def test_markdown_round_trip(self, value: str) -> None:
        tokens = (
            MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(for_markdown(value))
        )
        assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
        children = tokens[1].children or []
        assert {c.type for c in children} <= {"text", "softbreak"}
        text = "".join(c.content for c in children)
        assert text == " ".join(for_terminal(value).replace("\t", " ").split("\n")).strip()

    def test_html(self) -> None:
        assert for_html(REASON) == (
            "[/link] and [bold]not bold\n# Held heading\n&lt;img src=x onerror=alert(2)&gt;"
        )
        assert for_html("\"'&") == "&quot;&#x27;&amp;"
