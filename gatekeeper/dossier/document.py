"""The dossier laid out for people: titled sections of facts and tables, format-neutral.

Markdown and HTML render the same :func:`sections`, so the two never disagree about what a
dossier says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gatekeeper import text
from gatekeeper.dossier.model import Dossier
from gatekeeper.models.status import GrantSummary, ReleaseStatus
from gatekeeper.stages import leaves_when
from gatekeeper.status_view import StatusView, view

#: Characters of an audit event's details shown in the timeline (the JSON has them all).
DETAILS_SHOWN = 160


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def title(dossier: Dossier) -> str:
    model = dossier.status.spec.model
    return f"Release dossier: {model.name} {model.version} (release {dossier.release_id})"


def sections(dossier: Dossier) -> list[Section]:
    """Every section of the dossier, in reading order."""
    status = dossier.status
    v = view(status)
    return [
        _summary(dossier, v),
        _spec(status),
        _policy(dossier),
        _stages(v),
        _decisions(dossier),
        _government(v),
        _access(status, v),
        _operations(v),
        _notifications(dossier),
        _signatures(dossier),
        _timeline(dossier),
    ]


#: How times read in a dossier: to the second, ``2026-12-27 09:30:12 UTC``.
when = partial(text.when, seconds=True)


def _summary(dossier: Dossier, v: StatusView) -> Section:
    return Section(
        "Summary",
        facts=[
            ("State", v.state.value),
            ("Outcome", v.outcome or "—"),
            ("Current stage", v.stage or "—"),
            ("Started", when(v.started_at)),
            ("Ended", when(v.ended_at)),
            ("Submitted by", v.submitter),
            (
                "Workflow",
                f"{dossier.workflow_id} (run {dossier.run_id or '—'}, {dossier.execution})",
            ),
            ("Audit chain", f"{len(dossier.audit)} events, head {dossier.audit_head}"),
            ("Exported", when(dossier.exported_at)),
        ],
        notes=[
            "The JSON dossier holds every audit event in full; `gatekeeper audit verify "
            "<dossier.json>` recomputes the chain and names the first event that was altered."
        ],
    )


def _spec(status: ReleaseStatus) -> Section:
    spec = status.spec
    checks = {c.id: c.result for c in status.evidence_checks}
    return Section(
        "Release spec",
        facts=[
            ("Model", f"{spec.model.name} {spec.model.version}"),
            ("Artifact", f"{spec.artifact.uri} (sha256 {spec.artifact.sha256})"),
            ("Risk tier", spec.risk_tier.value),
            ("Covered model", spec.covered_model.value),
            ("Partner cohorts", ", ".join(spec.partner_cohorts) or "—"),
            ("Regions", ", ".join(spec.regions) or "—"),
        ],
        tables=[
            Table(
                ["evidence", "kind", "sha256", "uri", "check"],
                [
                    [e.id, e.kind.value, e.sha256, e.uri, checks.get(e.id, "—")]
                    for e in spec.evidence
                ],
            )
        ],
    )


def _policy(dossier: Dossier) -> Section:
    policy = dossier.policy
    facts = [
        ("Policy", f"{dossier.status.policy_id} v{dossier.status.policy_version}"),
        ("sha256", dossier.policy_sha256),
        ("Snapshot", f"{dossier.policy_check} the recorded sha256"),
    ]
    if policy is None:
        return Section("Policy", facts=facts, notes=["The policy snapshot could not be read."])
    return Section(
        "Policy",
        facts=facts,
        tables=[
            Table(
                ["stage", "kind", "title", "leaves when"],
                [[s.id, s.kind.value, s.label, leaves_when(s)] for s in policy.stages],
            ),
            Table(
                ["person", "name", "roles", "signing key"],
                [
                    [p.id, p.name, ", ".join(p.roles), "yes" if p.public_key else "—"]
                    for p in policy.roster
                ],
            ),
        ],
    )


def _stages(v: StatusView) -> Section:
    return Section(
        "Stages",
        tables=[
            Table(
                ["stage", "kind", "status", "started", "ended", "note"],
                [
                    [
                        s.id,
                        s.kind.value,
                        s.status.value,
                        when(s.started_at),
                        when(s.ended_at),
                        s.note,
                    ]
                    for s in v.stages
                ],
            )
        ],
    )


def _decisions(dossier: Dossier) -> Section:
    rows = []
    for d in dossier.decisions:
        who = d.person + (f" for {d.on_behalf_of}" if d.on_behalf_of else "")
        signature: str = d.signature_check
        if d.signed_with:
            signature += f" ({d.signed_with})"
        if d.signature is not None:
            signature += f" (signed {when(d.signature.signed_at)}, nonce {d.signature.nonce})"
        validity = "valid" if d.valid else f"lapsed: {d.invalidated_reason}"
        rows.append([d.stage, d.kind, who, d.role, when(d.at), signature, validity, d.comment])
    return Section(
        "Decisions",
        tables=[
            Table(
                ["stage", "decision", "decider", "role", "at", "signature", "validity", "comment"],
                rows,
            )
        ],
        notes=[] if rows else ["No decisions were recorded."],
    )


def _government(v: StatusView) -> Section:
    gov = v.government
    facts = [
        (
            "Receipt",
            f"{gov.receipt_id} from {gov.clearinghouse} at {when(gov.received_at)}"
            if gov.receipt_id
            else "—",
        ),
        ("Window opened", when(gov.window_opened_at)),
        ("Window was to end", when(gov.window_original_ends_at)),
        ("Window ends / ended", when(gov.window_ends_at)),
        ("Window closed", when(gov.window_closed_at)),
        ("Cleared", f"{when(gov.cleared_at)} by {gov.cleared_by}" if gov.cleared_at else "—"),
    ]
    tables = []
    if gov.delays:
        tables.append(
            Table(
                ["delay requested", "by", "until", "effect", "reference"],
                [
                    [when(d.requested_at), d.by, when(d.until), d.effect, d.reference]
                    for d in gov.delays
                ],
            )
        )
    if gov.concerns:
        tables.append(
            Table(
                ["concern", "raised", "by", "text", "resolved"],
                [
                    [
                        c.id,
                        when(c.raised_at),
                        c.raised_by,
                        c.text,
                        f"{when(c.resolved_at)} by {c.resolved_by}" if c.resolved_at else "open",
                    ]
                    for c in gov.concerns
                ],
            )
        )
    return Section("Government testing", facts=facts, tables=tables)


def _access(status: ReleaseStatus, v: StatusView) -> Section:
    rows = [
        [
            g.partner_id + (f" ({g.partner_name})" if g.partner_name else ""),
            g.cohort,
            g.jurisdiction,
            g.surface.value,
            g.status,
            when(g.granted_at),
            when(g.changed_at),
            g.reason + (f" [order {g.order_id}]" if g.order_id else ""),
        ]
        for g in status.grants
    ]
    return Section(
        "Partner access: grants and revocations",
        tables=[
            Table(
                [
                    "partner",
                    "cohort",
                    "jurisdiction",
                    "surface",
                    "status",
                    "granted",
                    "changed",
                    "reason",
                ],
                rows,
            )
        ],
        facts=_grant_facts(v.grants),
        notes=_grant_notes(status, len(rows)),
    )


def _grant_facts(summary: GrantSummary) -> list[tuple[str, str]]:
    if not summary.total:
        return []
    return [
        ("Grants", f"{summary.total} to {summary.partners} partner(s)"),
        (
            "Now",
            f"{summary.active} active, {summary.suspended} suspended, {summary.revoked} revoked",
        ),
        ("By cohort", ", ".join(f"{c}: {n}" for c, n in summary.cohorts.items()) or "—"),
        ("Digest of every grant id", ", ".join(d[:16] + "…" for d in summary.digests) or "—"),
    ]


def _grant_notes(status: ReleaseStatus, listed: int) -> list[str]:
    if not listed:
        return ["No partner was granted access."]
    total = status.grant_summary.total
    if total > listed:
        return [
            f"The first {listed} of {total} grants are listed; the access registry holds them all "
            f"(`gatekeeper access grants {status.release_id}`), and the digest above, recorded in "
            "the audit chain, proves that list complete."
        ]
    return []


def _operations(v: StatusView) -> Section:
    tables = []
    if v.holds:
        tables.append(
            Table(
                ["hold", "by", "reason", "at", "until", "released"],
                [
                    [
                        h.kind,
                        h.by,
                        h.reason,
                        when(h.at),
                        when(h.until),
                        f"{when(h.released_at)} by {h.released_by}" if h.released_at else "—",
                    ]
                    for h in v.holds
                ],
            )
        )
    if v.suspensions:
        tables.append(
            Table(
                ["order", "scope", "by", "reason", "at", "lifted"],
                [
                    [
                        s.order_id,
                        s.scope,
                        s.by,
                        s.reason,
                        when(s.at),
                        f"{when(s.lifted_at)} by {s.lifted_by}" if s.lifted_at else "—",
                    ]
                    for s in v.suspensions
                ],
            )
        )
    if v.delegations:
        tables.append(
            Table(
                ["delegated by", "to", "role", "at", "until", "reason"],
                [[d.by, d.to, d.role, when(d.at), when(d.until), d.reason] for d in v.delegations],
            )
        )
    notes = [] if tables else ["No holds, access orders or delegations."]
    return Section("Holds, access orders and delegations", tables=tables, notes=notes)


def _notifications(dossier: Dossier) -> Section:
    rows = []
    for n in dossier.notifications:
        channels = sorted({d.channel for d in n.deliveries})
        people = sorted({d.recipient for d in n.deliveries})
        shown = ", ".join(people[:6]) + (f" and {len(people) - 6} more" if len(people) > 6 else "")
        rows.append(
            [
                "—" if n.audit_seq is None else str(n.audit_seq),
                n.event,
                n.subject,
                f"{len(n.deliveries)}: {shown}",
                ", ".join(channels),
                when(n.occurred_at),
            ]
        )
    source = dossier.notifications_source or "no send journal was available"
    return Section(
        "Notifications sent",
        tables=[Table(["audit #", "event", "subject", "deliveries", "channels", "at"], rows)],
        notes=[f"From {source}."],
    )


def _signatures(dossier: Dossier) -> Section:
    heads = Table(
        ["event", "hash", "signed", "by key", "why"],
        [
            [
                str(h.head.seq),
                h.head.hash[:16] + "…",
                h.head.signed_at,
                h.head.key_id,
                h.head.reason,
            ]
            for h in dossier.signed_heads
        ],
    )
    anchors = Table(
        ["event", "hash", "signed", "anchored", "why"],
        [
            [
                str(a.head.seq),
                a.head.hash[:16] + "…",
                a.head.signed_at,
                when(a.anchored_at),
                a.head.reason,
            ]
            for a in dossier.anchors
        ],
    )
    keys = Table(
        ["key", "of", "kind", "certified by", "valid from", "valid until", "revoked"],
        [
            [
                k.key_id,
                k.principal,
                k.principal_kind.value + (f" (passkey, {k.origin})" if k.origin else ""),
                "itself (trust root)" if k.certified_by == k.key_id else k.certified_by,
                when(k.valid_from),
                when(k.valid_until),
                when(k.revoked_at),
            ]
            for k in dossier.keys
        ],
    )
    source = dossier.anchors_source or "the anchor table could not be reached at export"
    return Section(
        "Signatures: signed heads, anchors and keys",
        tables=[heads, anchors, keys],
        notes=[
            f"Anchors from {source}. `gatekeeper audit verify <dossier.json> --trust-root "
            "KEY_ID` re-checks every signature, signed head and anchor offline, the keys' "
            "certificates up to the pinned trust root included."
        ],
    )


def _timeline(dossier: Dossier) -> Section:
    return Section(
        "Timeline (the audit chain)",
        tables=[
            Table(
                ["#", "at", "actor", "action", "stage", "details", "hash"],
                [
                    [
                        str(e.seq),
                        when(e.at),
                        e.actor,
                        e.action,
                        e.stage or "—",
                        _details(e.details),
                        e.hash[:16] + "…",
                    ]
                    for e in dossier.audit
                ],
            )
        ],
    )


def _details(details: dict[str, Any]) -> str:
    text = json.dumps(details, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)
    return text if len(text) <= DETAILS_SHOWN else text[: DETAILS_SHOWN - 1] + "…"
