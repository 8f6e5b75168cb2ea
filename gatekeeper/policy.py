"""Release policies: loading the YAML file, checking it is workable, and fingerprinting it.

A policy is data (see :mod:`gatekeeper.models.policy`). Loading it validates the structure with
pydantic, then :func:`check_policy` applies the rules that span fields: a quorum nobody on the
roster can meet, a route to a role nobody holds, a government window with no submission before
it. Every problem names the field and the line it was written on. A release records the policy's
sha256 (:func:`policy_sha256`) and runs under that snapshot for good.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Protocol

from gatekeeper.canonical import digest_of
from gatekeeper.errors import PolicyError, Problem
from gatekeeper.models.base import format_duration
from gatekeeper.models.enums import CoveredDesignation, WellKnownRole
from gatekeeper.models.policy import (
    MAX_GOVERNMENT_WINDOW,
    AccessGrantStage,
    ApprovalGateStage,
    GateSettings,
    GovernmentSubmissionStage,
    GovernmentWindowStage,
    LaunchStage,
    Policy,
)
from gatekeeper.rules import Scope, feasibility, roles_by_person
from gatekeeper.yamlcheck import validate_model
from gatekeeper.yamlfile import (
    FieldPath,
    YamlDocument,
    did_you_mean,
    format_path,
    parse_yaml,
    read_yaml_file,
    sort_problems,
)

DEFAULT_POLICY_FILE = "default.yaml"
DEMO_POLICY_FILE = "demo.yaml"
_RELEASE_MANAGER = WellKnownRole.RELEASE_MANAGER.value
#: Shortest reminder interval a policy may set.
MIN_REMINDER_INTERVAL = timedelta(hours=1)
_GATE_CLOCKS = ("approval_ttl", "reminder_every", "escalate_after", "deadline")

_Findings = list[tuple[FieldPath, str]]


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy that passed every check, with its fingerprint and where it came from.

    Attributes:
        policy: the validated policy.
        sha256: :func:`policy_sha256` of ``policy``; releases record it.
        source: the file it was read from (or the label given to :func:`parse_policy`).
    """

    policy: Policy
    sha256: str
    source: str

    @property
    def label(self) -> str:
        return f"{self.policy.policy_id} v{self.policy.version}"


def policy_sha256(policy: Policy) -> str:
    """sha256 of the policy's canonical JSON: the same policy always gives the same digest,
    however its file was laid out."""
    return digest_of(policy.model_dump(mode="json"))


def load_policy(path: str | Path) -> LoadedPolicy:
    """Read, validate and check a policy file.

    Raises:
        PolicyError: with every problem found, each located by field path and line.
    """
    document = read_yaml_file(path, error=PolicyError)
    return _checked(document, str(path))


def parse_policy(text: str | bytes, source: str = "<policy>") -> LoadedPolicy:
    """Like :func:`load_policy`, for policy text already in memory."""
    return _checked(parse_yaml(text, source=source, error=PolicyError), source)


def load_policy_or_default(path: str | Path | None) -> LoadedPolicy:
    """The policy at ``path`` (e.g. ``Settings.policy_path``), or the packaged default if none."""
    return load_policy(path) if path else load_default_policy()


def load_default_policy() -> LoadedPolicy:
    """The packaged policy of the voluntary release standard (real clocks: a 30-day window)."""
    return _packaged(DEFAULT_POLICY_FILE)


def load_demo_policy() -> LoadedPolicy:
    """The packaged demo policy: the default pipeline with every clock cut to seconds."""
    return _packaged(DEMO_POLICY_FILE)


def check_policy(policy: Policy, document: YamlDocument | None = None) -> list[Problem]:
    """Rules that span fields. Returns every problem; an empty list means the policy is workable.

    ``document`` (the YAML the policy was read from) lets each problem carry its line.
    """
    findings: _Findings = []
    _check_roster(policy, findings)
    _check_stages(policy, findings)
    _check_notifications(policy, findings)
    findings.extend(feasibility.rule_problems(Scope(policy)))
    problems = [
        document.problem(path, message) if document else Problem(format_path(path), message)
        for path, message in findings
    ]
    return sort_problems(problems)


def _packaged(name: str) -> LoadedPolicy:
    resource = resources.files("gatekeeper.policies").joinpath(name)
    return parse_policy(resource.read_bytes(), source=str(resource))


def _checked(document: YamlDocument, source: str) -> LoadedPolicy:
    # Cross-field rules need a structurally valid policy, so they run once the structure is right.
    policy = validate_model(document, Policy, source=source, error=PolicyError)
    problems = check_policy(policy, document)
    if problems:
        raise PolicyError(source, problems)
    return LoadedPolicy(policy=policy, sha256=policy_sha256(policy), source=source)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _unique_ids(items: Sequence[_HasId], prefix: FieldPath, what: str, out: _Findings) -> None:
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.id in first:
            also = format_path((*prefix, first[item.id]))
            out.append(((*prefix, index, "id"), f"duplicate {what} id '{item.id}' (also {also})"))
        else:
            first[item.id] = index


def _show(value: timedelta) -> str:
    return "-" + format_duration(-value) if value < timedelta(0) else format_duration(value)


def _public_key_problem(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "must be base64 of a 32-byte Ed25519 public key (it is not valid base64)"
    if len(raw) != 32:
        return f"must be base64 of a 32-byte Ed25519 public key (got {len(raw)} bytes)"
    return None


def _check_roster(policy: Policy, out: _Findings) -> None:
    _unique_ids(policy.roster, ("roster",), "person", out)
    _unique_ids(policy.cohorts, ("cohorts",), "cohort", out)
    # One key on two roster ids would let one person fill two quorum places with signatures.
    key_holders: dict[bytes, tuple[int, str]] = {}
    for index, person in enumerate(policy.roster):
        if person.public_key is not None:
            problem = _public_key_problem(person.public_key)
            if problem:
                out.append((("roster", index, "public_key"), problem))
            else:
                raw = base64.b64decode(person.public_key, validate=True)
                first, holder = key_holders.setdefault(raw, (index, person.id))
                if holder != person.id:
                    out.append(
                        (
                            ("roster", index, "public_key"),
                            f"the same public key as roster[{first}] ('{holder}'): each person "
                            "needs a key of their own, or one person fills two quorum places",
                        )
                    )
        if person.email is not None and "@" not in person.email:
            out.append(
                (("roster", index, "email"), f"must be an e-mail address (got '{person.email}')")
            )


def _check_stages(policy: Policy, out: _Findings) -> None:
    stages = policy.stages
    _unique_ids(stages, ("stages",), "stage", out)
    launches = [i for i, stage in enumerate(stages) if isinstance(stage, LaunchStage)]
    for index in launches[1:]:
        out.append(
            (("stages", index), f"only one launch stage is allowed (stages[{launches[0]}] is one)")
        )
    if launches and launches[0] != len(stages) - 1:
        out.append((("stages", launches[0]), "the launch stage must be the last stage"))
    submitted: set[CoveredDesignation] = set()
    gates_workable = True
    for index, stage in enumerate(stages):
        path: FieldPath = ("stages", index)
        if isinstance(stage, GovernmentSubmissionStage):
            submitted.update(stage.applies_to)
        elif isinstance(stage, GovernmentWindowStage):
            _check_window(stage, path, submitted, out)
        elif isinstance(stage, AccessGrantStage):
            _check_access(policy, stage, path, out)
        if isinstance(stage, ApprovalGateStage | AccessGrantStage):
            gates_workable &= _check_gate(policy, stage, path, out)
    out.extend(feasibility.pooled_problems(Scope(policy), gates_workable=gates_workable))


def _check_window(
    stage: GovernmentWindowStage,
    path: FieldPath,
    submitted: set[CoveredDesignation],
    out: _Findings,
) -> None:
    missing = [d.value for d in stage.applies_to if d not in submitted]
    if missing:
        message = (
            f"runs for {', '.join(missing)} releases, but no earlier government_submission stage "
            "does: the government must receive the model before its testing window opens"
        )
        out.append(((*path, "applies_to"), message))
    if stage.duration <= timedelta(0):
        out.append(((*path, "duration"), f"must be longer than zero (got {_show(stage.duration)})"))
    elif stage.duration > MAX_GOVERNMENT_WINDOW:
        limit = MAX_GOVERNMENT_WINDOW.days
        out.append(
            ((*path, "duration"), f"must be at most {limit} days (got {_show(stage.duration)})")
        )
    if stage.max_delay < timedelta(0):
        out.append(((*path, "max_delay"), f"must not be negative (got {_show(stage.max_delay)})"))


def _check_access(policy: Policy, stage: AccessGrantStage, path: FieldPath, out: _Findings) -> None:
    known = [cohort.id for cohort in policy.cohorts]
    if not known:
        out.append((path, "grants partner access, but the policy declares no cohorts"))
    for index, cohort in enumerate(stage.cohorts):
        if known and cohort not in known:
            out.append(
                (
                    (*path, "cohorts", index),
                    f"unknown cohort '{cohort}'{did_you_mean(cohort, known)}",
                )
            )
    if stage.minimum_period < timedelta(0):
        shown = _show(stage.minimum_period)
        out.append(((*path, "minimum_period"), f"must not be negative (got {shown})"))


def _check_gate(
    policy: Policy, stage: ApprovalGateStage | AccessGrantStage, path: FieldPath, out: _Findings
) -> bool:
    """Check a stage's quorum and clocks; return whether its quorum is workable."""
    people = roles_by_person(policy)
    held = {role for roles in people.values() for role in roles}
    workable = True
    if isinstance(stage, ApprovalGateStage) and not stage.quorum:
        message = "an approval gate needs a quorum: at least one requirement, e.g. '- role: safety'"
        out.append(((*path, "quorum"), message))
        workable = False
    for index, requirement in enumerate(stage.quorum):
        req_path = (*path, "quorum", index)
        for role_index, role in enumerate(requirement.roles):
            if role == _RELEASE_MANAGER:
                message = "release_manager can never approve: a submitter may not approve a release"
                out.append(((*req_path, "roles", role_index), message))
                workable = False
            elif role not in held:
                message = f"no one on the roster holds role '{role}'{did_you_mean(role, held)}"
                out.append(((*req_path, "roles", role_index), message))
                workable = False
        eligible = [p for p, roles in people.items() if not roles.isdisjoint(requirement.roles)]
        if eligible and requirement.count > len(eligible):
            message = (
                f"needs {requirement.count} people holding {' or '.join(requirement.roles)}, but "
                f"the roster has only {len(eligible)} ({', '.join(eligible)})"
            )
            out.append(((*req_path, "count"), message))
            workable = False
    if workable and stage.quorum:
        workable = _check_quorum_as_a_whole(policy, stage, path, out)
    _check_gate_clocks(stage, path, held, out)
    return workable


def _check_quorum_as_a_whole(
    policy: Policy,
    stage: ApprovalGateStage | AccessGrantStage,
    path: FieldPath,
    out: _Findings,
) -> bool:
    problem = feasibility.gate_problem(Scope(policy), stage)
    if problem is not None:
        out.append(((*path, "quorum"), problem))
    return problem is None


def _check_gate_clocks(
    stage: GateSettings, path: FieldPath, held: set[str], out: _Findings
) -> None:
    for name in _GATE_CLOCKS:
        value: timedelta | None = getattr(stage, name)
        if value is not None and value <= timedelta(0):
            out.append(((*path, name), f"must be longer than zero (got {_show(value)})"))
    reminder = stage.reminder_every
    if reminder is not None and timedelta(0) < reminder < MIN_REMINDER_INTERVAL:
        # Each reminder is a timer and a notification in the release's history; a gate that
        # waits weeks must not remind every few seconds (and nobody wants that mail).
        out.append(
            (
                (*path, "reminder_every"),
                f"must be at least {_show(MIN_REMINDER_INTERVAL)} (got {_show(reminder)})",
            )
        )
    if stage.escalate_after is None:
        return
    if not stage.escalate_to:
        out.append(((*path, "escalate_to"), "names no role to escalate to"))
    for index, role in enumerate(stage.escalate_to):
        if role not in held:
            message = f"no one on the roster holds role '{role}'{did_you_mean(role, held)}"
            out.append(((*path, "escalate_to", index), message))
    deadline = stage.deadline
    if deadline is not None and timedelta(0) < deadline <= stage.escalate_after:
        message = (
            f"must be shorter than the deadline ({_show(deadline)}), or the gate never "
            f"escalates (got {_show(stage.escalate_after)})"
        )
        out.append(((*path, "escalate_after"), message))


def _check_notifications(policy: Policy, out: _Findings) -> None:
    # Channel names are not checked here: which channels exist is the worker's configuration,
    # and the worker refuses a policy naming one it does not have (routing.unconfigured_channels).
    held = {role for person in policy.roster for role in person.roles}
    people = [person.id for person in policy.roster]
    cohorts = [cohort.id for cohort in policy.cohorts]
    for index, route in enumerate(policy.notifications.routes):
        path = ("notifications", "routes", index)
        to = route.to
        for name, values, known, what in (
            ("roles", to.roles, held, "role"),
            ("people", to.people, people, "person"),
            ("cohorts", to.cohorts, cohorts, "cohort"),
        ):
            for item_index, value in enumerate(values):
                if value not in known:
                    message = f"unknown {what} '{value}'{did_you_mean(value, known)}"
                    out.append(((*path, "to", name, item_index), message))
        if not (to.roles or to.people or to.cohorts or to.concerned):
            message = "has no recipients: name roles, people or cohorts, or set concerned: true"
            out.append(((*path, "to"), message))
