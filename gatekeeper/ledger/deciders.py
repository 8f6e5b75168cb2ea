"""Every decision path over one ledger: one decider object each, all holding the same
:class:`~gatekeeper.ledger.state.Ledger`.

A decider is stateless besides its ledger, so one is made wherever a decision is judged: the
workflow keeps a :class:`Deciders` over its ledger for the handlers, and a validator's trial run
(:meth:`~gatekeeper.ledger.state.Ledger.screen`) makes one over the ledger's copy.

Each decider has a ``validate_*`` method per request (run by the update validator: malformed or
unauthenticated requests are refused without a trace) and an ``apply_*`` method (run by the
handler: it re-checks, since state may have moved between the two, then either applies the
change or raises an *audited* :class:`~gatekeeper.rules.Refusal` that the workflow records).
"""

from __future__ import annotations

from dataclasses import dataclass

from gatekeeper.ledger.amend import AmendDecider
from gatekeeper.ledger.authorship import AuthorshipDecider
from gatekeeper.ledger.delegation import DelegationDecider
from gatekeeper.ledger.government import GovernmentDecider
from gatekeeper.ledger.operations import OperatorDecider
from gatekeeper.ledger.partners import PartnerListDecider
from gatekeeper.ledger.review import ReviewDecider
from gatekeeper.ledger.state import Ledger
from gatekeeper.ledger.suspensions import SuspensionDecider


@dataclass(frozen=True)
class Deciders:
    """The deciders of one release, over its ledger."""

    ledger: Ledger
    review: ReviewDecider
    amend: AmendDecider
    authorship: AuthorshipDecider
    government: GovernmentDecider
    operators: OperatorDecider
    delegation: DelegationDecider
    suspensions: SuspensionDecider
    partners: PartnerListDecider

    @classmethod
    def over(cls, ledger: Ledger) -> Deciders:
        return cls(
            ledger=ledger,
            review=ReviewDecider(ledger),
            amend=AmendDecider(ledger),
            authorship=AuthorshipDecider(ledger),
            government=GovernmentDecider(ledger),
            operators=OperatorDecider(ledger),
            delegation=DelegationDecider(ledger),
            suspensions=SuspensionDecider(ledger),
            partners=PartnerListDecider(ledger),
        )


__all__ = [
    "AmendDecider",
    "AuthorshipDecider",
    "Deciders",
    "DelegationDecider",
    "GovernmentDecider",
    "OperatorDecider",
    "PartnerListDecider",
    "ReviewDecider",
    "SuspensionDecider",
]
