"""What the access registry stores and answers, beyond the grant models in ``gatekeeper.models.io``
and the order models in ``gatekeeper.models.orders``."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from gatekeeper.models.base import Identifier, Model, ShortText
from gatekeeper.models.enums import NationalityStatus, Surface, VettingTier


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


class PublicLaunch(Model):
    """A model version published to the public on one surface by a release's launch."""

    release_id: Identifier
    model_name: Identifier
    model_version: ShortText
    surface: Surface
    launch_id: ShortText
    published_at: datetime
