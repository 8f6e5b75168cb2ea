"""A registry with the standard partners and people (:func:`tests.registry.builders.populate`),
aurora 2 granted to the allied and government cohorts, a foreign-persons order on aurora and a
public launch of nova; and a running access service over it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from gatekeeper.access_service.server import Running
from gatekeeper.access_service.settings import ServiceSettings
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.adapters.registry.models import PublicLaunch
from gatekeeper.models.enums import Surface
from tests.access_service.service import running, service_settings
from tests.databases import sqlite_url
from tests.registry.builders import T0, grant_request, order, populate


def build_world(registry: AccessRegistry) -> None:
    populate(registry)
    registry.grant_for_cohorts(grant_request())
    registry.apply_order(order("ec-1"))
    registry.record_public_launch(
        PublicLaunch(
            release_id="nova-1",
            model_name="nova",
            model_version="1",
            surface=Surface.API,
            launch_id="nova-1-launch",
            published_at=T0 + timedelta(days=1),
        )
    )


@pytest.fixture
def world_url(tmp_path: Path) -> Iterator[str]:
    """A SQLite registry holding the world above."""
    url = sqlite_url(tmp_path / "registry.db")
    with AccessRegistry(url) as registry:
        build_world(registry)
    yield url


@pytest.fixture
def settings(world_url: str, tmp_path: Path) -> ServiceSettings:
    """A service over the world with one gateway token, every allow logged."""
    return service_settings(world_url, tmp_path, allow_sample=1.0)


@pytest.fixture
def service(settings: ServiceSettings) -> Iterator[Running]:
    with running(settings) as handle:
        yield handle
