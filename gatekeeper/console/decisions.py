"""The release page's decision forms: which a person sees, and the exact request each sends.

A form appears only to a person the release's own policy (the snapshot it runs under, never the
console's default) lets use it, asked through the engine's rules (:mod:`gatekeeper.rules`): an
approval gate's approve / reject / request changes in a role the person holds or was delegated
(every gate rule must let them, exactly as the worker's authorisation asks), the government's
responses for liaisons once the release was submitted, the partner list's entries for liaisons
while it is undecided, hold / resume / withdraw for operators, delegation of a gate role the
person holds and the revocation of their own delegations.

The console never decides anything: :func:`refusal` says why a POST is refused *before anything
is sent* (the form was not offered to that person, or it names a role or partner the form did
not offer), and the worker checks everything again when the signed request arrives.

:func:`build_request` turns a form's fields into the request as plain JSON (the update's model,
validated, dumped as the CLI dumps it: ``gatekeeper.signer.request_body``); the statement the
passkey signs and the request the worker receives are both built from it, so ``prepare`` and
``act`` agree byte for byte on the same fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from gatekeeper.errors import BadInput
from gatekeeper.models.enums import DecisionKind, GovernmentResponseKind, WellKnownRole
from gatekeeper.models.messages import (
    AuthorshipAttestation,
    DecisionRequest,
    DelegationRequest,
    DelegationRevocation,
    GovernmentResponse,
    OperatorRequest,
)
from gatekeeper.models.partners import PartnerApprovalRequest
from gatekeeper.models.payloads import one_line
from gatekeeper.models.policy import GateSettings, Policy
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.rules import (
    Attempt,
    Refusal,
    covered_digests,
    gate_roles,
    refusal_of,
    resolve_acting,
)
from gatekeeper.signer import request_body

#: Gate decisions (the update names), in the order the page shows them.
GATE_ACTIONS = ("approve", "reject", "request_changes")
GOVERNMENT = "record_government_response"
PARTNERS = "approve_partners"
OPERATOR_ACTIONS = ("hold", "resume", "withdraw")
DELEGATE = "delegate"
REVOKE = "revoke_delegation"
AUTHORSHIP = "attest_authorship"

#: Every action a form may send, and the fields its form carries (anything else is ignored).
FIELDS: dict[str, tuple[str, ...]] = {
    "approve": ("role", "comment"),
    "reject": ("role", "comment"),
    "request_changes": ("role", "comment"),
    GOVERNMENT: ("kind", "delay_until", "concern", "concern_id", "reference"),
    PARTNERS: ("partners", "decision", "reason", "reference"),
    "hold": ("reason", "until"),
    "resume": ("reason",),
    "withdraw": ("reason",),
    DELEGATE: ("to", "role", "until", "reason"),
    REVOKE: ("to", "role", "reason"),
    AUTHORSHIP: ("evidence_id", "authors", "comment"),
}
#: Fields that may carry several values (checkboxes).
MULTI_FIELDS = frozenset({"partners"})
#: The longest a field's value may be before it is even parsed (the models bound it again).
MAX_FIELD = 20_000
#: At most this many values for a multi-valued field.
MAX_VALUES = 500

LABELS = {
    "approve": "Approve",
    "reject": "Reject",
    "request_changes": "Request changes",
    GOVERNMENT: "Record the government's response",
    PARTNERS: "Decide partner list entries",
    "hold": "Hold",
    "resume": "Resume",
    "withdraw": "Withdraw",
    DELEGATE: "Delegate a role",
    REVOKE: "Revoke a delegation",
    AUTHORSHIP: "Attest who wrote an evidence item",
}

#: What a refused POST says the person may not do ("refused: you may not … now").
DOING = {
    "approve": "approve this release",
    "reject": "reject this release",
    "request_changes": "request changes to this release",
    GOVERNMENT: "record the government's response for this release",
    PARTNERS: "decide partner list entries of this release",
    "hold": "hold this release",
    "resume": "resume this release",
    "withdraw": "withdraw this release",
    DELEGATE: "delegate a role on this release",
    REVOKE: "revoke a delegation on this release",
    AUTHORSHIP: "attest authorship on this release",
}

Fields = Mapping[str, str | Sequence[str]]


@dataclass(frozen=True)
class Form:
    """One decision form the person may use, with the choices it offers."""

    action: str
    #: approve/reject/request_changes: the roles they may decide in -> on whose behalf (None:
    #: their own role). delegate: the gate roles they hold. revoke: unused.
    roles: dict[str, str | None] = field(default_factory=dict)
    #: approve_partners: the undecided entries of the current stage's list.
    partners: tuple[str, ...] = ()
    #: delegate: who may receive the role (the roster, less the person).
    people: tuple[str, ...] = ()
    #: revoke_delegation: the person's own standing delegations, as (to, role, until).
    delegations: tuple[tuple[str, str, datetime], ...] = ()
    #: record_government_response: the response kinds on offer; the open concerns' ids.
    kinds: tuple[str, ...] = ()
    concerns: tuple[str, ...] = ()
    #: attest_authorship: the evidence items the person may attest -> True when they may attest
    #: anyone's authorship (a reviewer of a gate covering it), False when only their own.
    evidence: dict[str, bool] = field(default_factory=dict)
    #: Whether the release's policy accepts this action attested by the console (gateway).
    gateway: bool = False

    @property
    def label(self) -> str:
        return LABELS[self.action]


def open_gate(policy: Policy, status: ReleaseStatus) -> GateSettings | None:
    """The settings of the gate open for decisions now (as the worker's ``open_gate_for_decisions``)."""
    stage_id = status.stage
    if stage_id is None:
        return None
    stage = policy.stage(stage_id)
    gate = status.gates.get(stage_id)
    if stage is None or gate is None or gate.closed_at is not None:
        return None
    return stage if isinstance(stage, GateSettings) else None


def gateway_actions(policy: Policy) -> frozenset[str]:
    """Actions the policy accepts attested by a gateway (``gateway_attestation``; '*': all)."""
    listed = [str(action) for action in policy.gateway_attestation]
    if "*" in listed:
        return frozenset(FIELDS)
    return frozenset(listed)


def forms_for(
    policy: Policy,
    status: ReleaseStatus,
    person: str,
    now: datetime,
    *,
    gateway: bool = False,
) -> list[Form]:
    """The forms ``person`` may use on the release now (empty for someone off the roster or
    for an ended release). ``gateway``: the console holds a gateway key."""
    me = policy.person(person)
    if me is None or status.state.terminal:
        return []
    allowed = gateway_actions(policy) if gateway else frozenset()
    forms: list[Form] = []
    held = bool(status.active_holds())
    settings = open_gate(policy, status)
    if settings is not None and not held:
        gate = status.gates[status.stage or ""]
        candidates = list(gate_roles(settings))
        for action in GATE_ACTIONS:
            kind = DecisionKind(action)
            roles: dict[str, str | None] = {}
            for role in candidates:
                try:
                    acting = resolve_acting(policy, status.delegations, person, role, now)
                except Refusal:
                    continue
                if refusal_of(Attempt(policy, status, settings, gate, kind, acting)) is None:
                    roles[role] = acting.on_behalf_of
            if roles:
                forms.append(Form(action, roles=roles, gateway=action in allowed))
    liaison = WellKnownRole.GOVERNMENT_LIAISON.value in me.roles
    if liaison and status.government.receipt is not None:
        concerns = tuple(c.id for c in status.government.open_concerns())
        kinds = [k.value for k in GovernmentResponseKind]
        if not concerns:
            kinds.remove(GovernmentResponseKind.CONCERN_RESOLVED.value)
        if status.government.cleared_at is not None:
            kinds.remove(GovernmentResponseKind.CLEARED.value)
        forms.append(
            Form(GOVERNMENT, kinds=tuple(kinds), concerns=concerns, gateway=GOVERNMENT in allowed)
        )
    if liaison:
        listed = next(
            (p for p in status.partner_lists if p.stage == status.stage and p.settled_at is None),
            None,
        )
        if listed is not None and listed.undecided():
            forms.append(
                Form(PARTNERS, partners=tuple(listed.undecided()), gateway=PARTNERS in allowed)
            )
    if WellKnownRole.OPERATOR.value in me.roles:
        operator_hold = any(h.kind == "operator" for h in status.active_holds())
        resumable = any(h.kind != "government" for h in status.active_holds())
        if not operator_hold:
            forms.append(Form("hold", gateway="hold" in allowed))
        if resumable:
            forms.append(Form("resume", gateway="resume" in allowed))
        forms.append(Form("withdraw", gateway="withdraw" in allowed))
    deciding = [
        role
        for stage in policy.stages
        if isinstance(stage, GateSettings)
        for role in gate_roles(stage)
    ]
    mine: dict[str, str | None] = {r: None for r in dict.fromkeys(deciding) if r in me.roles}
    if mine:
        others = tuple(p.id for p in policy.roster if p.id != person)
        forms.append(Form(DELEGATE, roles=mine, people=others, gateway=DELEGATE in allowed))
    attestable = _attestable(policy, status, person) if policy.require_attested_authorship else {}
    if attestable:
        forms.append(Form(AUTHORSHIP, evidence=attestable, gateway=AUTHORSHIP in allowed))
    standing = tuple(
        (d.to, d.role, d.until)
        for d in status.delegations
        if d.by == person and d.revoked_at is None and d.until > now
    )
    if standing:
        forms.append(Form(REVOKE, delegations=standing, gateway=REVOKE in allowed))
    return forms


def _attestable(policy: Policy, status: ReleaseStatus, person: str) -> dict[str, bool]:
    """Evidence items whose authorship ``person`` may attest and nobody attested at their
    current digest yet (as the worker's ``apply_authorship`` allows: a reviewer of a gate that
    covers the item attests anyone's, an author only their own)."""
    me = policy.person(person)
    roles = set(me.roles) if me is not None else set()
    found: dict[str, bool] = {}
    for item in status.spec.evidence:
        attested = status.authorship.get(item.id)
        if attested is not None and attested.sha256 == item.sha256:
            continue
        reviewer = any(
            set(gate_roles(stage)) & roles and item.id in covered_digests(stage, status.spec)
            for stage in policy.stages
            if isinstance(stage, GateSettings)
        )
        if reviewer or person in item.authors:
            found[item.id] = reviewer
    return found


def form_named(forms: Sequence[Form], action: str) -> Form | None:
    return next((f for f in forms if f.action == action), None)


def refusal(forms: Sequence[Form], action: str, request: Mapping[str, Any]) -> str | None:
    """Why the console refuses to send ``request`` (built by :func:`build_request`) for a person
    offered ``forms``, or ``None``: the form must have been offered, and what it names (a role,
    partners, a delegation) must be among what the form offered."""
    form = form_named(forms, action)
    if form is None:
        return f"refused: you may not {DOING.get(action, action)} now"
    if action in GATE_ACTIONS and request.get("role") not in form.roles:
        return f"refused: you may not decide this gate as {request.get('role')!r}"
    if action == PARTNERS:
        unknown = sorted(set(request.get("partners", [])) - set(form.partners))
        if unknown:
            return f"refused: not undecided on the partner list: {', '.join(unknown)}"
    if action == DELEGATE and (
        request.get("role") not in form.roles or request.get("to") not in form.people
    ):
        return "refused: you may delegate only a gate role you hold, to someone on the roster"
    if action == AUTHORSHIP:
        item = str(request.get("evidence_id"))
        if item not in form.evidence:
            return f"refused: you may not attest the authorship of {item!r} now"
        if not form.evidence[item] and request.get("authors") != [request.get("by")]:
            return f"refused: you may attest only your own authorship of {item!r}"
    if action == REVOKE and not any(
        (to, role) == (request.get("to"), request.get("role")) for to, role, _ in form.delegations
    ):
        return "refused: you have no such delegation to revoke"
    return None


def _one(fields: Fields, name: str) -> str:
    value = fields.get(name, "")
    if not isinstance(value, str):
        value = value[0] if value else ""
    if len(value) > MAX_FIELD:
        raise BadInput(f"{name}: longer than {MAX_FIELD} characters")
    return value.replace("\r\n", "\n")


def _many(fields: Fields, name: str) -> list[str]:
    value = fields.get(name, [])
    values = [value] if isinstance(value, str) else list(value)
    if len(values) > MAX_VALUES:
        raise BadInput(f"{name}: more than {MAX_VALUES} values")
    return [v for v in values if v]


def _instant(value: str, name: str) -> str | None:
    """A form's ``datetime-local`` value (read as UTC) or an ISO time, as RFC 3339; None if empty."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{name}: {value!r} is not a date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_request(action: str, person: str, stage: str | None, fields: Fields) -> dict[str, Any]:
    """The request ``person`` sends for ``action`` with ``fields`` (a form's), as plain JSON.

    ``stage`` is the stage the person saw (a gate decision names it, so a decision on a page
    rendered at another stage is refused). Raises ``BadInput`` with one line when the fields do
    not make a valid request.
    """
    if action not in FIELDS:
        raise BadInput(f"unknown action {action!r}")
    data: dict[str, Any]
    model: type[BaseModel]
    if action in GATE_ACTIONS:
        model = DecisionRequest
        data = {"decider": person, "role": _one(fields, "role"), "stage": stage}
        data["comment"] = _one(fields, "comment")
    elif action == GOVERNMENT:
        model = GovernmentResponse
        data = {"by": person, "kind": _one(fields, "kind")}
        for name in ("concern", "reference"):
            data[name] = _one(fields, name)
        if concern_id := _one(fields, "concern_id"):
            data["concern_id"] = concern_id
        if until := _instant(_one(fields, "delay_until"), "delay_until"):
            data["delay_until"] = until
    elif action == PARTNERS:
        model = PartnerApprovalRequest
        data = {
            "by": person,
            "partners": _many(fields, "partners"),
            "decision": _one(fields, "decision"),
            "reason": _one(fields, "reason"),
            "reference": _one(fields, "reference"),
        }
    elif action in OPERATOR_ACTIONS:
        model = OperatorRequest
        data = {"by": person, "reason": _one(fields, "reason")}
        if action == "hold" and (until := _instant(_one(fields, "until"), "until")):
            data["until"] = until
    elif action == DELEGATE:
        model = DelegationRequest
        data = {
            "by": person,
            "to": _one(fields, "to"),
            "role": _one(fields, "role"),
            "until": _instant(_one(fields, "until"), "until"),
            "reason": _one(fields, "reason"),
        }
    elif action == AUTHORSHIP:
        model = AuthorshipAttestation
        data = {
            "by": person,
            "evidence_id": _one(fields, "evidence_id"),
            "authors": sorted(set(_one(fields, "authors").replace(",", " ").split())),
            "comment": _one(fields, "comment"),
        }
    else:
        model = DelegationRevocation
        data = {
            "by": person,
            "to": _one(fields, "to"),
            "role": _one(fields, "role"),
            "reason": _one(fields, "reason"),
        }
    try:
        parsed = model.model_validate(data)
    except ValidationError as err:
        raise BadInput(one_line(err, action)) from None
    return request_body(parsed)
