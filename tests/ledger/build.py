"""A release's ledger built in memory from a spec and an installed policy: no server, no worker.

The stage transitions a test needs (entering a stage, opening its gate) are called here, in one
place, as the workflow's pipeline calls them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gatekeeper.canonical import digest_of
from gatekeeper.ledger.deciders import Deciders
from gatekeeper.ledger.state import Ledger
from gatekeeper.models import DecisionKind, Policy, ReleaseSpec
from gatekeeper.models.installed import InstalledPolicy
from gatekeeper.models.messages import DecisionRequest
from gatekeeper.models.policy import ApprovalGateStage, GateSettings
from gatekeeper.stages import approval_gate
from tests import factories

#: When every test release starts.
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def installed(policy: Policy | None = None) -> InstalledPolicy:
    """``policy`` (default: the factory's) as the worker's store would hand it out."""
    policy = policy or factories.policy()
    return InstalledPolicy(
        policy_id=policy.policy_id,
        version=policy.version,
        sha256=digest_of(policy.model_dump(mode="json")),
        installed_by=factories.POLICY_ADMIN,
        installed_at=T0 - timedelta(days=1),
        policy=policy,
    )


def started(
    policy: Policy | None = None, spec: ReleaseSpec | None = None, **spec_fields: Any
) -> Deciders:
    """A started release (its start recorded, no stage entered) and its deciders."""
    spec = spec or factories.spec("r-ledger", **spec_fields)
    ledger = Ledger(spec, installed(policy), T0)
    ledger.start(T0)
    return Deciders.over(ledger)


def at_gate(deciders: Deciders, stage_id: str = "internal_review", now: datetime = T0) -> Deciders:
    """The release entered the approval gate ``stage_id`` and its gate is open."""
    ledger = deciders.ledger
    stage = ledger.policy.stage(stage_id)
    assert isinstance(stage, ApprovalGateStage)
    ledger.enter_stage(stage, now)
    approval_gate.open_gate(ledger, stage, stage, now)
    return deciders


def approve(deciders: Deciders, decider: str, role: str, now: datetime = T0) -> str:
    return deciders.review.apply_decision(
        DecisionKind.APPROVE, DecisionRequest(decider=decider, role=role), now
    )


def audit_actions(ledger: Ledger) -> list[str]:
    return [e.action for e in ledger.chain.events]


def gate_settings(ledger: Ledger, stage_id: str = "internal_review") -> GateSettings:
    """The settings of the gate at ``stage_id`` (an approval gate's are the stage itself)."""
    stage = ledger.policy.stage(stage_id)
    assert isinstance(stage, GateSettings)
    return stage
