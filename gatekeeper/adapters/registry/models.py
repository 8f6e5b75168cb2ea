"""What the access registry stores and answers, beyond the grant models in ``gatekeeper.models.io``.

These depend only on ``gatekeeper.models``, so the order models can move into ``models/io.py``
unchanged if workflows need to import them without the registry.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from gatekeeper.models.base import Identifier, Model, NonEmptyText, ShortText, Text
from gatekeeper.models.enums import NationalityStatus, VettingTier

_CODE = r"[a-z0-9][a-z0-9._-]{0,63}"
_SCOPE = re.compile(rf"^(foreign_persons|everyone|jurisdiction:{_CODE})$")
_MODEL = re.compile(rf"^(\*|{_CODE})$")


def _normalise_scope(value: object) -> object:
    # A bare code is a jurisdiction (as AccessSuspensionRequest.scope writes it).
    if isinstance(value, str):
        text = value.strip().lower()
        if text and text not in ("foreign_persons", "everyone") and ":" not in text:
            return f"jurisdiction:{text}"
        return text
    return value


def _check_scope(value: str) -> str:
    if not _SCOPE.match(value):
        raise ValueError("scope must be foreign_persons, everyone or jurisdiction:<code>")
    return value


def _check_models(value: list[str]) -> list[str]:
    for name in value:
        if not _MODEL.match(name):
            raise ValueError(f"{name!r} is not a model name or '*'")
    if "*" in value:
        return ["*"]
    return sorted(set(value))


#: ``foreign_persons``, ``everyone`` or ``jurisdiction:<code>`` (a bare code means a jurisdiction).
OrderScope = Annotated[str, BeforeValidator(_normalise_scope), AfterValidator(_check_scope)]
#: Model names an order covers; ``["*"]`` covers every model.
OrderModels = Annotated[list[str], Field(min_length=1), AfterValidator(_check_models)]


class Partner(Model):
    """A vetted partner organisation."""

    id: Identifier
    name: ShortText = ""
    tier: VettingTier
    jurisdiction: Identifier = Field(description="region code where the organisation is based")


class RegisteredPerson(Model):
    """A person who may use a model, usually on behalf of a partner organisation."""

    id: Identifier
    partner_id: Identifier | None = None
    nationality: NationalityStatus = NationalityStatus.UNKNOWN
    location: Identifier | None = Field(default=None, description="region code; None is unknown")


class AccessOrder(Model):
    """An export-control style order restricting access to models, as the registry holds it."""

    order_id: Identifier
    models: OrderModels
    scope: OrderScope
    exempt_partners: list[Identifier] = Field(default_factory=list)
    required_safeguards: list[ShortText] = Field(default_factory=list)
    reason: Text = ""
    issued_by: Identifier
    issued_at: datetime
    status: Literal["active", "lifted"] = "active"
    lifted_at: datetime | None = None
    lifted_by: Identifier | None = None
    lift_reason: Text = ""
    safeguards: list[ShortText] = Field(
        default_factory=list, description="safeguards in place when the order was lifted"
    )

    @property
    def suspension_scope(self) -> str:
        """The scope as ``AccessSuspensionRequest.scope`` writes it (a bare jurisdiction code)."""
        return self.scope.removeprefix("jurisdiction:")


class ApplyOrderRequest(Model):
    """Record an order and suspend the grants it covers. Idempotent by ``order_id``."""

    order_id: Identifier
    models: OrderModels
    scope: OrderScope
    exempt_partners: list[Identifier] = Field(default_factory=list)
    required_safeguards: list[ShortText] = Field(
        default_factory=list, description="safeguards a lift must confirm"
    )
    reason: NonEmptyText
    issued_by: Identifier
    issued_at: datetime


class ApplyOrderResult(Model):
    order: AccessOrder
    suspended: list[str] = Field(default_factory=list, description="grant ids this order suspended")
    affected_releases: list[Identifier] = Field(
        default_factory=list, description="releases holding unrevoked grants for the order's models"
    )


class LiftOrderRequest(Model):
    """Lift an order and restore the grants it suspended. Idempotent by ``order_id``."""

    order_id: Identifier
    lifted_by: Identifier
    safeguards: list[ShortText] = Field(default_factory=list)
    reason: NonEmptyText
    lifted_at: datetime


class LiftOrderResult(Model):
    order: AccessOrder
    restored: list[str] = Field(default_factory=list, description="grant ids active again")
    still_suspended: list[str] = Field(
        default_factory=list, description="grant ids another active order keeps suspended"
    )
    affected_releases: list[Identifier] = Field(default_factory=list)
