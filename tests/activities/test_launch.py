"""publish_launch publishes once per key and types its failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.launch import LaunchActivities
from gatekeeper.adapters.launch import DatabaseLaunchPublisher
from gatekeeper.models.io import LaunchReceipt
from tests.adapters.builders import launch


class TestPublishLaunch:
    """A retry returns the first launch; an unreachable database is retried."""

    def test_publishes_once(self, launcher: DatabaseLaunchPublisher) -> None:
        acts = LaunchActivities(launcher)
        env = ActivityEnvironment()

        first = env.run(acts.publish_launch, launch())
        retry = env.run(acts.publish_launch, launch())

        assert isinstance(first, LaunchReceipt)
        assert retry == first
        stored = launcher.launch(launch().idempotency_key)
        assert stored is not None and stored.launch_id == first.launch_id

    def test_an_unreachable_database_is_retryable(
        self, launcher: DatabaseLaunchPublisher, break_database: Callable[[Any], None]
    ) -> None:
        acts = LaunchActivities(launcher)
        break_database(launcher)

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(acts.publish_launch, launch())

        assert (caught.value.type, caught.value.non_retryable) == ("RegistryError", False)
