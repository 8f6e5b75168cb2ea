"""Canonical JSON and digests: the one way Gatekeeper turns data into bytes it hashes or signs.

Audit chains, policy snapshots and signed decisions all hash "canonical JSON": keys sorted,
no insignificant white space, UTF-8, no NaN. Two parties that agree on the data agree on the
bytes, so a hash computed by the workflow can be recomputed by `gatekeeper audit verify`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` (plain JSON data or a pydantic model) to canonical JSON bytes."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def digest_of(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))
