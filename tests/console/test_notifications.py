"""Notifications that ask someone to act carry the link to the console page where they act
(``[console] url`` of the worker's configuration); partners and unconfigured workers get none."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gatekeeper.adapters.deliveries import DeliveryStore
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier
from gatekeeper.adapters.outbox import Outbox
from gatekeeper.channels import SendJournal
from gatekeeper.channels.messages import CONSOLE_URL, message_text, with_console_link
from gatekeeper.models.enums import NotificationEvent
from gatekeeper.models.io import Notification, NotifyRequest, Recipient
from tests import factories
from tests.console.conftest import BASE_URL, ConsoleHarness
from tests.helpers import eventually


def notification(action: str = "approve or reject") -> Notification:
    return Notification(
        idempotency_key=f"n-{uuid.uuid4().hex[:8]}",
        release_id="aurora-2.0.0",
        event=NotificationEvent.GATE_WAITING,
        stage="internal_review",
        subject="Review needed",
        body="aurora 2.0.0 waits for internal review.",
        action_needed=action,
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


class TestTheWorkerLinksToTheConsole:
    """A release's reviewers are sent the URL of its page in the console."""

    async def test_a_gate_opening_links_the_release_page(self, harness: ConsoleHarness) -> None:
        rid = f"r-{uuid.uuid4().hex[:10]}"
        await harness.start(factories.spec(rid))
        await harness.at_stage(rid, "internal_review")

        def lines_of_release() -> list[dict[str, Any]]:
            return [
                line for line in harness.outbox_lines() if line["notification"]["release_id"] == rid
            ]

        # The stage opens before the activity that notifies about it has run: wait for the notice.
        lines = await eventually(
            lines_of_release,
            lambda found: any(line["notification"]["action_needed"] for line in found),
            what="the gate's reviewers to be asked to act",
            tolerate=(ValueError,),  # a line read while it is being written
        )
        acting = [line for line in lines if line["notification"]["action_needed"]]
        for line in acting:
            assert line["notification"]["details"][CONSOLE_URL] == f"{BASE_URL}/releases/{rid}"
        for line in lines:
            if not line["notification"]["action_needed"]:
                assert CONSOLE_URL not in line["notification"]["details"], "nothing to act on"
        history = await harness.handle(rid).fetch_history()
        assert BASE_URL not in history.to_json(), "the URL never enters the release's history"


class TestTheMessage:
    """The text people read says where to act; a partner and an unconfigured worker: nowhere."""

    def test_people_get_the_link_partners_do_not(self, tmp_path: Path, database_url: str) -> None:
        deliveries = DeliveryStore(database_url)
        outbox = Outbox(tmp_path / "outbox.jsonl")
        journal = SendJournal(deliveries, outbox)
        notifier = Notifier(ChannelRegistry.embedded(journal), console_url=BASE_URL + "/")
        sent = notification()
        notifier.notify(
            NotifyRequest(
                notification=sent,
                recipients=[
                    Recipient(id="sam.safety", channel="outbox"),
                    Recipient(id="partner:acme-labs", channel="outbox"),
                ],
            )
        )
        recorded = deliveries.lines("aurora-2.0.0")
        deliveries.close()
        link = f"{BASE_URL}/releases/aurora-2.0.0"
        for found in (recorded, outbox.read()):  # the journal, and the outbox file's mirror
            lines = {line["recipient"]["id"]: line for line in found}
            assert lines["sam.safety"]["notification"]["details"] == {CONSOLE_URL: link}
            assert lines["partner:acme-labs"]["notification"]["details"] == {}

        linked = with_console_link(sent, BASE_URL)
        assert linked is not None
        assert f"Act here: {link}" in message_text(linked)
        assert "Act here" not in message_text(sent)

    def test_no_link_without_a_console_or_an_action(self) -> None:
        assert with_console_link(notification(), None) is None
        assert with_console_link(notification(action=""), BASE_URL) is None
