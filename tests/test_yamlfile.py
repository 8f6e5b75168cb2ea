"""YAML input files: safe parsing, positions of fields, and problems located for people."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatekeeper.errors import PolicyError, SpecError
from gatekeeper.models import Policy, ReleaseSpec
from gatekeeper.yamlcheck import validate_model
from gatekeeper.yamlfile import (
    MAX_FILE_BYTES,
    format_path,
    parse_path,
    parse_yaml,
    read_yaml_file,
)


def problems_of(raw: bytes | str) -> list[tuple[int | None, int | None, str]]:
    with pytest.raises(PolicyError) as caught:
        parse_yaml(raw, source="p.yaml", error=PolicyError)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


class TestParsing:
    """Text becomes plain data plus the (line, column) of every key and list item."""

    def test_data_and_marks(self) -> None:
        text = "a: 1\nb:\n  - x\n  - c: 2\n    d: [3, 4]\n"
        document = parse_yaml(text, source="f", error=PolicyError)
        assert document.data == {"a": 1, "b": ["x", {"c": 2, "d": [3, 4]}]}
        assert document.marks[("a",)] == (1, 1)
        assert document.marks[("b", 0)] == (3, 5)
        assert document.marks[("b", 1, "d")] == (5, 5)
        assert document.marks[("b", 1, "d", 1)] == (5, 12)

    def test_locate_walks_up_to_the_nearest_written_parent(self) -> None:
        document = parse_yaml("a:\n  - b: 1\n", source="f", error=PolicyError)
        assert document.locate(("a", 0, "missing", "deeper")) == (2, 5)
        problem = document.problem(("a", 0, "c"), "missing")
        assert (problem.path, problem.line, problem.column) == ("a[0].c", 2, 5)

    def test_bytes_with_a_utf8_bom_are_read(self) -> None:
        document = parse_yaml("\ufeffname: Tomás\n".encode(), source="f", error=PolicyError)
        assert document.data == {"name": "Tomás"}

    def test_aliases_are_expanded(self) -> None:
        document = parse_yaml("a: &x [1, 2]\nb: *x\n", source="f", error=PolicyError)
        assert document.data == {"a": [1, 2], "b": [1, 2]}

    def test_paths_round_trip(self) -> None:
        path = ("stages", 2, "quorum", 0, "count")
        assert format_path(path) == "stages[2].quorum[0].count"
        assert parse_path("stages[2].quorum[0].count") == path
        assert format_path(()) == ""

    def test_the_error_type_is_the_callers(self) -> None:
        with pytest.raises(SpecError):
            parse_yaml("", source="s.yaml", error=SpecError)


class TestRefusedFiles:
    """Broken files are refused with one located problem each, never a traceback."""

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            pytest.param(b"a: 1\nb: caf\xe9\n", (2, 7, "not UTF-8 text: byte 0xe9"), id="non-utf8"),
            pytest.param(b"", (1, 1, "the file is empty"), id="empty"),
            pytest.param(b"  \n\n", (1, 1, "the file is empty"), id="blank"),
            pytest.param(b"# only\n# comments\n", (1, 1, "holds only comments"), id="comments"),
            pytest.param(
                b"- a\n- b\n", (1, 1, "must be a mapping of fields, not a list"), id="list"
            ),
            pytest.param(b"hello\n", (1, 1, "not the single value 'hello'"), id="scalar"),
            pytest.param(
                b"a: 1\nb: 2\na: 3\n",
                (3, 1, "duplicate key 'a' (first written on line 1)"),
                id="dup",
            ),
            pytest.param(
                b"x:\n  y: 1\n  y: 2\n",
                (3, 3, "duplicate key 'y' (first written on line 2)"),
                id="dup2",
            ),
            pytest.param(b"a: [1, 2\n", (2, 1, "invalid YAML: expected ',' or ']'"), id="syntax"),
            pytest.param(
                b"a: b: c\n", (1, 5, "invalid YAML: mapping values are not allowed"), id="colon"
            ),
            pytest.param(
                b"a: 1\n---\nb: 2\n",
                (2, 1, "expected a single document in the stream"),
                id="two-docs",
            ),
            pytest.param(b"a: \x07\n", (1, 4, "character #x0007 is not allowed"), id="control"),
            pytest.param(
                b"on: 1\n", (1, 1, "key 'on' is not text to YAML; put it in quotes"), id="bool-key"
            ),
            pytest.param(
                b"a: !!python/object/apply:os.system [echo]\n",
                (1, 4, "could not determine a constructor"),
                id="unsafe-tag",
            ),
            pytest.param(b"a: &x [1, *x]\n", (1, 4, "recursive alias"), id="recursive"),
            pytest.param(
                b"a:\n  b: [1, 2026-02-30]\n",
                (2, 10, "'2026-02-30' is not a real date or time (day is out of range"),
                id="impossible-date",
            ),
            pytest.param(
                b"a: 2026-01-01 10:00:00 +25:00\n",
                (1, 4, "'2026-01-01 10:00:00 +25:00' is not a real date or time"),
                id="impossible-offset",
            ),
            pytest.param(b"a: !!int ten\n", (1, 4, "'ten' cannot be read as int"), id="bad-int"),
        ],
    )
    def test_refused(self, raw: bytes, expected: tuple[int, int, str]) -> None:
        [(line, column, message)] = problems_of(raw)
        assert (line, column) == expected[:2]
        assert expected[2] in message

    def test_a_value_yaml_cannot_read_names_its_field(self) -> None:
        with pytest.raises(PolicyError) as caught:
            parse_yaml("x:\n  - ok: 1\n  - when: 2026-06-31\n", source="p.yaml", error=PolicyError)
        assert str(caught.value) == (
            "p.yaml:3:11: x[1].when: '2026-06-31' is not a real date or time "
            "(day is out of range for month)"
        )

    def test_alias_bombs_are_refused(self) -> None:
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in range(1, 7):
            refs = ", ".join([f"*a{level - 1}"] * 10)
            lines.append(f"a{level}: &a{level} [{refs}]")
        [(_, _, message)] = problems_of("\n".join(lines) + "\n")
        assert "expands to more than" in message

    def test_oversized_files_are_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "big.yaml"
        path.write_bytes(b"a: " + b"x" * MAX_FILE_BYTES + b"\n")
        with pytest.raises(PolicyError, match="larger than"):
            read_yaml_file(path, error=PolicyError)

    def test_an_unreadable_path_is_a_problem(self, tmp_path: Path) -> None:
        with pytest.raises(PolicyError) as caught:
            read_yaml_file(tmp_path / "absent.yaml", error=PolicyError)
        assert "cannot read the file: No such file or directory" in str(caught.value)
        with pytest.raises(PolicyError, match="Is a directory"):
            read_yaml_file(tmp_path, error=PolicyError)


class TestValidationProblems:
    """pydantic's errors are translated into messages for people, at the right line."""

    def validate(self, text: str, model: type[Policy] | type[ReleaseSpec] = Policy) -> list[str]:
        document = parse_yaml(text, source="p.yaml", error=PolicyError)
        with pytest.raises(PolicyError) as caught:
            validate_model(document, model, source="p.yaml", error=PolicyError)
        return [p.render("p.yaml") for p in caught.value.problems]

    def test_missing_field_is_reported_at_its_parent_mapping(self) -> None:
        text = (
            "policy_id: x\nroster:\n  - id: a\n    name: A\nstages:\n  - id: l\n    kind: launch\n"
        )
        assert self.validate(text) == ["p.yaml:3:5: roster[0]: missing required field 'roles'"]

    def test_unknown_field_suggests_the_closest_known_one(self) -> None:
        text = (
            "policy_id: x\nroster:\n  - {id: a, name: A, roles: [safety]}\nstages:\n"
            "  - id: g\n    kind: approval_gate\n    quorom:\n      - role: safety\n"
        )
        assert self.validate(text) == [
            "p.yaml:7:5: stages[0]: unknown field 'quorom' (did you mean 'quorum'?)"
        ]

    def test_discriminator_tags_never_appear_in_paths(self) -> None:
        text = (
            "policy_id: x\nroster:\n  - {id: a, name: A, roles: [safety]}\nstages:\n"
            "  - id: g\n    kind: approval_gate\n    quorum:\n      - role: safety\n"
            "        count: many\n"
        )
        assert self.validate(text) == [
            "p.yaml:9:9: stages[0].quorum[0].count: must be a whole number (got 'many')"
        ]

    def test_unknown_kind_lists_the_kinds(self) -> None:
        text = (
            "policy_id: x\nroster:\n  - {id: a, name: A, roles: [r]}\n"
            "stages:\n  - id: g\n    kind: aproval_gate\n"
        )
        [message] = self.validate(text)
        assert message.startswith("p.yaml:6:5: stages[0].kind: unknown kind 'aproval_gate'")
        assert "(did you mean 'approval_gate'?)" in message
        assert "government_window" in message

    def test_union_choices_are_merged_into_one_message(self) -> None:
        text = (
            "policy_id: x\nroster:\n  - {id: a, name: A, roles: [r]}\n"
            "stages:\n  - {id: l, kind: launch}\n"
            "notifications:\n  routes:\n    - events: [launchd]\n      to: {concerned: true}\n"
        )
        [message] = self.validate(text)
        assert message.startswith("p.yaml:8:16: notifications.routes[0].events[0]: must be one of")
        assert "*" in message
        assert message.endswith("(got 'launchd') (did you mean 'launched'?)")

    def test_numbers_where_text_is_wanted_suggest_quotes(self) -> None:
        text = (
            "policy_id: x\nversion: 2.0\nroster:\n  - {id: a, name: A, roles: [r]}\n"
            "stages:\n  - {id: l, kind: launch}\n"
        )
        assert self.validate(text) == [
            "p.yaml:2:1: version: must be text (got 2.0); put it in quotes"
        ]

    def test_model_validator_messages_are_located_by_their_field_prefix(self) -> None:
        item = "uri: u, sha256: " + "a" * 64
        text = (
            "release_id: r\nmodel: {name: m, version: '1'}\nartifact: {" + item + "}\n"
            "risk_tier: low\ncovered_model: not_designated\nsubmitter: s\nevidence:\n"
            "  - {id: e, kind: other, " + item + "}\n"
            "  - {id: e, kind: other, " + item + "}\n"
        )
        assert self.validate(text, ReleaseSpec) == ["p.yaml:9:6: evidence[1].id: 'e' appears twice"]
