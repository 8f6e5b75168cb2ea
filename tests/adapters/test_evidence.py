"""The local verifier re-hashes file:// evidence under its roots and reports every item, never
raising; whatever its rules forbid is refused in one line that says nothing about the file."""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from gatekeeper.adapters.evidence import LocalEvidenceVerifier, format_bytes
from gatekeeper.config import EvidenceSettings, WorkerConfig, load_worker_config
from gatekeeper.errors import ConfigError
from gatekeeper.models.io import EvidenceCheckResult
from gatekeeper.models.spec import Artifact
from tests.adapters.builders import T0, evidence_request, write_file


def uri(path: Path | str) -> str:
    return "file://" + quote(str(path))


def verify_one(verifier: LocalEvidenceVerifier, location: str, digest: str = "c" * 64) -> Any:
    """The one check of a request whose only item is its artifact."""
    [check] = verifier.verify(evidence_request(Artifact(uri=location, sha256=digest))).checks
    return check


def within(seconds: float, call: Callable[[], EvidenceCheckResult]) -> EvidenceCheckResult:
    """Run ``call`` in a thread and fail (instead of hanging the suite) if it blocks."""
    done: list[EvidenceCheckResult] = []
    thread = threading.Thread(target=lambda: done.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert done, f"the verifier was still blocked after {seconds} s"
    return done[0]


class TestResults:
    """Each item is ok, mismatch, unreadable, refused or unverified; the artifact comes first."""

    def test_matching_digests_are_ok(self, tmp_path: Path) -> None:
        weights = write_file(tmp_path / "weights.bin", b"\x00" * 5000)
        card = write_file(tmp_path / "system card.md", "# Atlas 2 ü".encode())
        request = evidence_request(
            Artifact(uri=uri(tmp_path / "weights.bin"), sha256=weights),
            ("system-card", uri(tmp_path / "system card.md"), card),
        )

        result = LocalEvidenceVerifier([tmp_path], clock=lambda: T0).verify(request)

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

        check = verify_one(
            LocalEvidenceVerifier([tmp_path]), uri(tmp_path / "report.pdf"), original
        )

        assert check.result == "mismatch"
        assert check.expected == original
        assert check.actual == actual
        assert actual in check.detail

    def test_a_missing_file_under_a_root_is_unreadable_with_the_reason(
        self, tmp_path: Path
    ) -> None:
        location = uri(tmp_path / "gone.pdf")

        check = verify_one(LocalEvidenceVerifier([tmp_path]), location)

        assert (check.result, check.detail) == (
            "unreadable",
            f"cannot read {location}: No such file or directory",
        )
        assert check.failed

    def test_accepted_remote_schemes_are_unverified_not_failures(self) -> None:
        request = evidence_request(
            Artifact(uri="s3://weights/atlas-2.0/manifest.json", sha256="a" * 64),
            ("card", "https://example.org/card.pdf", "b" * 64),
            ("legacy", "HTTP://example.org/report.pdf", "b" * 64),
        )

        result = LocalEvidenceVerifier().verify(request)

        assert [c.result for c in result.checks] == ["unverified"] * 3
        assert result.checks[0].detail.startswith("s3: accepted but not fetched")
        assert all("only file://" in c.detail for c in result.checks)
        assert all(c.actual is None for c in result.checks)
        assert result.failures == []

    @pytest.mark.parametrize(
        ("location", "detail"),
        [
            (
                "ftp://example.org/card.pdf",
                "ftp://example.org/card.pdf: scheme 'ftp' is not accepted (accepted: file, https)",
            ),
            (
                "data:text/plain,hello",
                "data:text/plain,hello: scheme 'data' is not accepted (accepted: file, https)",
            ),
            (
                "/no/scheme/report.pdf",
                "/no/scheme/report.pdf has no scheme (local files are file:// URIs)",
            ),
        ],
    )
    def test_schemes_not_configured_are_refused(self, location: str, detail: str) -> None:
        verifier = LocalEvidenceVerifier(schemes=["file", "https"])

        check = verify_one(verifier, location)

        assert (check.result, check.detail, check.actual) == ("refused", detail, None)
        assert check.failed

    def test_file_uris_are_refused_when_file_is_not_a_configured_scheme(
        self, tmp_path: Path
    ) -> None:
        digest = write_file(tmp_path / "card.md", b"card")
        location = uri(tmp_path / "card.md")

        check = verify_one(LocalEvidenceVerifier([tmp_path], schemes=["https"]), location, digest)

        assert check.result == "refused"
        assert check.detail == f"{location}: scheme 'file' is not accepted (accepted: https)"

    @pytest.mark.parametrize(
        ("location", "rule"),
        [
            ("file://fileserver/share/weights.bin", "names a host; only local files are read"),
            ("file:reports/card.pdf", "is not an absolute path"),
            ("file:///srv/card.pdf?v=2", "has a query or fragment; a file URI names only a path"),
            ("file:///srv/card%00.pdf", "is not a valid path"),
        ],
    )
    def test_malformed_file_uris_are_refused(self, location: str, rule: str) -> None:
        check = verify_one(LocalEvidenceVerifier([Path("/srv")]), location)

        assert (check.result, check.detail) == ("refused", f"{location} {rule}")

    def test_control_characters_are_refused_in_one_line(self, tmp_path: Path) -> None:
        digest = write_file(tmp_path / "card.md", b"card")
        location = uri(tmp_path) + "/ca\nrd.md\r\n# injected"
        # Requests refuse such a URI already (ShortText: no control characters); the verifier
        # refuses it again, for a request that skipped validation.
        unchecked = Artifact.model_construct(uri=location, sha256=digest)

        [check] = LocalEvidenceVerifier([tmp_path]).verify(evidence_request(unchecked)).checks

        assert (check.result, check.actual) == ("refused", None)
        assert check.detail == (
            f"{uri(tmp_path)}/ca\\x0ard.md\\x0d\\x0a# injected contains control characters"
        )
        assert check.detail.isprintable()


class TestRoots:
    """Only files under the roots are read; `..` and symlinks are resolved before the check, and a
    path outside the roots is refused before anything touches the filesystem."""

    def test_a_file_outside_the_roots_is_refused_without_its_digest(self, tmp_path: Path) -> None:
        secret = write_file(tmp_path / "secret.txt", b"secret")
        location = uri(tmp_path / "secret.txt")

        check = verify_one(LocalEvidenceVerifier([tmp_path / "evidence"]), location)

        assert check.result == "refused"
        assert check.detail == f"{location} is outside the evidence roots"
        assert check.actual is None
        assert secret not in check.model_dump_json()

    def test_no_roots_means_no_file_is_read(self, tmp_path: Path) -> None:
        digest = write_file(tmp_path / "card.md", b"card")

        check = verify_one(LocalEvidenceVerifier(), uri(tmp_path / "card.md"), digest)

        assert (check.result, check.actual) == ("refused", None)
        assert check.detail.endswith("is outside the evidence roots")

    @pytest.mark.parametrize(
        "escape",
        ["evidence/../secret.txt", "evidence/%2e%2e/secret.txt", "evidence//../secret.txt"],
    )
    def test_dot_dot_cannot_leave_a_root(self, tmp_path: Path, escape: str) -> None:
        write_file(tmp_path / "evidence" / "card.md", b"card")
        secret = write_file(tmp_path / "secret.txt", b"secret")
        location = f"file://{quote(str(tmp_path))}/{escape}"

        check = verify_one(LocalEvidenceVerifier([tmp_path / "evidence"]), location, secret)

        assert (check.result, check.detail) == (
            "refused",
            f"{location} is outside the evidence roots",
        )

    def test_a_symlink_inside_a_root_pointing_outside_is_refused(self, tmp_path: Path) -> None:
        root = tmp_path / "evidence"
        secret = write_file(tmp_path / "secret.txt", b"secret")
        root.mkdir()
        (root / "card.md").symlink_to(tmp_path / "secret.txt")
        (root / "dir").symlink_to(tmp_path)
        (root / "dangling.md").symlink_to(tmp_path / "no-such-file")
        (root / "out").symlink_to(tmp_path)
        names = ("card.md", "dir/secret.txt", "dangling.md", "out/../secret.txt")
        verifier = LocalEvidenceVerifier([root])

        checks = [verify_one(verifier, uri(root / name), secret) for name in names]

        # The same answer whether the target exists or not: no existence oracle.
        assert [(c.result, c.actual) for c in checks] == [("refused", None)] * len(names)
        assert [c.detail for c in checks] == [
            f"{uri(root / name)} is outside the evidence roots" for name in names
        ]

    def test_a_symlink_that_stays_inside_the_roots_is_followed(self, tmp_path: Path) -> None:
        digest = write_file(tmp_path / "store" / "v2" / "card.md", b"card v2")
        (tmp_path / "store" / "current").symlink_to(tmp_path / "store" / "v2")

        check = verify_one(
            LocalEvidenceVerifier([tmp_path / "store"]),
            uri(tmp_path / "store" / "current" / "card.md"),
            digest,
        )

        assert check.result == "ok"

    def test_a_root_named_through_a_symlink_reads_its_files_by_either_path(
        self, tmp_path: Path
    ) -> None:
        digest = write_file(tmp_path / "real" / "card.md", b"card")
        (tmp_path / "alias").symlink_to(tmp_path / "real")
        verifier = LocalEvidenceVerifier([tmp_path / "alias"])

        checks = [
            verify_one(verifier, uri(tmp_path / where / "card.md"), digest)
            for where in ("alias", "real")
        ]

        assert [c.result for c in checks] == ["ok", "ok"]
        assert list(verifier.roots) == [(tmp_path / "real").resolve()]

    def test_a_path_outside_the_roots_is_never_looked_at(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        outside = tmp_path / "outside"
        write_file(outside / "secret.txt", b"secret")
        verifier = LocalEvidenceVerifier([tmp_path / "evidence"])
        touched: list[str] = []

        def spy(real: Callable[..., Any]) -> Callable[..., Any]:
            def call(path: Any, *args: Any, **kwargs: Any) -> Any:
                touched.append(os.fsdecode(path) if isinstance(path, str | bytes | Path) else "")
                return real(path, *args, **kwargs)

            return call

        for name in ("stat", "lstat", "open", "readlink"):
            monkeypatch.setattr(os, name, spy(getattr(os, name)))
        checks = [
            verify_one(verifier, uri(outside / name)) for name in ("secret.txt", "no-such-file")
        ]
        monkeypatch.undo()

        assert [c.result for c in checks] == ["refused", "refused"]
        assert [p for p in touched if str(outside) in p] == []

    def test_the_worker_reads_the_data_directory_and_the_configured_roots(
        self, tmp_path: Path
    ) -> None:
        data_digest = write_file(tmp_path / "data" / "card.md", b"in data")
        extra_digest = write_file(tmp_path / "srv" / "report.md", b"in srv")
        other = write_file(tmp_path / "home" / "notes.md", b"elsewhere")
        settings = EvidenceSettings(roots=[tmp_path / "srv"], max_bytes=100, schemes=["file"])
        verifier = LocalEvidenceVerifier.from_settings(settings, tmp_path / "data")

        result = verifier.verify(
            evidence_request(
                Artifact(uri=uri(tmp_path / "data" / "card.md"), sha256=data_digest),
                ("report", uri(tmp_path / "srv" / "report.md"), extra_digest),
                ("notes", uri(tmp_path / "home" / "notes.md"), other),
                ("remote", "https://example.org/x.pdf", other),
            )
        )

        assert [c.result for c in result.checks] == ["ok", "ok", "refused", "refused"]


class TestLimits:
    """Only regular files, up to max_bytes, within the time limit; nothing can block the reader."""

    def test_a_fifo_is_refused_at_once(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "pipe")
        verifier = LocalEvidenceVerifier([tmp_path])
        request = evidence_request(Artifact(uri=uri(tmp_path / "pipe"), sha256="c" * 64))

        [check] = within(5, lambda: verifier.verify(request)).checks

        assert (check.result, check.detail) == (
            "refused",
            f"{uri(tmp_path / 'pipe')} is not a regular file",
        )

    @pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
    def test_devices_are_refused_even_under_a_root(self, device: str) -> None:
        verifier = LocalEvidenceVerifier([Path("/dev")])
        request = evidence_request(Artifact(uri=f"file://{device}", sha256="c" * 64))

        [check] = within(5, lambda: verifier.verify(request)).checks

        assert (check.result, check.detail, check.actual) == (
            "refused",
            f"file://{device} is not a regular file",
            None,
        )

    def test_a_directory_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "folder").mkdir()

        check = verify_one(LocalEvidenceVerifier([tmp_path]), uri(tmp_path / "folder"))

        assert (check.result, check.detail) == (
            "refused",
            f"{uri(tmp_path / 'folder')} is not a regular file",
        )

    def test_a_file_over_the_size_limit_is_refused_without_its_digest(self, tmp_path: Path) -> None:
        exact = write_file(tmp_path / "exact.bin", b"x" * 1024)
        over = write_file(tmp_path / "over.bin", b"x" * 1025)
        verifier = LocalEvidenceVerifier([tmp_path], max_bytes=1024)

        result = verifier.verify(
            evidence_request(
                Artifact(uri=uri(tmp_path / "exact.bin"), sha256=exact),
                ("over", uri(tmp_path / "over.bin"), over),
            )
        )

        assert [c.result for c in result.checks] == ["ok", "refused"]
        assert result.checks[1].detail == f"{uri(tmp_path / 'over.bin')} is larger than 1 KiB"
        assert result.checks[1].actual is None

    def test_reading_stops_at_the_limit_when_a_file_grows(self, tmp_path: Path) -> None:
        path = tmp_path / "growing.bin"
        write_file(path, b"x" * 1000)

        def grow() -> None:
            with path.open("ab") as handle:
                handle.write(b"y" * 1000)

        verifier = LocalEvidenceVerifier([tmp_path], max_bytes=1500, chunk_size=1000)
        request = evidence_request(Artifact(uri=uri(path), sha256="c" * 64))

        [check] = verifier.verify(request, progress=grow).checks

        assert (check.result, check.detail) == (
            "refused",
            f"{uri(path)} is larger than 1,500 bytes",
        )

    def test_hashing_past_the_time_limit_is_refused(self, tmp_path: Path) -> None:
        first = write_file(tmp_path / "weights.bin", b"w" * 10_000)
        second = write_file(tmp_path / "card.md", b"card")
        ticks = itertools.count()  # every look at the clock is one second later
        verifier = LocalEvidenceVerifier(
            [tmp_path], hash_timeout=2.5, chunk_size=1000, monotonic=lambda: float(next(ticks))
        )

        result = verifier.verify(
            evidence_request(
                Artifact(uri=uri(tmp_path / "weights.bin"), sha256=first),
                ("card", uri(tmp_path / "card.md"), second),
            )
        )

        assert [(c.result, c.actual) for c in result.checks] == [("refused", None)] * 2
        assert result.checks[0].detail == (
            f"hashing {uri(tmp_path / 'weights.bin')} took longer than 2.5 s"
        )
        assert result.checks[1].detail == (
            f"{uri(tmp_path / 'card.md')} was not hashed: hashing this release's evidence took "
            "longer than 2.5 s"
        )

    @pytest.mark.parametrize(
        ("count", "text"),
        [(1 << 30, "1 GiB"), (3 << 20, "3 MiB"), (1024, "1 KiB"), (1500, "1,500 bytes")],
    )
    def test_sizes_are_named_for_people(self, count: int, text: str) -> None:
        assert format_bytes(count) == text


class TestReading:
    """Files are read in chunks, reporting progress."""

    def test_reads_in_chunks_and_reports_each(self, tmp_path: Path) -> None:
        data = bytes(range(256)) * 40
        digest = write_file(tmp_path / "weights.bin", data)
        beats: list[None] = []
        request = evidence_request(Artifact(uri=uri(tmp_path / "weights.bin"), sha256=digest))

        [check] = (
            LocalEvidenceVerifier([tmp_path], chunk_size=1000)
            .verify(request, progress=lambda: beats.append(None))
            .checks
        )

        assert check.result == "ok"
        assert len(beats) == math.ceil(len(data) / 1000)


RUNNING_MD = Path(__file__).resolve().parents[2] / "docs" / "running.md"


class TestConfiguration:
    """The [evidence] section of the worker's TOML file: the documented example loads, and a bad
    value is a one-line error naming the file and the field."""

    def test_the_documented_example_loads(self, tmp_path: Path) -> None:
        text = RUNNING_MD.read_text()
        [block] = [b for b in text.split("```toml\n")[1:] if b.startswith("[evidence]")]
        config = tmp_path / "gatekeeper.toml"
        config.write_text(block.split("```")[0])

        evidence = load_worker_config(config, required=True).evidence

        assert evidence.roots == [Path("/srv/evidence")]
        assert evidence.schemes == ["file", "https", "http", "s3", "gs"]
        assert (evidence.max_bytes, evidence.hash_timeout_seconds) == (1 << 30, 120)

    @pytest.mark.parametrize(
        ("section", "message"),
        [
            (
                'roots = ["evidence"]',
                "evidence.roots.0: Value error, evidence roots must be absolute",
            ),
            ('schemes = ["File Share"]', "evidence.schemes.0: String should match pattern"),
            ("max_bytes = 0", "evidence.max_bytes: Input should be greater than or equal to 1"),
            ("hash_timeout_seconds = 600", "evidence.hash_timeout_seconds: Input should be less"),
        ],
    )
    def test_bad_values_are_one_line_errors(
        self, tmp_path: Path, section: str, message: str
    ) -> None:
        config = tmp_path / "gatekeeper.toml"
        config.write_text(f"[evidence]\n{section}\n")

        with pytest.raises(ConfigError) as caught:
            load_worker_config(config, required=True)

        assert str(caught.value).startswith(f"{config}: {message}")
        assert "\n" not in str(caught.value)

    def test_dev_and_demo_add_roots_without_repeating_one(self, tmp_path: Path) -> None:
        config = WorkerConfig.model_validate({"evidence": {"roots": [str(tmp_path)]}})

        roots = config.with_evidence_roots(tmp_path, tmp_path / "examples").evidence.roots

        assert roots == [tmp_path, tmp_path / "examples"]
