"""``audit verify``: recompute a release's audit chain from a file and name the first altered event.

Accepts a JSON dossier (``audit export --format json``) or an audit-store file (JSONL, one event
per line). Hashes are recomputed over the events *exactly as the file spells them*: an event is
first read as an :class:`~gatekeeper.models.audit.AuditEvent`, and if the file's text is not the
canonical form of that event (say a time written another way, or a string padded with a space
the model would strip), the event counts as altered even though the parsed values look right.

A dossier carries more than the chain, and what the chain vouches for is checked too: the head
and length the release recorded, the policy snapshot against the sha256 in the first event, and
every decision in the decisions table against its audit event. A chain can be re-hashed end to
end, so a dossier's signatures are checked too (:mod:`gatekeeper.dossier.signatures`): every
attestation of a signed request, every head the worker signed, the certificates of their keys up
to the pinned trust root, and the heads anchored outside the workflow (from the anchor table
when given, else those the dossier carries). An audit-store file carries no keys: only its chain
is checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gatekeeper.audit import verify_chain
from gatekeeper.canonical import canonical_json, digest_of
from gatekeeper.dossier.model import DOSSIER_FORMAT
from gatekeeper.dossier.signatures import Problem, SignatureReport, check_signatures
from gatekeeper.errors import InputError
from gatekeeper.identity.heads import Anchor
from gatekeeper.identity.keys import KeyRecord
from gatekeeper.models.audit import AuditEvent

_FORMAT_PREFIX = DOSSIER_FORMAT.rsplit("/", 1)[0]


@dataclass(frozen=True)
class Verification:
    """What verifying a file found. ``message`` is the one line to show a person."""

    ok: bool
    events: int
    head: str
    message: str
    bad_seq: int | None = None


_Altered = Problem


@dataclass(frozen=True)
class Checks:
    """What to check a dossier's signatures against.

    Args:
        trust_root: the pinned root key id every key must chain to.
        anchors: the heads anchored for the release, read from the anchor table; ``None`` to
            use the anchors the dossier carries.
        anchor_keys: the key records of the anchors' signers, read with them (a dossier carries
            only the keys its own chain and the anchors read at export use).
        anchors_from: where ``anchors`` were read, for the verdict.
        unsigned_ok: accept an ended release that no worker signed (one from before signed heads).
    """

    trust_root: str | None = None
    anchors: list[Anchor] | None = None
    #: Key records read with the anchors (the keys that signed them, and their certifiers).
    anchor_keys: list[KeyRecord] = field(default_factory=list)
    anchors_from: str = ""
    unsigned_ok: bool = False


def verify_file(path: Path, checks: Checks | None = None) -> Verification:
    """Verify a JSON dossier or a JSONL audit-store file.

    Raises:
        InputError: the file cannot be read, or is neither a dossier nor an audit file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read: {err}") from err
    return verify_text(text, source=str(path), checks=checks)


def verify_text(text: str, *, source: str = "input", checks: Checks | None = None) -> Verification:
    """Verify the text of a JSON dossier or a JSONL audit-store file."""
    stripped = text.lstrip()
    raw: list[Any]
    dossier: dict[str, Any] | None = None
    try:
        if stripped.startswith("{") and _FORMAT_PREFIX in text[:4000]:
            dossier = _load_dossier(text, source)
            audit = dossier.get("audit")
            if not isinstance(audit, list):
                raise InputError(f"{source}: the dossier has no audit array")
            raw = audit
        else:
            raw = _load_jsonl(text, source)
        events = _events(raw)
        check = verify_chain(events)
        if not check.ok and check.bad_seq is not None:
            raise _Altered(check.bad_seq, _chain_reason(events, check.bad_seq, check.reason))
        report: SignatureReport | None = None
        if dossier is not None:
            _check_dossier(dossier, events)
            checks = checks or Checks()
            report = check_signatures(
                events,
                dossier,
                extra_keys=checks.anchor_keys,
                trust_root=checks.trust_root,
                anchors=checks.anchors,
                anchors_from=checks.anchors_from or "the dossier",
                unsigned_ok=checks.unsigned_ok,
            )
    except _Altered as altered:
        return Verification(
            ok=False, events=0, head="", message=altered.args[0], bad_seq=altered.index
        )
    head = check.head
    message = f"ok: {len(events)} events, head {head}"
    if report is None:
        message += "; chain only (an audit-store file carries no keys: verify a dossier)"
    else:
        message += _summary(report)
    return Verification(True, len(events), head, message)


def _summary(report: SignatureReport) -> str:
    parts = [f"{report.attestations} signed request(s)"]
    if report.heads:
        parts.append(f"{report.heads} signed head(s) up to event {report.signed_through}")
    parts.append(f"{report.anchors} anchor(s) from {report.anchors_from}")
    text = "; " + ", ".join(parts) + " verified"
    if report.kinds:
        # Which kind each signed request has: CLI key, passkey, gateway (SSO issuer subject).
        text += "; signed with " + ", ".join(f"{kind} x{count}" for kind, count in report.kinds)
    if report.unsigned_tail is not None:
        start, end = report.unsigned_tail
        text += f"; events {start}–{end} are not signed yet"
    return text


def _load_dossier(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        index = _audit_line_index(text, err.lineno)
        if index is None:
            raise InputError(
                f"{source}: not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"
            ) from err
        line = text.splitlines()[err.lineno - 1]
        raise _Altered(
            index,
            f"altered: event #{index}{_label_from_text(line)}: line {err.lineno} is not valid "
            f"JSON ({err.msg})",
        ) from err
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith(_FORMAT_PREFIX):
        raise InputError(f"{source}: not a Gatekeeper dossier")
    return data


def _audit_line_index(text: str, lineno: int) -> int | None:
    """Which audit event a line of an exported dossier holds (one event per line)."""
    lines = text.splitlines()
    starts = [n for n, line in enumerate(lines, start=1) if line.strip() == '"audit": [']
    if not starts:
        return None
    start = starts[-1]
    end = next((n for n in range(start + 1, len(lines) + 1) if lines[n - 1].strip() == "]"), 0)
    return lineno - start - 1 if start < lineno < end else None


def _load_jsonl(text: str, source: str) -> list[Any]:
    events: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == 1 and not line.lstrip().startswith("{"):
                raise InputError(f"{source}: neither a dossier nor an audit file") from err
            raise _Altered(
                len(events),
                f"altered: event #{len(events)}{_label_from_text(line)}: line {number} is not "
                f"valid JSON ({err.msg})",
            ) from err
    if not events:
        raise InputError(f"{source}: no audit events")
    return events


def _events(raw: list[Any]) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _Altered(index, f"altered: event #{index}: not a JSON object")
        try:
            event = AuditEvent.model_validate(item)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            raise _Altered(
                index,
                f"altered: event #{index}{_label(item)}: not an audit event ({where}: {first['msg']})",
            ) from err
        if canonical_json({**event.body(), "hash": event.hash}) != canonical_json(item):
            raise _Altered(
                index,
                f"altered: event #{index}{_label(item)}: its text is not the canonical form of "
                "its content (a value was rewritten)",
            )
        events.append(event)
    return events


def _chain_reason(events: list[AuditEvent], index: int, reason: str) -> str:
    event = events[index]
    if event.seq > index:
        previous = f"#{index - 1}" if index else "the start"
        return (
            f"altered: event #{index} is missing: the chain jumps from {previous} to #{event.seq}"
        )
    return f"altered: event #{index}{_label(event.model_dump(mode='json'))}: {reason}"


_ACTION = re.compile(r'"action"\s*:\s*"([a-z_]{1,64})"')
_AT = re.compile(r'"at"\s*:\s*"([0-9T:.+Z-]{10,40})"')


def _label_from_text(line: str) -> str:
    """The action and time of an event whose line no longer parses, if they are still legible."""
    action, at = _ACTION.search(line), _AT.search(line)
    return f" ({action.group(1)} at {at.group(1)})" if action and at else ""


def _label(item: dict[str, Any]) -> str:
    action, at = item.get("action"), item.get("at")
    return f" ({action} at {at})" if action and at else ""


def _check_dossier(dossier: dict[str, Any], events: list[AuditEvent]) -> None:
    found = dossier.get("status")
    status: dict[str, Any] = found if isinstance(found, dict) else {}
    recorded = status.get("audit_length")
    head = events[-1].hash if events else ""
    if isinstance(recorded, int) and recorded > len(events):
        raise _Altered(
            len(events),
            f"altered: event #{len(events)} and later are missing: the release recorded "
            f"{recorded} events, the file holds {len(events)}",
        )
    if dossier.get("audit_head") not in (None, head) or (
        recorded == len(events) and status.get("audit_head") not in (None, head)
    ):
        raise _Altered(None, "altered: the chain's head is not the head the release recorded")
    _check_policy(dossier, events)
    _check_decisions(dossier, events)
    _check_status(dossier, events)


def _check_policy(dossier: dict[str, Any], events: list[AuditEvent]) -> None:
    anchored = events[0].details.get("policy_sha256") if events else None
    claimed = dossier.get("policy_sha256")
    if anchored is not None and claimed != anchored:
        raise _Altered(None, "altered: the dossier's policy_sha256 is not the one in event #0")
    policy = dossier.get("policy")
    if isinstance(policy, dict) and anchored is not None and digest_of(policy) != anchored:
        raise _Altered(
            None, "altered: the policy snapshot does not match the sha256 recorded in event #0"
        )


def _check_decisions(dossier: dict[str, Any], events: list[AuditEvent]) -> None:
    """Every decision the dossier shows, in its table and in the status, has its audit event."""
    recorded = [
        (e.action.removeprefix("decision_"), e.details)
        for e in events
        if e.action.startswith("decision_")
    ]
    shown: list[Any] = list(_as_list(dossier.get("decisions")))
    for gate in _as_dict(_as_dict(dossier.get("status")).get("gates")).values():
        shown += _as_list(_as_dict(gate).get("decisions"))
    for entry in shown:
        if not isinstance(entry, dict):
            raise _Altered(None, "altered: a decision in the dossier is not a JSON object")
        if not any(_same_decision(entry, kind, details) for kind, details in recorded):
            raise _Altered(
                None,
                f"altered: the decision of {entry.get('person')} at {entry.get('at')} "
                f"({entry.get('kind')}) is not in the audit chain",
            )


def _same_decision(entry: dict[str, Any], kind: str, details: dict[str, Any]) -> bool:
    return kind == entry.get("kind") and all(
        details.get(name) == entry.get(name)
        for name in ("person", "role", "on_behalf_of", "at", "comment", "signature")
    )


def _check_status(dossier: dict[str, Any], events: list[AuditEvent]) -> None:
    """The status's spec, outcome, government receipt and grants agree with the chain."""
    status = _as_dict(dossier.get("status"))
    by_action: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_action.setdefault(event.action, []).append(event.details)
    spec = _as_dict(status.get("spec"))
    [started] = by_action.get("release_started", [{}])[:1] or [{}]
    facts = {
        "model": _as_dict(spec.get("model")).get("name"),
        "version": _as_dict(spec.get("model")).get("version"),
        "artifact_sha256": _as_dict(spec.get("artifact")).get("sha256"),
        "risk_tier": spec.get("risk_tier"),
        "covered_model": spec.get("covered_model"),
    }
    for name, value in facts.items():
        if started and started.get(name) != value:
            raise _Altered(None, f"altered: the spec's {name} is not the one in event #0")
    state = status.get("state")
    if state in ("launched", "rejected", "withdrawn"):
        ends = by_action.get(f"release_{state}", [])
        if not any(d.get("outcome") == status.get("outcome") for d in ends):
            raise _Altered(
                None, f"altered: the release's outcome ({state}) is not the one in the chain"
            )
    receipt = _as_dict(_as_dict(status.get("government")).get("receipt"))
    if receipt and not any(
        d.get("receipt_id") == receipt.get("receipt_id")
        and d.get("clearinghouse") == receipt.get("clearinghouse")
        for d in by_action.get("government_submitted", [])
    ):
        raise _Altered(None, "altered: the government receipt is not the one in the chain")
    granted = {g for d in by_action.get("access_granted", []) for g in _as_list(d.get("grants"))}
    for grant in _as_list(status.get("grants")):
        if _as_dict(grant).get("grant_id") not in granted:
            raise _Altered(
                None,
                f"altered: grant {_as_dict(grant).get('grant_id')} is not in the audit chain",
            )


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
