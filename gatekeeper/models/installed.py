"""Installed policies as releases name them (``policy_id@version``) and as the worker resolves them.

A release's start input carries only a :data:`reference <PolicyRef>`; the worker resolves it
through its policy store (activity ``resolve_policy``) into an :class:`InstalledPolicy`, whose
content, sha256 and installer are then pinned in the release's history by the activity result.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import Field

from gatekeeper.errors import InputError
from gatekeeper.models.base import Identifier, Model
from gatekeeper.models.policy import Policy

#: ``policy_id@version``: a lower-case policy id, then the version as written in the policy.
POLICY_REF_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}@[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"
_POLICY_REF = re.compile(POLICY_REF_PATTERN)


def parse_policy_ref(text: str) -> tuple[str, str]:
    """``(policy_id, version)`` of ``policy_id@version``.

    Raises:
        InputError: (one line) ``text`` is not a reference.
    """
    if not _POLICY_REF.match(text):
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise InputError(
            f"policy reference {shown!r} is not ID@VERSION (e.g. frontier-release-standard@1)"
        )
    policy_id, version = text.split("@", 1)
    return policy_id, version


def policy_ref(policy_id: str, version: str) -> str:
    return f"{policy_id}@{version}"


class ResolvePolicyRequest(Model):
    """What the workflow asks the worker's policy store: a reference, or ``None`` for the default."""

    release_id: Identifier
    policy_ref: str | None = Field(default=None, max_length=130)


class InstalledPolicy(Model):
    """One installed policy version: immutable content, its sha256, and who installed it when."""

    policy_id: Identifier
    version: str = Field(max_length=200)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    installed_by: Identifier
    installed_at: datetime
    is_default: bool = False
    policy: Policy

    @property
    def ref(self) -> str:
        return policy_ref(self.policy_id, self.version)
