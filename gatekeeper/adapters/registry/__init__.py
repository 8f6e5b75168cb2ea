"""The access registry: vetted partners, their people, grants per release, public launches and
access orders. The order models live in ``gatekeeper.models.orders`` and are re-exported here."""

from typing import TYPE_CHECKING, Any

from gatekeeper.adapters.registry.models import Partner, PublicLaunch, RegisteredPerson
from gatekeeper.models.orders import (
    AccessOrder,
    ApplyOrderRequest,
    ApplyOrderResult,
    ExemptOrderRequest,
    ExemptOrderResult,
    LiftOrderRequest,
    LiftOrderResult,
)

if TYPE_CHECKING:
    from gatekeeper.adapters.registry.service import AccessRegistry


def __getattr__(name: str) -> Any:
    # The service pulls in SQLAlchemy and alembic (half a second); load it only when asked for,
    # so that importing the registry's plain models (as every CLI command does) stays cheap.
    if name == "AccessRegistry":
        from gatekeeper.adapters.registry.service import AccessRegistry

        return AccessRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AccessOrder",
    "AccessRegistry",
    "ApplyOrderRequest",
    "ApplyOrderResult",
    "ExemptOrderRequest",
    "ExemptOrderResult",
    "LiftOrderRequest",
    "LiftOrderResult",
    "Partner",
    "PublicLaunch",
    "RegisteredPerson",
]
