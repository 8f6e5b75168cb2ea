"""The local verifier re-hashes file:// evidence and reports every item, never raising."""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import quote

from gatekeeper.adapters.evidence import LocalEvidenceVerifier
from gatekeeper.models.spec import Artifact
from tests.adapters.builders import T0, evidence_request, write_file


def uri(path: Path) -> str:
    return "file://" + quote(str(path))


class TestResults:
    """Each item is ok, mismatch, unreadable or unverified; the artifact comes first."""

    def test_matching_digests_are_ok(self, tmp_path: Path) -> None:
        weights = write_file(tmp_path / "weights.bin", b"\x00" * 5000)
        card = write_file(tmp_path / "system card.md", "# Atlas 2 ü".encode())
        request = evidence_request(
            Artifact(uri=uri(tmp_path / "weights.bin"), sha256=weights),
            ("system-card", uri(tmp_path / "system card.md"), card),
        )

        result = LocalEvidenceVerifier(clock=lambda: T0).verify(request)

        assert [(c.id, c.result) for c in result.checks] == [
            ("artifact", "ok"),
            ("system-card", "ok"),
        ]
        assert result.checks[1].actual == card
        assert result.checks[1].checked_at == T0
        assert result.failures == []

    def test_changed_file_is_a_mismatch_with_the_actual_digest(self, tmp_path: Path) -> None:
        original = write_file(tmp_path / "report.pdf", b"v1")
        actual = write_file(tmp_path / "report.pdf", b"v2 - edited")
        request = evidence_request(
            Artifact(uri=uri(tmp_path / "report.pdf"), sha256=original),
        )

        [check] = LocalEvidenceVerifier().verify(request).checks

        assert check.result == "mismatch"
        assert check.expected == original
        assert check.actual == actual
        assert actual in check.detail

    def test_missing_file_and_directory_are_unreadable_with_the_reason(
        self, tmp_path: Path
    ) -> None:
        weights = write_file(tmp_path / "weights.bin", b"w")
        request = evidence_request(
            Artifact(uri=uri(tmp_path / "weights.bin"), sha256=weights),
            ("gone", uri(tmp_path / "gone.pdf"), "c" * 64),
            ("folder", uri(tmp_path), "c" * 64),
        )

        result = LocalEvidenceVerifier().verify(request)

        assert [c.result for c in result.checks] == ["ok", "unreadable", "unreadable"]
        assert "No such file" in result.checks[1].detail
        assert "directory" in result.checks[2].detail.lower()
        assert [c.id for c in result.failures] == ["gone", "folder"]

    def test_other_schemes_are_unverified_not_failures(self, tmp_path: Path) -> None:
        request = evidence_request(
            Artifact(uri="s3://weights/atlas-2.0/manifest.json", sha256="a" * 64),
            ("card", "https://example.org/card.pdf", "b" * 64),
            ("plain", "/no/scheme/report.pdf", "c" * 64),
        )

        result = LocalEvidenceVerifier().verify(request)

        assert [c.result for c in result.checks] == ["unverified"] * 3
        assert result.checks[0].detail.startswith("s3:")
        assert all("only file://" in c.detail for c in result.checks)
        assert all(c.actual is None for c in result.checks)
        assert result.failures == []

    def test_malformed_file_uris_are_unreadable(self, tmp_path: Path) -> None:
        request = evidence_request(
            Artifact(uri="file://fileserver/share/weights.bin", sha256="a" * 64),
            ("relative", "file:reports/card.pdf", "b" * 64),
        )

        result = LocalEvidenceVerifier().verify(request)

        assert [c.result for c in result.checks] == ["unreadable", "unreadable"]
        assert "fileserver" in result.checks[0].detail
        assert "absolute" in result.checks[1].detail


class TestReading:
    """Files are read in chunks, reporting progress; a root confines what may be read."""

    def test_reads_in_chunks_and_reports_each(self, tmp_path: Path) -> None:
        data = bytes(range(256)) * 40
        digest = write_file(tmp_path / "weights.bin", data)
        beats: list[None] = []
        request = evidence_request(Artifact(uri=uri(tmp_path / "weights.bin"), sha256=digest))

        [check] = (
            LocalEvidenceVerifier(chunk_size=1000)
            .verify(request, progress=lambda: beats.append(None))
            .checks
        )

        assert check.result == "ok"
        assert len(beats) == math.ceil(len(data) / 1000)

    def test_files_outside_the_root_are_not_read(self, tmp_path: Path) -> None:
        inside = write_file(tmp_path / "evidence" / "card.md", b"card")
        outside = write_file(tmp_path / "secret.txt", b"secret")
        request = evidence_request(
            Artifact(uri=uri(tmp_path / "evidence" / "card.md"), sha256=inside),
            ("escape", uri(tmp_path / "evidence" / ".." / "secret.txt"), outside),
        )

        result = LocalEvidenceVerifier(root=tmp_path / "evidence").verify(request)

        assert [c.result for c in result.checks] == ["ok", "unreadable"]
        assert "outside the evidence root" in result.checks[1].detail
        assert result.checks[1].actual is None
