"""YAML input files read into plain data, remembering the line and column of every field.

Policies and release specs are written by people, so every problem found in one names where it
is: ``policy.yaml:14:9: stages[0].quorum[1].count: ...``. Parsing goes through ``yaml.compose``
with the safe loader only; the node tree gives each field's position, and the same tree is then
constructed into plain Python data for pydantic to validate (:mod:`gatekeeper.yamlcheck` turns
what pydantic finds into problems at their line and column).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from gatekeeper.errors import OrderFileError, PolicyError, Problem, SpecError

#: Where a value sits in a document: mapping keys and list indexes, outermost first.
FieldPath = tuple[str | int, ...]
#: One-based (line, column).
Mark = tuple[int, int]
#: The error raised for a broken file: each input kind has its own.
FileError = type[PolicyError] | type[SpecError] | type[OrderFileError]
M = TypeVar("M", bound=BaseModel)

#: Policies and specs are a few kilobytes; anything near this is a mistake or an attack.
MAX_FILE_BYTES = 1_000_000
#: Ceiling on values after aliases are expanded, so ``&a [*a, *a, ...]`` bombs are refused.
MAX_VALUES = 100_000

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_PATH_PART = re.compile(r"([A-Za-z_][\w-]*)|\[(\d+)\]")


def format_path(path: Sequence[str | int]) -> str:
    """Render a field path the way people write it: ``stages[2].quorum[0].count``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def parse_path(text: str) -> FieldPath:
    """Inverse of :func:`format_path`."""
    return tuple(
        int(index) if index else name for name, index in _PATH_PART.findall(text) if name or index
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else the empty string."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def show_value(value: Any) -> str:
    """A short, human rendering of a value a person wrote, for ``(got ...)``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML mapping and the position of every key and list item in it.

    Attributes:
        data: the document as plain Python data (dicts, lists, scalars).
        marks: one-based (line, column) of each field path; for a mapping value, where its key is.
    """

    data: dict[str, Any]
    marks: Mapping[FieldPath, Mark]

    def locate(self, path: Sequence[str | int]) -> Mark | None:
        """Position of ``path``, or of its nearest ancestor that was written in the file.

        A missing field, or one filled in by a default, has no position of its own; its parent
        mapping is where a person has to look.
        """
        current = tuple(path)
        while True:
            mark = self.marks.get(current)
            if mark is not None or not current:
                return mark
            current = current[:-1]

    def problem(
        self, path: Sequence[str | int], message: str, *, at: Sequence[str | int] | None = None
    ) -> Problem:
        """A :class:`Problem` for ``path``, located at ``at`` (default: ``path`` itself)."""
        mark = self.locate(path if at is None else at)
        line, column = mark if mark else (None, None)
        return Problem(format_path(path), message, line, column)


def read_yaml_file(path: str | Path, *, error: FileError) -> YamlDocument:
    """Read and parse a YAML file; any problem raises ``error`` with its location."""
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise error(source, [Problem("", f"cannot read the file: {err.strerror or err}")]) from None
    return parse_yaml(raw, source=source, error=error)


def parse_yaml(raw: bytes | str, *, source: str, error: FileError) -> YamlDocument:
    """Parse YAML text whose top level must be a mapping.

    Refused, each as a located :class:`Problem` inside ``error``: bytes that are not UTF-8, an
    empty file, YAML syntax errors, a top level that is not a mapping, duplicate keys, keys that
    are not text, recursive aliases and alias bombs. Only the safe loader is ever used.
    """
    text = _decode(raw, source, error)
    if not text.strip():
        raise error(source, [Problem("", "the file is empty", 1, 1)])
    try:
        data, marks = _compose(text, source, error)
    except yaml.MarkedYAMLError as err:
        raise error(source, [_syntax_problem(err)]) from None
    except yaml.YAMLError as err:
        raise error(source, [_reader_problem(err, text)]) from None
    except _TooBig as err:
        raise error(source, [Problem("", str(err), err.mark[0], err.mark[1])]) from None
    except _BadValue as err:
        raise error(source, [err.problem]) from None
    except RecursionError:
        raise error(source, [Problem("", "the document is nested too deeply")]) from None
    return YamlDocument(data=data, marks=marks)


def _compose(
    text: str, source: str, error: FileError
) -> tuple[dict[str, Any], dict[FieldPath, Mark]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise error(source, [Problem("", "the file is empty (it holds only comments)", 1, 1)])
        if not isinstance(node, yaml.MappingNode):
            line, column = _mark(node)
            message = f"the top level must be a mapping of fields, not {_node_kind(node)}"
            raise error(source, [Problem("", message, line, column)])
        walker = _Walker()
        walker.walk(node, ())
        if walker.problems:
            raise error(source, walker.problems)
        _check_size(node, {}, set())
        loader.paths = walker.paths
        data = loader.construct_document(node)
    finally:
        loader.dispose()
    return data, walker.marks


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Distinct problems in file order (unlocated ones first, as they concern the whole file)."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.column or 0))


class _BadValue(Exception):
    """A scalar YAML itself cannot turn into a value (``2026-06-31``, ``!!int x``), located."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Loader(yaml.SafeLoader):
    """The safe loader, with a value it cannot construct reported where it is written.

    PyYAML's constructors raise plain ``ValueError`` (an impossible date, a bad ``!!int``),
    ``TypeError`` or ``AttributeError`` (a ``!!timestamp`` that is not one) with no position;
    this names the field and the line instead.
    """

    paths: Mapping[int, FieldPath] = {}

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (yaml.YAMLError, _BadValue, RecursionError):
            raise
        except Exception as err:  # every constructor failure is the file's fault
            raise _BadValue(_value_problem(node, err, self.paths.get(id(node), ()))) from None


def _value_problem(node: yaml.Node, err: Exception, path: FieldPath) -> Problem:
    line, column = _mark(node)
    written = show_value(node.value) if isinstance(node, yaml.ScalarNode) else "this value"
    # A ValueError says what is wrong ("day is out of range for month"); anything else is
    # PyYAML tripping over text that is not written as the value at all.
    reason = f" ({str(err).splitlines()[0]})" if isinstance(err, ValueError) and str(err) else ""
    if node.tag == "tag:yaml.org,2002:timestamp":
        message = f"{written} is not a real date or time{reason}"
    else:
        message = f"{written} cannot be read as {node.tag.rsplit(':', 1)[-1]}{reason}"
    return Problem(format_path(path), message, line, column)


class _TooBig(Exception):
    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.mark = mark


class _Walker:
    """Records each key's and item's position; flags duplicate and non-text keys."""

    def __init__(self) -> None:
        self.marks: dict[FieldPath, Mark] = {(): (1, 1)}
        #: The field path of each node (by ``id``), for problems found while constructing.
        self.paths: dict[int, FieldPath] = {}
        self.problems: list[Problem] = []
        self._visited: set[int] = set()

    def walk(self, node: yaml.Node, path: FieldPath) -> None:
        # An aliased node is walked once; paths through later aliases fall back to the alias.
        if id(node) in self._visited:
            return
        self._visited.add(id(node))
        self.paths[id(node)] = path
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.marks[(*path, index)] = _mark(item)
                self.walk(item, (*path, index))
        elif isinstance(node, yaml.MappingNode):
            self._walk_mapping(node, path)

    def _walk_mapping(self, node: yaml.MappingNode, path: FieldPath) -> None:
        first: dict[str, Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            mark = _mark(key_node)
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                message = f"key {shown!r} is not text to YAML; put it in quotes"
                self.problems.append(Problem(format_path(path), message, *mark))
                continue
            key = str(key_node.value)
            if key in first:
                message = f"duplicate key '{key}' (first written on line {first[key][0]})"
                self.problems.append(Problem(format_path((*path, key)), message, *mark))
                continue
            first[key] = mark
            self.marks[(*path, key)] = mark
            self.walk(value_node, (*path, key))


def _check_size(node: yaml.Node, sizes: dict[int, int], active: set[int]) -> int:
    """Number of values ``node`` stands for once aliases are expanded."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in active:
        raise _TooBig("an alias refers to a value that contains it (recursive alias)", _mark(node))
    active.add(key)
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_check_size(item, sizes, active) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            total += _check_size(key_node, sizes, active) + _check_size(value_node, sizes, active)
    active.discard(key)
    if total > MAX_VALUES:
        message = f"the document expands to more than {MAX_VALUES} values (too many aliases?)"
        raise _TooBig(message, _mark(node))
    sizes[key] = total
    return total


def _decode(raw: bytes | str, source: str, error: FileError) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise error(source, [Problem("", f"the file is larger than {MAX_FILE_BYTES} bytes")])
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw.count(b"\n", 0, err.start) + 1
            column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
            message = f"not UTF-8 text: byte 0x{raw[err.start]:02x} cannot be decoded"
            raise error(source, [Problem("", message, line, column)]) from None
    return text.removeprefix("\ufeff")


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _node_kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        return f"the single value {show_value(node.value)}"
    return "a mapping"


def _syntax_problem(err: yaml.MarkedYAMLError) -> Problem:
    mark = err.problem_mark or err.context_mark
    what = err.problem or err.context or "cannot be parsed"
    if err.context and err.problem:
        # PyYAML splits one sentence in two: "expected a single document", "but found another".
        joined = err.problem.startswith("but ")
        what = f"{err.context}, {err.problem}" if joined else f"{err.problem} ({err.context})"
    line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
    return Problem("", f"invalid YAML: {what}", line, column)


def _reader_problem(err: yaml.YAMLError, text: str) -> Problem:
    position = getattr(err, "position", None)
    if isinstance(position, int):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        character = getattr(err, "character", None)
        what = f"character #x{character:04x}" if isinstance(character, int) else "a character"
        return Problem("", f"invalid YAML: {what} is not allowed in YAML text", line, column)
    return Problem("", f"invalid YAML: {err}")
