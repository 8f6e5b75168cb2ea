"""A data directory from before the database (outbox, send claims, audit chains, clearinghouse
drop, launch files) is imported once when the worker opens its adapters: an upgraded worker
sends nothing again, issues no second receipt or launch, and continues each audit chain."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from activities import open_adapters
from gatekeeper.adapters.audit_store import DatabaseAuditStore
from gatekeeper.adapters.clearinghouse import DatabaseClearinghouse
from gatekeeper.adapters.deliveries import DeliveryStore
from gatekeeper.adapters.launch import DatabaseLaunchPublisher, PublishedLaunch
from gatekeeper.adapters.legacy import MARKER, import_data_dir
from gatekeeper.channels import builtin_channel
from gatekeeper.channels.messages import DeliveryRecords
from gatekeeper.models.status import GovernmentReceipt
from gatekeeper.settings import Settings
from tests.adapters.builders import RELEASE, T0, chain, launch, notify_request, submission

WRITTEN = "2026-07-01T12:00:00+00:00"


def line(key: str, **record: object) -> str:
    return json.dumps({"key": key, "written_at": WRITTEN, **record}) + "\n"


def old_data_dir(data: Path) -> dict[str, str]:
    """Files as a worker before the database left them; what they hold, by name."""
    data.mkdir(parents=True)
    request = notify_request(3)
    outbox = builtin_channel("outbox")
    assert outbox is not None
    records = DeliveryRecords(outbox)
    keys = [f"{request.notification.idempotency_key}:{r.id}:outbox" for r in request.recipients]
    delivered = [
        line(key, **records.record(request.notification, r))
        for key, r in zip(keys[:2], request.recipients, strict=False)
    ]
    hook_claim = f"{RELEASE}:internal_review:gate_waiting:0:sam:hook"
    (data / "outbox.jsonl").write_text("".join(delivered) + '{"key": "torn')
    (data / "outbox.sending.jsonl").write_text(
        line(keys[0], channel="outbox", channel_type="outbox")
        + line(hook_claim, channel="hook", channel_type="webhook")
    )
    (data / "audit").mkdir()
    (data / "audit" / f"{RELEASE}.jsonl").write_text(
        "".join(e.model_dump_json() + "\n" for e in chain(3))
    )
    drop = data / "clearinghouse"
    receipt = GovernmentReceipt(
        receipt_id="GOV-000000000001",
        clearinghouse="file-drop",
        received_at=T0,
        location=str(drop / "submissions" / "x.json"),
    )
    for sub, body in [
        ("submissions", submission().model_dump_json()),
        ("receipts", receipt.model_dump_json()),
    ]:
        (drop / sub).mkdir(parents=True)
        (drop / sub / f"{submission().idempotency_key}.json").write_text(body)
    odd = submission("../odd key")
    name = "key-" + hashlib.sha256(odd.idempotency_key.encode()).hexdigest() + ".json"
    (drop / "submissions" / name).write_text(odd.model_dump_json())
    (drop / "receipts" / name).write_text(
        receipt.model_copy(update={"receipt_id": "GOV-000000000002"}).model_dump_json()
    )
    request_launch = launch()
    published = PublishedLaunch(
        launch_id="LAUNCH-000000000001",
        published_at=T0,
        idempotency_key=request_launch.idempotency_key,
        release_id=request_launch.release_id,
        model=request_launch.model,
        artifact=request_launch.artifact,
        surfaces=request_launch.surfaces,
        approved_by=request_launch.approved_by,
        requested_at=request_launch.requested_at,
    )
    (data / "launches").mkdir()
    (data / "launches" / f"{request_launch.idempotency_key}.json").write_text(
        published.model_dump_json()
    )
    (data / "launches" / ".tmp-abc.json").write_text("half")
    return {"hook_claim": hook_claim, "delivered_0": keys[0], "delivered_1": keys[1]}


class TestUpgrade:
    """Opening the adapters on an old data directory imports it before anything runs."""

    def test_nothing_is_sent_or_issued_again(self, tmp_path: Path, database_url: str) -> None:
        data = tmp_path / "data"
        held = old_data_dir(data)
        settings = Settings(data_dir=data, registry_url=database_url)

        adapters = open_adapters(settings)
        try:
            result = adapters.notifier.notify(notify_request(3))
            receipt = adapters.clearinghouse.submit(submission())
            odd = adapters.clearinghouse.submit(submission("../odd key"))
            launched = adapters.launcher.publish(launch())
            stored = adapters.audit_store.read(RELEASE)
            continued = adapters.audit_store.store(RELEASE, chain(5))
            claims = adapters.deliveries.claims()
        finally:
            adapters.close()

        assert [d.duplicate for d in result.deliveries] == [True, True, False]
        assert (receipt.receipt_id, receipt.received_at) == ("GOV-000000000001", T0)
        assert odd.receipt_id == "GOV-000000000002"
        assert (launched.launch_id, launched.published_at) == ("LAUNCH-000000000001", T0)
        assert stored == chain(3)
        assert (continued.stored, continued.already_stored) == (2, 3)
        assert claims == [held["hook_claim"]]  # a send that may have arrived: marked, not lost
        marker = json.loads((data / MARKER).read_text())
        assert (marker["deliveries"], marker["claims"], marker["audit_events"]) == (2, 2, 3)
        assert (marker["receipts"], marker["launches"], marker["skipped"]) == (2, 1, [])
        # The files stay: the outbox goes on as the human-readable channel.
        assert (data / "audit" / f"{RELEASE}.jsonl").exists()

    def test_a_delivery_keeps_when_it_was_written(self, tmp_path: Path, database_url: str) -> None:
        held = old_data_dir(tmp_path / "data")
        adapters = open_adapters(Settings(data_dir=tmp_path / "data", registry_url=database_url))
        try:
            lines = {line["key"]: line for line in adapters.deliveries.lines(RELEASE)}
        finally:
            adapters.close()

        assert set(lines) == {held["delivered_0"], held["delivered_1"]}
        at = datetime.fromisoformat(str(lines[held["delivered_0"]]["written_at"]))
        assert at == datetime(2026, 7, 1, 12, tzinfo=UTC)
        assert lines[held["delivered_0"]]["recipient"]["id"] == "person-0"

    def test_importing_again_changes_nothing(self, tmp_path: Path, database_url: str) -> None:
        data = tmp_path / "data"
        old_data_dir(data)
        open_adapters(Settings(data_dir=data, registry_url=database_url)).close()

        with (
            DeliveryStore(database_url) as deliveries,
            DatabaseAuditStore(database_url) as audit,
            DatabaseClearinghouse(database_url) as clearinghouse,
            DatabaseLaunchPublisher(database_url) as launches,
        ):
            skipped = import_data_dir(
                data,
                deliveries=deliveries,
                audit=audit,
                clearinghouse=clearinghouse,
                launches=launches,
            )
            again = import_data_dir(
                data,
                deliveries=deliveries,
                audit=audit,
                clearinghouse=clearinghouse,
                launches=launches,
                force=True,
            )

        assert skipped.already
        assert (again.deliveries, again.claims, again.audit_events) == (0, 0, 0)
        assert (again.receipts, again.launches) == (0, 0)

    def test_a_chain_the_database_holds_differently_is_left_out(
        self, tmp_path: Path, database_url: str
    ) -> None:
        data = tmp_path / "data"
        old_data_dir(data)
        with DatabaseAuditStore(database_url) as audit:
            audit.store(RELEASE, chain(2, forked=True))  # another worker's chain, already here

        adapters = open_adapters(Settings(data_dir=data, registry_url=database_url))
        try:
            stored = adapters.audit_store.read(RELEASE)
        finally:
            adapters.close()

        assert stored == chain(2, forked=True), "the database's chain stands, never a mix"
        [reason] = json.loads((data / MARKER).read_text())["skipped"]
        assert f"{RELEASE}.jsonl" in reason and "already stored with hash" in reason

    def test_a_new_data_directory_has_nothing_to_import(
        self, tmp_path: Path, database_url: str
    ) -> None:
        open_adapters(Settings(data_dir=tmp_path / "data", registry_url=database_url)).close()

        marker = json.loads((tmp_path / "data" / MARKER).read_text())
        assert marker["deliveries"] == 0 and marker["skipped"] == []
