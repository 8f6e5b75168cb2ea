"""verify_evidence reports every item and heartbeats while hashing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.evidence import EvidenceActivities
from gatekeeper.adapters.evidence import LocalEvidenceVerifier
from gatekeeper.models.io import EvidenceCheckResult
from gatekeeper.models.spec import Artifact
from tests.adapters.builders import evidence_request, write_file


class TestVerifyEvidence:
    """Bad items (unreadable, refused) are results, not failures; only bad input fails the activity."""

    def test_reports_each_item(self, tmp_path: Path) -> None:
        digest = write_file(tmp_path / "weights.bin", b"w" * 3000)
        request = evidence_request(
            Artifact(uri=f"file://{tmp_path}/weights.bin", sha256=digest),
            ("card", f"file://{tmp_path}/missing.md", "c" * 64),
            ("report", "https://example.org/report.pdf", "d" * 64),
            ("shadow", "file:///etc/shadow", "e" * 64),
        )
        env = ActivityEnvironment()
        beats: list[tuple[object, ...]] = []
        env.on_heartbeat = lambda *details: beats.append(details)
        acts = EvidenceActivities(LocalEvidenceVerifier([tmp_path], chunk_size=1024))

        result = env.run(acts.verify_evidence, request)

        assert isinstance(result, EvidenceCheckResult)
        assert [c.result for c in result.checks] == ["ok", "unreadable", "unverified", "refused"]
        assert [c.id for c in result.failures] == ["card", "shadow"]
        assert result.checks[3].detail == "file:///etc/shadow is outside the evidence roots"
        assert len(beats) == 3

    def test_invalid_input_fails_for_good(self) -> None:
        acts = EvidenceActivities(LocalEvidenceVerifier())
        payload: Any = {"release_id": "Not An Id"}

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(acts.verify_evidence, payload)

        assert (caught.value.type, caught.value.non_retryable) == ("ValidationError", True)
