"""Decisions on a release: reviewers, the submitter, the government liaison, operators.

Each request has a ``validate_*`` method (run by the update validator: malformed or
unauthenticated requests are refused without a trace) and an ``apply_*`` method (run by the
handler: it re-checks, since state may have moved between the two, then either applies the
change or raises an *audited* :class:`~gatekeeper.rules.Refusal` that the workflow records).
"""

from __future__ import annotations

from gatekeeper.ledger.government import GovernmentDecisions
from gatekeeper.ledger.operations import OperatorDecisions
from gatekeeper.ledger.partners import PartnerDecisions
from gatekeeper.ledger.review import ReviewDecisions


class ReleaseLedger(ReviewDecisions, GovernmentDecisions, OperatorDecisions, PartnerDecisions):
    """The complete ledger: state (from :class:`~gatekeeper.ledger.state.Ledger`) plus every decision
    path, one module each: :mod:`gatekeeper.ledger.review`, :mod:`gatekeeper.ledger.government`,
    :mod:`gatekeeper.ledger.operations`, :mod:`gatekeeper.ledger.partners`."""
