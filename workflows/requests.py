"""How the release screens and applies its requests (the update handlers' common part), and
:func:`request_update`, which declares one request update from a table entry (workflows.updates).

Every update takes one plain JSON argument and parses it itself: the parameter is a RawValue, so
the SDK hands over the payload as sent and never fails decoding it. The validator parses (a
malformed payload is refused there in one line, rule ``bad_input``, leaving no trace in history),
then checks the rules; the handler parses again (the same deterministic function; validators do
not run on replay) and applies. Every refusal is a ``Refused``: non-retryable, typed by its rule,
written to history without a stack trace (gatekeeper.failures).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    import gatekeeper.identity.authority as authority
    from gatekeeper.errors import BadInput
    from gatekeeper.failures import Refused
    from gatekeeper.models.base import Model
    from gatekeeper.models.payloads import BAD_INPUT, NO_ARGUMENT, parse_payload
    from gatekeeper.models.status import UpdateResult
    from gatekeeper.statements import SIGNATURE_FIELD

import gatekeeper.signed_requests as signed_requests
from gatekeeper.ledger.checks import record_refusal
from gatekeeper.ledger.deciders import Deciders
from gatekeeper.ledger.state import Ledger
from gatekeeper.rules import BUDGET_OF, PADDING_BYTES, Refusal, Rule, refuse

M = TypeVar("M", bound=Model)


def raw_data(payload: RawValue) -> bytes:
    """The update's argument as sent (what its history stores)."""
    return bytes(payload.payload.data)


def content_size(request: Model) -> int:
    """What a request counts against the payload budget: its JSON without the signature (a
    signature's size is bounded, and accepted requests are counted by their own budgets)."""
    return len(request.model_dump_json(exclude={SIGNATURE_FIELD}))


def signature_size(request: Model) -> int:
    return len(request.model_dump_json()) - content_size(request)


class RequestHost(Protocol):
    """What screening and applying requests ask of the workflow."""

    @property
    def ledger(self) -> Ledger: ...

    @property
    def deciders(self) -> Deciders: ...

    @property
    def integrity_error(self) -> str | None: ...

    @property
    def launching(self) -> bool: ...

    @property
    def requests(self) -> Requests: ...

    def commit(self) -> None: ...

    def refusal_recorded(self, summary: str) -> None:
        """A refused request was recorded in the audit trail: show it (``summary``) in the
        release's timeline."""
        ...


class Requests:
    """Parse, check, authenticate, budget and apply the release's requests."""

    def __init__(self, host: RequestHost) -> None:
        self._host = host

    def refusal(self, refusal: Refusal) -> Refused:
        return Refused(refusal.message, refusal.rule.value)

    def parse(self, update: str, model: type[M], payload: RawValue) -> M:
        try:
            return parse_payload(model, payload, update)
        except BadInput as err:
            raise Refused(str(err), BAD_INPUT) from None

    def check(
        self, update: str, model: type[M], payload: RawValue, validate: Callable[[M], None]
    ) -> None:
        if self._host.integrity_error is not None:
            raise Refused(self._host.integrity_error, "IntegrityError")
        request = self.parse(update, model, payload)
        try:
            validate(request)
            self.authenticate(update, payload)
        except Refusal as refusal:
            raise self.refusal(refusal) from None

    def authenticate(self, update: str, payload: RawValue) -> None:
        """Refuse a request not signed by a registered, currently valid key of its actor over
        what this release holds now (``gatekeeper.signed_requests``). Validators never run on
        replay, so reading the worker's live key directory here keeps histories deterministic."""
        ledger = self._host.ledger
        request = json.loads(raw_data(payload))
        task_queue = workflow.info().task_queue
        with workflow.unsafe.sandbox_unrestricted():
            signed_requests.check(
                action=update,
                request=request,
                expected=signed_requests.release_binding(ledger.status),
                directory=authority.directory_for(task_queue),
                now=datetime.now(UTC),  # the worker's clock: see signed_requests.check
                max_age=ledger.policy.signature_max_age,
                used_nonces=ledger.used_nonces,
                unsigned_allowed=authority.unsigned_allowed(task_queue),
                gateway_actions=ledger.policy.gateway_attestation,
                policy_ref=f"{ledger.policy.policy_id}@{ledger.policy.version}",
            )

    def screened(
        self,
        update: str,
        model: type[M],
        payload: RawValue,
        validate: Callable[[M], None],
        change: Callable[[Ledger, M], object],
        kind: Callable[[M], str] | None = None,
    ) -> None:
        """``check``, then the request budget (``Ledger.screen``): refuse, unrecorded,
        what is past its budget, would change nothing, or is padded past its size."""
        size = len(raw_data(payload))

        def both(req: M) -> None:
            validate(req)
            compact = len(req.model_dump_json())
            if size > 2 * compact + PADDING_BYTES:
                raise refuse(
                    Rule.REQUEST_TOO_LARGE,
                    f"{update}: the payload is {size // 1024} KB for {compact} bytes of request",
                )
            self._host.ledger.screen(
                update,
                kind(req) if kind else update,
                size - signature_size(req),
                lambda ledger: change(ledger, req),
            )

        self.check(update, model, payload, both)

    def apply(
        self,
        request: str,
        actor: str,
        body: Any,
        change: Callable[[], str],
        payload: RawValue,
    ) -> UpdateResult:
        ledger = self._host.ledger
        # The validator checked the signature; the handler (which also runs on replay) only
        # records it, from the request itself: the accepted request's first audit event keeps
        # the signed statement, and the nonce is spent.
        raw = json.loads(raw_data(payload))
        ledger.attesting = signed_requests.attestation(request, raw)
        try:
            message = change()
        except Refusal as refusal:
            ledger.attesting = None
            # Recorded in the audit trail while the ``refused`` budget lasts; past it the
            # validator refuses such requests itself, so only a race reaches here unrecorded.
            recorded = refusal.audited and not ledger.spent("refused")
            if recorded:
                record_refusal(
                    ledger, refusal, workflow.now(), actor, request, body.model_dump(mode="json")
                )
            ledger.charge("refused", content_size(body))
            self._host.commit()
            if recorded:
                self._host.refusal_recorded(f"Refused {request} by {actor}: {refusal.rule.value}")
            raise self.refusal(refusal) from None
        ledger.attesting = None
        nonce = signed_requests.nonce_of(raw)
        if nonce is not None:
            ledger.used_nonces.add(nonce)
        ledger.charge(BUDGET_OF[request], content_size(body))
        self._host.commit()
        return self.result(message)

    def result(self, message: str) -> UpdateResult:
        status = self._host.ledger.status
        return UpdateResult(
            message=message,
            release_id=status.release_id,
            state=status.state,
            stage=status.stage,
            status_version=status.status_version,
        )


@dataclass(frozen=True)
class RequestUpdate(Generic[M]):
    """One request update: its name (as clients send it), its request model, who sends it, how
    its decider checks it (validator) and applies it (handler; the budget's "would it change
    anything" applies it to deciders over a copy of the ledger), and the budget kind it counts
    under."""

    name: str
    model: type[M]
    doc: str
    actor: Callable[[M], str]
    validate: Callable[[Deciders, M, datetime], None]
    apply: Callable[[Deciders, M, datetime], str]
    kind: Callable[[M], str] | None = None
    #: Refused while the launch is being published (an operator's hold and withdraw).
    waits_for_launch: bool = False


def request_update(spec: RequestUpdate[M]) -> Any:
    """The ``@workflow.update`` handler of ``spec``, with its validator attached: assigned as an
    attribute of the workflow class, ``@workflow.defn`` registers it under ``spec.name``."""

    # ``self`` stays unannotated: the SDK reads the handler's parameter types (RawValue, so the
    # payload arrives as sent) and skips the first one only when it is a bare ``self``.
    def handler(self, payload: RawValue = NO_ARGUMENT) -> UpdateResult:  # type: ignore[no-untyped-def]
        host: RequestHost = self
        requests = host.requests
        req = requests.parse(spec.name, spec.model, payload)
        return requests.apply(
            spec.name,
            spec.actor(req),
            req,
            lambda: spec.apply(host.deciders, req, workflow.now()),
            payload,
        )

    def validate(self: RequestHost, req: M) -> None:
        spec.validate(self.deciders, req, workflow.now())
        if spec.waits_for_launch and self.launching:
            raise refuse(
                Rule.LAUNCH_IN_PROGRESS,
                "the launch is being published right now; ask again once it has finished",
            )

    def validator(self, payload: RawValue = NO_ARGUMENT) -> None:  # type: ignore[no-untyped-def]
        host: RequestHost = self
        host.requests.screened(
            spec.name,
            spec.model,
            payload,
            lambda req: validate(host, req),
            lambda ledger, req: spec.apply(Deciders.over(ledger), req, workflow.now()),
            kind=spec.kind,
        )

    handler.__name__ = handler.__qualname__ = spec.name
    handler.__doc__ = spec.doc
    validator.__name__ = validator.__qualname__ = f"_validate_{spec.name}"
    update = workflow.update(name=spec.name)(handler)
    update.validator(validator)
    return update
