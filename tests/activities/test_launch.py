"""publish_launch publishes once per key and types its failures."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.launch import LaunchActivities
from gatekeeper.adapters.launch import FileDropLaunchPublisher
from gatekeeper.models.io import LaunchReceipt
from tests.adapters.builders import launch


class TestPublishLaunch:
    """A retry returns the first launch; a broken drop is retried."""

    def test_publishes_once(self, tmp_path: Path) -> None:
        acts = LaunchActivities(FileDropLaunchPublisher(tmp_path))
        env = ActivityEnvironment()

        first = env.run(acts.publish_launch, launch())
        retry = env.run(acts.publish_launch, launch())

        assert isinstance(first, LaunchReceipt)
        assert retry == first
        assert len(list(tmp_path.iterdir())) == 1

    def test_unwritable_drop_is_retryable(self, tmp_path: Path) -> None:
        (tmp_path / "drop").write_text("not a directory")
        acts = LaunchActivities(FileDropLaunchPublisher(tmp_path / "drop"))

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(acts.publish_launch, launch())

        assert (caught.value.type, caught.value.non_retryable) == ("AdapterError", False)
