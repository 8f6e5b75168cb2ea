"""The request budget: how many requests (and bytes) one release accepts, by kind.

Every accepted request is stored in the release's history, so these bound its size
(docs/requests.md computes the worst case).
"""

from __future__ import annotations

from gatekeeper.rules.refusals import Rule

#: Requests a release accepts, by budget: every accepted request is stored in the release's
#: history, so these bound its size (docs/requests.md computes the worst case). ``refused``
#: counts refusals the handler records in the audit trail; past it, such refusals are refused
#: by the validator instead, unrecorded.
REQUEST_BUDGETS: dict[str, int] = {
    "decisions": 100,
    "amend": 30,
    "government": 50,
    "operator": 50,
    "delegate": 30,
    "access": 50,
    "partners": 50,
    "refused": 100,
}

#: Bytes of accepted request payloads (their JSON) a release takes in all, refused or not: each
#: is stored in history and echoed in the audit trail and the workflow's result.
PAYLOAD_BUDGET = 256 * 1024
PAYLOAD = "payload_bytes"
#: The largest finishing request taken once its budget is spent (an approval with a full comment
#: and a signature is under 3 KB; a partner-list decision names about 50 partners in 4 KB).
FINISHING_MAX_BYTES = 4 * 1024
#: A request's payload may be at most twice its compact JSON plus this: whitespace is stored in
#: history like anything else.
PADDING_BYTES = 4 * 1024

#: The budget each update draws on.
BUDGET_OF: dict[str, str] = {
    "approve": "decisions",
    "reject": "decisions",
    "request_changes": "decisions",
    "amend": "amend",
    "record_government_response": "government",
    "hold": "operator",
    "resume": "operator",
    "withdraw": "operator",
    "delegate": "delegate",
    "revoke_delegation": "delegate",
    "attest_authorship": "amend",
    "suspend_access": "access",
    "restore_access": "access",
    "approve_partners": "partners",
}

#: Requests that move a release towards its end; accepted past their budget whenever they
#: change something, so a spent budget never strands a release. Each is bounded by the state it
#: undoes (a hold, a suspension, an undecided partner, a missing approval, an open concern).
FINISHING: frozenset[str] = frozenset(
    {
        "withdraw",
        "reject",
        "approve",
        "resume",
        "restore_access",
        "approve_partners",
        "cleared",
        "concern_resolved",
    }
)

#: Refusals of a request that would change nothing (a repeat): refused by the validator, never
#: recorded, whatever the budget.
REPEATS: frozenset[Rule] = frozenset(
    {Rule.ALREADY_DECIDED, Rule.ALREADY_HELD, Rule.NOT_HELD, Rule.ALREADY_CLEARED, Rule.UNCHANGED}
)

#: Active (unexpired, unrevoked) delegations one release keeps at once.
MAX_ACTIVE_DELEGATIONS = 20
