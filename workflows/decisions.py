"""Decisions on a release: reviewers, the submitter, the government liaison, operators.

Each request has a ``validate_*`` method (run by the update validator: malformed or
unauthenticated requests are refused without a trace) and an ``apply_*`` method (run by the
handler: it re-checks, since state may have moved between the two, then either applies the
change or raises an *audited* :class:`~gatekeeper.rules.Refusal` that the workflow records).
"""

from __future__ import annotations

from workflows.government import GovernmentDecisions
from workflows.operations import OperatorDecisions
from workflows.partner_lists import PartnerDecisions
from workflows.review import ReviewDecisions


class ReleaseLedger(ReviewDecisions, GovernmentDecisions, OperatorDecisions, PartnerDecisions):
    """The complete ledger: state (from :class:`~workflows.ledger.LedgerCore`) plus every decision
    path, one module each: :mod:`workflows.review`, :mod:`workflows.government`,
    :mod:`workflows.operations`, :mod:`workflows.partner_lists`."""
