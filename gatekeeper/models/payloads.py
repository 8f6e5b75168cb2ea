"""One way to read a request and one way to refuse it.

Every update takes its payload as plain JSON. The workflow's validator (for any Temporal client:
the ``temporal`` CLI, another SDK) and our CLI (before it sends anything) both parse it with
:func:`parse_request`, so a malformed request gets the same one-line refusal either way::

    bad input for approve: role: field required
    bad input for approve: comment: at most 2000 characters
    bad input for hold: until: a date with a time zone is needed
    bad input for approve: unknown field 'x'
    bad input for approve: expected a JSON object, got an array

The rule type of that refusal is :data:`BAD_INPUT`. The text never repeats the value sent (it may
be large, or a secret); field names that came from the sender are escaped and shortened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue

from gatekeeper.codec_refusals import is_refused, update_refusal
from gatekeeper.errors import BadInput

#: The rule type of every refusal of a malformed payload.
BAD_INPUT = "bad_input"

#: How much of a sender-chosen field name a message repeats.
MAX_NAME = 40
#: The longest message a refusal carries (it is one line; this keeps it short too).
MAX_MESSAGE = 300

M = TypeVar("M", bound=BaseModel)


def json_kind(value: Any) -> str:
    """What a JSON value is, in words: ``an object``, ``an array``, ``a string``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict | BaseModel):
        return "an object"
    return f"a {type(value).__name__}"


def show(name: str) -> str:
    """A name the sender chose, safe to print: no control characters, at most MAX_NAME long."""
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in name)
    return shown if len(shown) <= MAX_NAME else shown[: MAX_NAME - 1] + "…"


def field_path(loc: Sequence[int | str]) -> str:
    """``evidence[0].uri`` from pydantic's ``('evidence', 0, 'uri')``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + show(part)
    return path


_KNOWN_PATTERNS = {
    "^[a-z0-9][a-z0-9._-]{0,63}$": (
        "must be an id: lower-case letters, digits, '.', '_', '-' (at most 64)"
    ),
    "^(\\*|[a-z0-9][a-z0-9._-]{0,63})$": "must be an id or '*'",
    "^[0-9a-f]{64}$": "must be a sha256: 64 lower-case hex digits",
}

_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "an array",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
}


def problem(error: ErrorDetails) -> str:
    """One pydantic error as ``field: what is wrong`` (or just what is wrong, at the top)."""
    kind = error["type"]
    loc = tuple(error["loc"])
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    got = error.get("input")
    if kind == "extra_forbidden":
        name = loc[-1] if loc else "?"
        loc = loc[:-1]
        message = f"unknown field '{show(str(name))}'"
    elif kind == "missing":
        message = "field required"
    elif kind in _EXPECTED:
        message = f"expected {_EXPECTED[kind]}, got {json_kind(got)}"
    elif kind == "string_too_long":
        message = f"at most {ctx.get('max_length')} characters"
    elif kind == "string_too_short":
        least = ctx.get("min_length")
        message = "must not be empty" if least == 1 else f"at least {least} characters"
    elif kind == "too_long":
        message = f"at most {ctx.get('max_length')} items"
    elif kind == "too_short":
        least = ctx.get("min_length")
        message = "must not be empty" if least == 1 else f"at least {least} items"
    elif kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        message = _KNOWN_PATTERNS.get(pattern, f"must match {pattern}")
    elif kind == "timezone_aware":
        message = "a date with a time zone is needed"
    elif kind.startswith(("datetime_", "date_")):
        message = "expected a date and time with a time zone, e.g. 2026-12-31T17:00:00Z"
    elif kind in ("enum", "literal_error"):
        message = f"must be one of {ctx.get('expected')}"
    elif kind == "json_invalid":
        message = f"not valid JSON ({ctx.get('error', 'unreadable')})"
    elif kind in ("value_error", "assertion_error"):
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"]
    where = field_path(loc)
    return f"{where}: {message}" if where else message


def one_line(err: ValidationError, update: str | None = None) -> str:
    """The refusal of a payload that failed ``err``: one line, the first problem, its field."""
    errors = err.errors(include_url=False)
    first = problem(errors[0]) if errors else "invalid"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    prefix = f"bad input for {update}: " if update else ""
    text = " ".join(f"{prefix}{first}{more}".split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def parse_request(model: type[M], payload: Any, update: str) -> M:
    """Validate one request: a dict of fields (our CLI), or the JSON bytes a client sent.

    Raises:
        BadInput: one line naming the update and the field, for every malformed payload.
    """
    try:
        if isinstance(payload, bytes | bytearray):
            return model.model_validate_json(payload)
        return model.model_validate(payload)
    except ValidationError as err:
        raise BadInput(one_line(err, update)) from None


#: The default of every update's parameter: what the handler sees when a client sent nothing.
NO_ARGUMENT = RawValue(Payload())


def parse_payload(model: type[M], raw: RawValue, update: str) -> M:
    """Validate the argument of an update as the worker received it: the payload untouched by
    any converter (the handler's parameter is a ``RawValue``, so decoding never fails first).

    Raises:
        BadInput: one line naming the update and the field, for every malformed payload.
        Refused: the codec refused the payload: ``plaintext_refused`` (not encrypted while
            encryption is on) or ``undecryptable_payload`` (see :mod:`gatekeeper.codec`).
    """
    payload = raw.payload
    if is_refused(payload):  # the codec refused it: plaintext, or a payload that does not decrypt
        raise update_refusal(payload)
    encoding = payload.metadata.get("encoding", b"").decode("utf-8", "replace")
    if encoding == "binary/null":
        return parse_request(model, None, update)
    if encoding != "json/plain":
        got = (
            "nothing"
            if raw is NO_ARGUMENT or not (encoding or payload.data)
            else f"a payload encoded '{show(encoding)}'"
        )
        raise BadInput(f"bad input for {update}: expected a JSON object, got {got}")
    return parse_request(model, bytes(payload.data), update)
