"""Upgrading a data directory from files to the database, once, so nothing is sent twice.

Before issue 16 a worker kept its state in files under its data directory: the outbox
(``outbox.jsonl``, every delivered key) and its send claims (``outbox.sending.jsonl``), one audit
chain per release (``audit/<release>.jsonl``), the clearinghouse drop
(``clearinghouse/{submissions,receipts}/``) and the launch records (``launches/``). A worker
upgraded in place opens the database tables that replace them (migration 0008) and, before
running any activity, imports what the files hold (:func:`import_data_dir`): a delivered key is
not delivered again, a receipt or a launch is not issued again, an audit chain continues where
it stood instead of forking.

Every import is an insert that leaves a row already in the database alone, so importing twice
changes nothing (two workers sharing the directory may both do it). When all went in, a marker
file (:data:`MARKER`) names the database, and later starts skip the scan; a worker pointed at
another database imports again. The files stay where they are, untouched: the outbox goes on
as the human-readable outbox channel, and ``gatekeeper audit verify`` still reads an old chain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from gatekeeper.adapters.audit_store import DatabaseAuditStore, read_chain_file
from gatekeeper.adapters.clearinghouse import DatabaseClearinghouse
from gatekeeper.adapters.deliveries import DeliveryStore, release_of
from gatekeeper.adapters.launch import DatabaseLaunchPublisher, PublishedLaunch
from gatekeeper.adapters.outbox import OUTBOX_FILE, SENDING_FILE, read_lines
from gatekeeper.errors import AdapterError
from gatekeeper.models.status import GovernmentReceipt

_log = structlog.get_logger(__name__)

#: Written under the data directory once its files are in the database.
MARKER = "imported-into-database.json"


@dataclass
class ImportReport:
    """What one import found and stored (counts of rows new to the database)."""

    deliveries: int = 0
    claims: int = 0
    audit_events: int = 0
    receipts: int = 0
    launches: int = 0
    #: Files left out, each with the one-line reason (the database's rows stand).
    skipped: list[str] = field(default_factory=list)
    #: True when the marker said this database has the files already.
    already: bool = False


def import_data_dir(
    data_dir: Path,
    *,
    deliveries: DeliveryStore,
    audit: DatabaseAuditStore,
    clearinghouse: DatabaseClearinghouse,
    launches: DatabaseLaunchPublisher,
    force: bool = False,
) -> ImportReport:
    """Import ``data_dir``'s pre-database files into the stores' database, once.

    Args:
        force: scan the files even when the marker says they were imported.

    Raises:
        RegistryError: (retryable) the database could not be written; nothing is marked, so the
            next start imports again.
    """
    marker = data_dir / MARKER
    if not force and _marked(marker, deliveries.url):
        return ImportReport(already=True)
    report = ImportReport()
    if not any(
        p.exists()
        for p in (
            data_dir / OUTBOX_FILE,
            data_dir / SENDING_FILE,
            data_dir / "audit",
            data_dir / "clearinghouse",
            data_dir / "launches",
        )
    ):
        _mark(marker, deliveries.url, report)
        return report
    report.claims = deliveries.import_lines(read_lines(data_dir / SENDING_FILE), delivered=False)
    report.deliveries = deliveries.import_lines(read_lines(data_dir / OUTBOX_FILE), delivered=True)
    _import_audit(data_dir / "audit", audit, report)
    _import_receipts(data_dir / "clearinghouse", clearinghouse, report)
    _import_launches(data_dir / "launches", launches, report)
    _mark(marker, deliveries.url, report)
    _log.info("data_dir.imported", data_dir=str(data_dir), **asdict(report))
    return report


def _import_audit(directory: Path, audit: DatabaseAuditStore, report: ImportReport) -> None:
    for path in sorted(directory.glob("*.jsonl")) if directory.is_dir() else []:
        try:
            events = read_chain_file(path)
            report.audit_events += audit.store(path.stem, events).stored
        except AdapterError as err:
            if err.retryable:
                raise
            report.skipped.append(f"{path}: {err}")
            _log.error("data_dir.audit_chain_not_imported", path=str(path), error=str(err))


def _import_receipts(
    directory: Path, clearinghouse: DatabaseClearinghouse, report: ImportReport
) -> None:
    receipts = directory / "receipts"
    for path in sorted(receipts.glob("*.json")) if receipts.is_dir() else []:
        if path.name.startswith("."):
            continue
        try:
            receipt = GovernmentReceipt.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as err:
            report.skipped.append(f"{path}: not a receipt ({type(err).__name__})")
            continue
        submission = _json(directory / "submissions" / path.name)
        key = submission.get("idempotency_key") if submission else None
        if not isinstance(key, str):
            if path.stem.startswith("key-"):
                report.skipped.append(f"{path}: its submission (and so its key) is missing")
                continue
            key = path.stem
        release = submission.get("release_id") if submission else None
        release_id = release if isinstance(release, str) else release_of(key)
        report.receipts += clearinghouse.import_receipt(key, release_id, submission or {}, receipt)


def _import_launches(
    directory: Path, launches: DatabaseLaunchPublisher, report: ImportReport
) -> None:
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        if path.name.startswith("."):
            continue
        try:
            record = PublishedLaunch.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as err:
            report.skipped.append(f"{path}: not a launch record ({type(err).__name__})")
            continue
        report.launches += launches.import_launch(record)


def _json(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _marked(marker: Path, url: str) -> bool:
    found = _json(marker)
    return found is not None and found.get("database") == url


def _mark(marker: Path, url: str, report: ImportReport) -> None:
    body = {"database": url, **asdict(report)}
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_name(f".{marker.name}.tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    tmp.replace(marker)
