"""Pydantic's validation errors as located problems written for people.

A policy, spec or order file is parsed by :mod:`gatekeeper.yamlfile` into a
:class:`~gatekeeper.yamlfile.YamlDocument` (plain data plus the position of every field);
:func:`validate_model` validates it as a model and turns each error into a
:class:`~gatekeeper.errors.Problem` at the line and column it concerns: ``missing required
field``, ``unknown field 'x' (did you mean 'y'?)``, ``must be one of ...``, bounds and patterns
said in words.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from gatekeeper.errors import Problem
from gatekeeper.yamlfile import (
    FieldPath,
    FileError,
    YamlDocument,
    did_you_mean,
    parse_path,
    show_value,
    sort_problems,
)

M = TypeVar("M", bound=BaseModel)

_PREFIXED_MESSAGE = re.compile(
    r"^([A-Za-z_][\w-]*(?:\[\d+\])*(?:\.[A-Za-z_][\w-]*(?:\[\d+\])*)*): (.+)$"
)
_QUOTED = re.compile(r"'([^']*)'")
_BOUNDS = {
    "greater_than_equal": ("at least", "ge"),
    "greater_than": ("more than", "gt"),
    "less_than_equal": ("at most", "le"),
    "less_than": ("less than", "lt"),
}


def validate_model(document: YamlDocument, model: type[M], *, source: str, error: FileError) -> M:
    """Validate ``document`` as ``model``; every validation error raises ``error``, located."""
    try:
        return model.model_validate(document.data)
    except ValidationError as err:
        raise error(source, validation_problems(err, document, model)) from None


def validation_problems(
    err: ValidationError, document: YamlDocument, model: type[BaseModel] | None = None
) -> list[Problem]:
    """Turn pydantic's errors into located problems with messages meant for people.

    ``model`` (the model that was validated) lets an unknown field suggest the closest known one.
    """
    problems: list[Problem] = []
    choices: dict[FieldPath, tuple[Any, list[str]]] = {}
    for item in err.errors(include_url=False):
        loc = tuple(item["loc"])
        kind = item["type"]
        ctx = item.get("ctx") or {}
        value = item.get("input")
        path = _resolve(document.data, loc)
        if kind == "missing":
            problems.append(document.problem(path, f"missing required field '{loc[-1]}'"))
        elif kind == "extra_forbidden":
            name = str(loc[-1])
            parent = path[:-1] if path and path[-1] == name else path
            known = _field_names(model, loc[:-1])
            message = f"unknown field '{name}'{did_you_mean(name, known)}"
            problems.append(document.problem(parent, message, at=path))
        elif kind in ("enum", "literal_error"):
            _, seen = choices.setdefault(path, (value, []))
            seen.extend(v for v in _QUOTED.findall(str(ctx.get("expected", ""))) if v not in seen)
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            problems.append(_tag_problem(document, path, kind, ctx))
        elif kind in ("value_error", "assertion_error"):
            problems.append(
                _value_error_problem(document, path, str(ctx.get("error", item["msg"])))
            )
        else:
            problems.append(document.problem(path, _describe(kind, ctx, value, item["msg"])))
    for path, (value, expected) in choices.items():
        message = f"must be one of {', '.join(expected)} (got {show_value(value)})"
        if isinstance(value, str):
            message += did_you_mean(value, expected)
        problems.append(document.problem(path, message))
    return sort_problems(problems)


def _resolve(data: Any, loc: Sequence[str | int]) -> FieldPath:
    """The part of a pydantic ``loc`` that names real places in ``data``.

    pydantic adds the tag of a discriminated union (``stages.2.approval_gate.quorum``) and the
    member of a plain union (``events.0.literal['*']``); neither is in the file.
    """
    path: list[str | int] = []
    current = data
    for part in loc:
        if isinstance(current, dict):
            if part in current:
                path.append(part)
                current = current[part]
                continue
            if current.get("kind") == part:
                continue
            break
        if isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
            continue
        break
    return tuple(path)


def _field_names(model: type[BaseModel] | None, loc: Sequence[str | int]) -> list[str]:
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part) if isinstance(part, str) else None
            current = info.annotation if info else None
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) in (Union, types.UnionType):
            current = next((m for m in get_args(current) if _kind_default(m) == part), None)
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _kind_default(member: Any) -> Any:
    if isinstance(member, type) and issubclass(member, BaseModel):
        info = member.model_fields.get("kind")
        return info.default if info else None
    return None


def _tag_problem(
    document: YamlDocument, path: FieldPath, kind: str, ctx: Mapping[str, Any]
) -> Problem:
    field = str(ctx.get("discriminator", "kind")).strip("'")
    if kind == "union_tag_not_found":
        return document.problem(path, f"missing required field '{field}'")
    tag = str(ctx.get("tag", ""))
    expected = _QUOTED.findall(str(ctx.get("expected_tags", "")))
    message = f"unknown {field} '{tag}'{did_you_mean(tag, expected)}; expected one of "
    return document.problem((*path, field), message + ", ".join(expected))


def _value_error_problem(document: YamlDocument, path: FieldPath, text: str) -> Problem:
    # Model validators name the offending field as a prefix: "evidence[1].id: 'x' appears twice".
    text = text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    match = _PREFIXED_MESSAGE.match(text)
    if match:
        return document.problem((*path, *parse_path(match.group(1))), match.group(2))
    return document.problem(path, text)


def _describe(kind: str, ctx: Mapping[str, Any], value: Any, default: str) -> str:
    got = f"(got {show_value(value)})"
    if kind == "string_type":
        # YAML turns unquoted 2.0, 2026-07-01 and yes into numbers, dates and booleans.
        hint = "; put it in quotes" if isinstance(value, int | float | bool | date) else ""
        return f"must be text {got}{hint}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        length = len(value) if isinstance(value, str) else "?"
        return f"must be at most {ctx.get('max_length')} characters (got {length})"
    if kind == "string_pattern_mismatch":
        return _pattern_message(str(ctx.get("pattern", "")), got)
    if kind == "too_short":
        count = ctx.get("min_length")
        return f"must have at least {count} item{'s' if count != 1 else ''}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items (got {ctx.get('actual_length')})"
    if kind == "list_type":
        return f"must be a list {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of fields {got}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be a whole number {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false {got}"
    if kind in _BOUNDS:
        words, key = _BOUNDS[kind]
        return f"must be {words} {ctx.get(key)} {got}"
    if kind in ("time_delta_type", "time_delta_parsing"):
        return f"must be a duration such as 30d, 12h, 1d12h or 90s {got}"
    return f"{default[:1].lower()}{default[1:]} {got}"


def _pattern_message(pattern: str, got: str) -> str:
    if "[0-9a-f]{64}" in pattern:
        return f"must be a sha256 digest: 64 lower-case hexadecimal characters {got}"
    if "[a-z0-9._-]" in pattern:
        return (
            "must be an identifier: lower-case letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit, at most 64 characters {got}"
        )
    return f"must match {pattern} {got}"
