"""The closed vocabularies of the release standard."""

from __future__ import annotations

from enum import StrEnum


class RiskTier(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class CoveredDesignation(StrEnum):
    """Whether the government designated the model a covered frontier model.

    The threshold is classified, so Gatekeeper takes the designation as an input.
    """

    REQUESTED = "requested"
    PENDING = "pending"
    DESIGNATED = "designated"
    NOT_DESIGNATED = "not_designated"


class EvidenceKind(StrEnum):
    CAPABILITY_EVALUATION = "capability_evaluation"
    SAFEGUARDS_REPORT = "safeguards_report"
    RED_TEAM_REPORT = "red_team_report"
    SECURITY_ATTESTATION = "security_attestation"
    SYSTEM_CARD = "system_card"
    PARTNER_VETTING = "partner_vetting"
    GOVERNMENT_TEST_RECEIPT = "government_test_receipt"
    OTHER = "other"


class StageKind(StrEnum):
    APPROVAL_GATE = "approval_gate"
    GOVERNMENT_SUBMISSION = "government_submission"
    GOVERNMENT_WINDOW = "government_window"
    ACCESS_GRANT = "access_grant"
    LAUNCH = "launch"
    WAITING_PERIOD = "waiting_period"


class ReleaseState(StrEnum):
    ACTIVE = "active"
    HELD = "held"
    SUSPENDED = "suspended"
    LAUNCHED = "launched"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"

    @property
    def terminal(self) -> bool:
        return self in (ReleaseState.LAUNCHED, ReleaseState.REJECTED, ReleaseState.WITHDRAWN)


class StageStatus(StrEnum):
    PENDING = "pending"
    CURRENT = "current"
    DONE = "done"
    SKIPPED = "skipped"


class DecisionKind(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REQUEST_CHANGES = "request_changes"


class GovernmentResponseKind(StrEnum):
    CLEARED = "cleared"
    DELAY_REQUESTED = "delay_requested"
    CONCERN_RAISED = "concern_raised"
    CONCERN_RESOLVED = "concern_resolved"


class VettingTier(StrEnum):
    IDENTITY_VERIFIED = "identity_verified"
    ENTERPRISE_KYC = "enterprise_kyc"
    INVITE_ONLY = "invite_only"
    GOVERNMENT_APPROVED = "government_approved"


class NationalityStatus(StrEnum):
    US_PERSON = "us_person"
    FOREIGN_PERSON = "foreign_person"
    UNKNOWN = "unknown"


class Surface(StrEnum):
    API = "api"
    APP = "app"
    CLOUD_MARKETPLACE = "cloud_marketplace"


class NotificationEvent(StrEnum):
    """Everything a stakeholder can be told about. Policies route these to people."""

    RELEASE_STARTED = "release_started"
    GATE_WAITING = "gate_waiting"
    DECISION_RECORDED = "decision_recorded"
    CHANGES_REQUESTED = "changes_requested"
    AMENDED = "amended"
    APPROVALS_INVALIDATED = "approvals_invalidated"
    GATE_PASSED = "gate_passed"
    REMINDER = "reminder"
    ESCALATION = "escalation"
    DEADLINE_MISSED = "deadline_missed"
    GOVERNMENT_SUBMITTED = "government_submitted"
    WINDOW_OPENED = "window_opened"
    WINDOW_EXTENDED = "window_extended"
    WINDOW_ENDED = "window_ended"
    GOVERNMENT_CLEARED = "government_cleared"
    CONCERN_RAISED = "concern_raised"
    CONCERN_RESOLVED = "concern_resolved"
    PARTNER_ACCESS_GRANTED = "partner_access_granted"
    PARTNER_ACCESS_REVOKED = "partner_access_revoked"
    ACCESS_SUSPENDED = "access_suspended"
    ACCESS_RESTORED = "access_restored"
    HELD = "held"
    RESUMED = "resumed"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"
    LAUNCHED = "launched"


#: Role names the engine itself gives meaning to. Policies may define more roles for gates.
class WellKnownRole(StrEnum):
    RELEASE_MANAGER = "release_manager"
    SAFETY = "safety"
    SECURITY = "security"
    LEGAL = "legal"
    EXECUTIVE = "executive"
    GOVERNMENT_LIAISON = "government_liaison"
    OPERATOR = "operator"
