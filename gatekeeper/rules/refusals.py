"""The rules a request can break, and the refusal that names the broken one.

Two kinds of refusal exist (issue: "Refusals"):

* unauthenticated or malformed requests (unknown person, bad signature, terminal release) are
  refused by the update validator and leave no trace in history (:func:`refuse`);
* well-formed, authenticated decisions that break a rule (role not held, self-approval, stale
  stage, duplicate) are refused by the handler, which first records the attempt in the audit
  trail (:func:`refuse_audited`).
"""

from __future__ import annotations

from enum import StrEnum


class Rule(StrEnum):
    """Names of the rules a request can break; also the ``type`` of the error the caller sees."""

    RELEASE_TERMINAL = "release_terminal"
    UNKNOWN_PERSON = "unknown_person"
    SIGNATURE_REQUIRED = "signature_required"
    SIGNATURE_INVALID = "signature_invalid"
    SIGNATURE_REPLAYED = "signature_replayed"
    SIGNATURE_STALE = "signature_stale"
    SIGNATURE_UNKNOWN_KEY = "signature_unknown_key"
    SIGNATURE_WRONG_SIGNER = "signature_wrong_signer"
    SIGNATURE_KEY_NOT_VALID = "signature_key_not_valid"
    SIGNATURE_BINDING = "signature_binding"
    #: A gateway-attested request the release's policy does not accept for this action.
    SIGNATURE_GATEWAY_NOT_ALLOWED = "signature_gateway_not_allowed"
    NOT_AUTHORISED = "not_authorised"
    WRONG_STAGE = "wrong_stage"
    NOT_A_GATE = "not_a_gate"
    RELEASE_HELD = "release_held"
    ROLE_NOT_HELD = "role_not_held"
    ROLE_NOT_NEEDED = "role_not_needed"
    SEPARATION_OF_DUTIES = "separation_of_duties"
    ALREADY_DECIDED = "already_decided"
    DISTINCT_APPROVERS = "distinct_approvers"
    NOT_SUBMITTER = "not_submitter"
    AMEND_CLOSED_GATE = "amend_closed_gate"
    UNKNOWN_EVIDENCE = "unknown_evidence"
    NO_GOVERNMENT_STAGE = "no_government_stage"
    BAD_DATE = "bad_date"
    DELAY_TOO_LONG = "delay_too_long"
    ALREADY_CLEARED = "already_cleared"
    UNKNOWN_CONCERN = "unknown_concern"
    ALREADY_HELD = "already_held"
    NOT_HELD = "not_held"
    GOVERNMENT_HOLD = "government_hold"
    INVALID_DELEGATION = "invalid_delegation"
    ACCESS_SCOPE = "access_scope"
    SAFEGUARDS_MISSING = "safeguards_missing"
    UNKNOWN_ORDER = "unknown_order"
    LAUNCH_IN_PROGRESS = "launch_in_progress"
    PARTNER_NOT_PROPOSED = "partner_not_proposed"
    UNCHANGED = "unchanged"
    REQUEST_BUDGET_EXHAUSTED = "request_budget_exhausted"
    REQUEST_TOO_LARGE = "request_too_large"


class Refusal(Exception):
    """A request the release will not accept. ``audited`` refusals are recorded before raising."""

    def __init__(self, rule: Rule, message: str, *, audited: bool = False) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.audited = audited


def refuse(rule: Rule, message: str) -> Refusal:
    """An unaudited refusal (validator: malformed or unauthenticated)."""
    return Refusal(rule, message, audited=False)


def refuse_audited(rule: Rule, message: str) -> Refusal:
    """A refusal of an authenticated request that broke a rule: the attempt is audited."""
    return Refusal(rule, message, audited=True)
