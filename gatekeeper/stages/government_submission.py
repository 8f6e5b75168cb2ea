"""``government_submission``: submit the model and its evidence to the government clearinghouse.

The stage finishes when the clearinghouse returns a receipt (the activity retries until it does:
failing closed). Its policy rules are checked by the window that must follow it
(:mod:`gatekeeper.stages.government_window`).
"""

from __future__ import annotations

from datetime import datetime

from gatekeeper.ledger.state import SYSTEM, Ledger
from gatekeeper.models.enums import NotificationEvent, StageKind
from gatekeeper.models.io import SubmissionRequest
from gatekeeper.models.policy import GovernmentSubmissionStage
from gatekeeper.models.status import GovernmentReceipt
from gatekeeper.stages.base import CheckContext, StageHost, StageKindSpec


async def run(host: StageHost, stage: GovernmentSubmissionStage) -> str:
    ledger = host.ledger
    spec = ledger.spec
    ledger.await_("the government clearinghouse's receipt", host.now())
    host.commit()
    receipt = await host.execute(
        "submit_to_government",
        SubmissionRequest(
            idempotency_key=f"{spec.release_id}:{stage.id}:submit",
            release_id=spec.release_id,
            model=spec.model,
            artifact=spec.artifact,
            covered_model=spec.covered_model.value,
            evidence=spec.evidence,
            clearinghouse=stage.clearinghouse,
            submitted_by=spec.submitter,
            requested_at=host.now(),
        ),
        GovernmentReceipt,
        summary=f"Submit {spec.model.name} {spec.model.version} to the government clearinghouse",
    )
    record_receipt(ledger, receipt, host.now())
    host.commit()
    return f"receipt {receipt.receipt_id}"


def record_receipt(ledger: Ledger, receipt: GovernmentReceipt, now: datetime) -> None:
    ledger.status.government.receipt = receipt
    event = ledger.audit(
        now,
        SYSTEM,
        "government_submitted",
        {"receipt_id": receipt.receipt_id, "clearinghouse": receipt.clearinghouse},
    )
    ledger.notify(
        NotificationEvent.GOVERNMENT_SUBMITTED,
        event,
        f"{ledger.title} submitted for government testing",
        f"Submitted to the {receipt.clearinghouse} clearinghouse; receipt {receipt.receipt_id}.",
        roles=["government_liaison"],
        concerned=[ledger.spec.submitter],
    )


def check(ctx: CheckContext, index: int, stage: GovernmentSubmissionStage) -> bool:
    """Nothing of its own to check; the window after it checks that it comes first."""
    del ctx, index, stage
    return True


def leaves_when(stage: GovernmentSubmissionStage) -> str:
    return f"clearinghouse '{stage.clearinghouse}' returns a receipt"


SPEC = StageKindSpec(
    kind=StageKind.GOVERNMENT_SUBMISSION,
    model=GovernmentSubmissionStage,
    run=run,
    check=check,
    leaves_when=leaves_when,
)
