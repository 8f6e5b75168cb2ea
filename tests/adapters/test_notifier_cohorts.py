"""A cohort recipient reaches the partners its release granted, each once, under its own key."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gatekeeper.adapters import notifier as notifier_module
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier, granted_partners
from gatekeeper.adapters.registry import AccessRegistry, Partner
from gatekeeper.channels import ChannelConfig
from gatekeeper.channels.messages import message_text
from gatekeeper.models.enums import Surface, VettingTier
from gatekeeper.models.io import GrantRequest, Notification, Recipient, RevokeRequest
from gatekeeper.models.policy import Cohort
from gatekeeper.models.spec import ModelRef
from tests.adapters.builders import RELEASE, T0, notification, notify_request, webhook_settings
from tests.journals import journal_at

pytestmark = pytest.mark.usefixtures("journals")

ALLIED = Cohort(id="allied", tiers=[VettingTier.INVITE_ONLY], jurisdictions=["*"])
GOV = Cohort(id="gov", tiers=[VettingTier.GOVERNMENT_APPROVED], jurisdictions=["us"])


@pytest.fixture
def registry(tmp_path: Path) -> AccessRegistry:
    registry = AccessRegistry(f"sqlite:///{tmp_path / 'registry.db'}")
    for pid, tier in [
        ("acme", VettingTier.INVITE_ONLY),
        ("brit", VettingTier.INVITE_ONLY),
        ("shield", VettingTier.GOVERNMENT_APPROVED),
        ("never", VettingTier.IDENTITY_VERIFIED),
    ]:
        registry.add_partner(Partner(id=pid, name=pid.title(), tier=tier, jurisdiction="us"))
    for release in (RELEASE, "other-release"):
        registry.grant_for_cohorts(
            GrantRequest(
                idempotency_key=f"{release}:grant",
                release_id=release,
                stage="vetted_partner_access",
                model=ModelRef(name="atlas", version="2"),
                cohorts=[ALLIED, GOV],
                regions=["us"],
                surfaces=[Surface.API, Surface.APP],
                requested_at=T0,
            )
        )
    return registry


def cohort_notifier(tmp_path: Path, registry: AccessRegistry) -> Notifier:
    return Notifier(
        ChannelRegistry.embedded(journal_at(tmp_path / "outbox.jsonl")),
        cohorts=granted_partners(registry.list_grants),
    )


def outbox_recipients(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "outbox.jsonl").read_text().splitlines()
    return [json.loads(line)["recipient"]["id"] for line in lines]


class TestCohortExpansion:
    """``cohort:<id>`` becomes ``partner:<id>`` for each partner this release granted in that
    cohort (one delivery per partner and channel, however many surfaces it was granted)."""

    def test_partners_granted_in_the_cohort(self, tmp_path: Path, registry: AccessRegistry) -> None:
        request = notify_request(1)
        request.recipients.append(Recipient(id="cohort:allied", name="Allied", channel="outbox"))

        result = cohort_notifier(tmp_path, registry).notify(request)

        assert [d.recipient for d in result.deliveries] == [
            "person-0",
            "partner:acme",
            "partner:brit",
        ]
        assert (
            result.deliveries[1].key
            == f"{RELEASE}:internal_review:gate_waiting:0:partner:acme:outbox"
        )
        lines = [json.loads(x) for x in (tmp_path / "outbox.jsonl").read_text().splitlines()]
        assert lines[1]["recipient"] == {
            "id": "partner:acme",
            "name": "Acme",
            "email": None,
            "channel": "outbox",
        }

    def test_revoked_partners_still_hear_and_nobody_is_told_twice(
        self, tmp_path: Path, registry: AccessRegistry
    ) -> None:
        acme = [g.grant_id for g in registry.list_grants(RELEASE) if g.partner_id == "acme"]
        registry.revoke(
            RevokeRequest(
                idempotency_key=f"{RELEASE}:revoke",
                release_id=RELEASE,
                grant_ids=acme,
                reason="tier lapsed",
                requested_at=T0,
            )
        )
        request = notify_request(0)
        request.recipients[:] = [
            Recipient(id="cohort:allied", channel="outbox"),
            Recipient(id="cohort:gov", channel="outbox"),
            Recipient(id="cohort:allied", channel="log"),
        ]

        cohort_notifier(tmp_path, registry).notify(request)
        cohort_notifier(tmp_path, registry).notify(request)  # a retry

        assert sorted(outbox_recipients(tmp_path)) == [
            "partner:acme",
            "partner:acme",  # once on outbox, once on log
            "partner:brit",
            "partner:brit",
            "partner:shield",
        ]

    def test_a_cohort_before_any_grant_reaches_nobody(
        self, tmp_path: Path, registry: AccessRegistry
    ) -> None:
        request = notify_request(0, key="not-granted-yet:release_started:0")
        request.notification.release_id = "not-granted-yet"
        request.recipients[:] = [Recipient(id="cohort:allied", channel="outbox")]

        result = cohort_notifier(tmp_path, registry).notify(request)

        assert result.deliveries == []

    def test_without_a_directory_a_cohort_is_one_recipient(self, tmp_path: Path) -> None:
        request = notify_request(0)
        request.recipients[:] = [Recipient(id="cohort:allied", channel="outbox")]

        result = Notifier(ChannelRegistry.embedded(journal_at(tmp_path / "o.jsonl"))).notify(
            request
        )

        assert [d.recipient for d in result.deliveries] == ["cohort:allied"]


class TestMessages:
    """The text says what happened, what is needed and by when, and where to look (people on
    the roster are pointed at Gatekeeper; partners are not)."""

    def test_text_for_people_and_for_partners(self) -> None:
        note: Notification = notification()

        staff = message_text(note, Recipient(id="priya", channel="outbox"))
        partner = message_text(note, Recipient(id="partner:acme", channel="outbox"))

        assert staff.splitlines() == [
            "Internal review of atlas 2.0 is open.",
            "",
            "What is needed from you: approve, reject or request changes",
            "By: 2026-07-04 12:00 UTC",
            "",
            "Release atlas-2 (stage internal_review, event gate_waiting, 2026-07-01 12:00 UTC).",
            "Where to look: `gatekeeper release status atlas-2`, or workflow release-atlas-2 in "
            "the Temporal UI.",
        ]
        assert partner.splitlines() == staff.splitlines()[:-1]


class TestProgress:
    """Progress is reported every hundred deliveries, and at least once a second on a slow
    channel, so an activity can heartbeat through a long fan-out."""

    def test_slow_deliveries_still_report(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(notifier_module, "PROGRESS_SECONDS", 0.05)

        class Slow:
            def __init__(self, config: ChannelConfig) -> None:
                pass

            def deliver(self, notification: Notification, recipient: Recipient, key: str) -> bool:
                time.sleep(0.06)
                return True

            def close(self) -> None:
                pass

        registry = ChannelRegistry.embedded(journal_at(tmp_path / "o.jsonl"))
        registry.register("webhook", Slow)
        beats: list[int] = []

        Notifier(registry, configured={"hook": webhook_settings()}).notify(
            notify_request(3, "hook"), progress=beats.append
        )

        assert beats == [1, 2, 3]
