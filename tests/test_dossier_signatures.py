"""``audit verify`` re-checks a dossier's signatures offline: attestations, signed heads, the
certificates of their keys up to the pinned trust root, and the anchors.

The chains here are built with the same functions the workflow and the worker use (the audit
chain, ``sign_request``'s statement, ``sign_head``), with keys certified as the identity registry
certifies them; a forger's edits are made the way a forger would make them, recomputing every hash.
"""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatekeeper.audit import AuditChain, event_hash
from gatekeeper.canonical import canonical_json
from gatekeeper.dossier import DOSSIER_FORMAT, verify_text
from gatekeeper.dossier.verify import Checks
from gatekeeper.identity.heads import HEAD_ACTION, LINK_LENGTH, Anchor, sign_head
from gatekeeper.identity.keys import KeyRecord, PrincipalKind, certificate_bytes, key_id_of
from gatekeeper.models.audit import AuditEvent
from gatekeeper.statements import Binding, public_key_b64, statement

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RELEASE = "aurora-2"
RUN = "0196-first-run"


def certified(
    key: Ed25519PrivateKey,
    principal: str,
    kind: PrincipalKind,
    by: Ed25519PrivateKey | None,
    *,
    revoked_at: datetime | None = None,
) -> KeyRecord:
    """A key record certified by ``by`` (itself when ``None``: a trust root)."""
    public = public_key_b64(key)
    certifier = by or key
    record = KeyRecord(
        key_id=key_id_of(public),
        principal=principal,
        principal_kind=kind,
        public_key=public,
        valid_from=T0 - timedelta(days=30),
        revoked_at=revoked_at,
        certified_by=key_id_of(public_key_b64(certifier)),
        certificate="",
    )
    value = certifier.sign(certificate_bytes(record))
    return record.model_copy(update={"certificate": base64.b64encode(value).decode()})


class Installation:
    """A trust root, an identity admin, a worker and two reviewers, all registered."""

    def __init__(self) -> None:
        self.root = Ed25519PrivateKey.generate()
        self.admin = Ed25519PrivateKey.generate()
        self.worker = Ed25519PrivateKey.generate()
        self.people = {p: Ed25519PrivateKey.generate() for p in ("sam.safety", "lena.fischer")}
        self.records = [
            certified(self.root, "identity-root", PrincipalKind.ADMIN, None),
            certified(self.admin, "identity-admin", PrincipalKind.ADMIN, self.root),
            certified(self.worker, "worker", PrincipalKind.WORKER, self.admin),
        ] + [
            certified(key, person, PrincipalKind.PERSON, self.admin)
            for person, key in self.people.items()
        ]

    @property
    def root_id(self) -> str:
        return self.records[0].key_id


class Release:
    """A release's chain as the workflow writes it: signed requests and signed heads."""

    def __init__(self, installation: Installation) -> None:
        self.inst = installation
        self.chain = AuditChain(RELEASE)
        self.clock = T0
        self.signed_through = -1
        self.anchors: list[Anchor] = []

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=1)
        return self.clock

    def event(
        self, action: str, details: dict[str, Any] | None = None, actor: str = "gatekeeper"
    ) -> None:
        self.chain.append(at=self.tick(), actor=actor, action=action, details=details or {})

    def signed(
        self,
        action: str,
        person: str,
        request: dict[str, Any],
        key: Ed25519PrivateKey | None = None,
    ) -> None:
        key = key or self.inst.people[person]
        binding = Binding(subject_id=RELEASE, first_run_id=RUN, stage="internal_review")
        body = statement(
            action=action,
            actor=person,
            request=request,
            binding=binding,
            key_id=key_id_of(public_key_b64(key)),
            signed_at=self.clock,
            nonce=f"nonce-{len(self.chain):012d}",
        )
        value = base64.b64encode(key.sign(canonical_json(body))).decode()
        self.event(
            f"decision_{action}" if action in ("approve", "reject") else action,
            {**request, "attestation": {"statement": body, "signature": value}},
            actor=person,
        )

    def sign_head(self, reason: str) -> None:
        head = self.chain.events[-1]
        first = self.signed_through + 1
        signed = sign_head(
            self.inst.worker,
            release_id=RELEASE,
            first_run_id=RUN,
            seq=head.seq,
            hash=head.hash,
            reason=reason,
            first=first,
            links=[e.hash[:LINK_LENGTH] for e in self.chain.events[first : head.seq + 1]],
            signed_at=self.tick(),
        )
        self.signed_through = head.seq
        self.anchors.append(
            Anchor(head=signed.head, signature=signed.signature, anchored_at=self.clock)
        )
        self.event(HEAD_ACTION, signed.model_dump(mode="json"))

    def dossier(self) -> dict[str, Any]:
        return {
            "format": DOSSIER_FORMAT,
            "exported_at": self.tick().isoformat(),
            "release_id": RELEASE,
            "audit": [e.model_dump(mode="json") for e in self.chain.events],
            "keys": [r.model_dump(mode="json") for r in self.inst.records],
            "anchors": [a.model_dump(mode="json") for a in self.anchors],
        }


def rejected(inst: Installation) -> Release:
    """A release whose internal review delegated, approved, then rejected (every head signed)."""
    release = Release(inst)
    release.event("release_started")
    release.event("stage_entered")
    release.signed("delegate", "sam.safety", {"to": "lena.fischer", "role": "safety"})
    release.signed("approve", "lena.fischer", {"decider": "lena.fischer", "role": "safety"})
    release.event("stage_completed")
    release.sign_head("stage internal_review completed")
    release.event("stage_entered")
    release.signed("reject", "sam.safety", {"decider": "sam.safety", "role": "safety"})
    release.event("release_rejected", {"outcome": "rejected"})
    release.sign_head("release rejected")
    return release


def text(dossier: dict[str, Any]) -> str:
    return json.dumps(dossier, indent=2)


def rehash(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Renumber and re-link every event and recompute every hash, as a forger would."""
    previous = "0" * 64
    out = []
    for seq, raw in enumerate(events):
        event = AuditEvent.model_validate({**raw, "seq": seq, "prev_hash": previous, "hash": ""})
        event.hash = event_hash(event)
        previous = event.hash
        out.append(event.model_dump(mode="json"))
    return out


@pytest.fixture
def inst() -> Installation:
    return Installation()


class TestAnIntactDossier:
    """A dossier as exported verifies offline against the pinned root, saying what it checked."""

    def test_it_verifies(self, inst: Installation) -> None:
        result = verify_text(text(rejected(inst).dossier()), checks=Checks(trust_root=inst.root_id))

        assert result.ok, result.message
        assert "3 signed request(s), 2 signed head(s) up to event 8, 2 anchor(s)" in result.message

    def test_without_a_pinned_root_nothing_signed_verifies(self, inst: Installation) -> None:
        result = verify_text(text(rejected(inst).dossier()), checks=Checks())

        assert not result.ok
        assert result.bad_seq == 2
        assert "no trust root is pinned: pass --trust-root KEY_ID" in result.message

    def test_a_running_release_says_which_events_are_not_signed_yet(
        self, inst: Installation
    ) -> None:
        release = rejected(inst)
        release.chain.events[:] = release.chain.events[:7]  # before the rejection
        release.anchors = release.anchors[:1]

        result = verify_text(text(release.dossier()), checks=Checks(trust_root=inst.root_id))

        assert result.ok, result.message
        assert result.message.endswith("events 6–6 are not signed yet")


class TestForgedDossiers:
    """A dossier edited and re-hashed end to end fails, naming the first event that differs."""

    def test_dropping_a_delegation_and_renaming_the_approver(self, inst: Installation) -> None:
        dossier = rejected(inst).dossier()
        events = dossier["audit"]
        del events[2]  # the delegation
        events[2]["actor"] = "sam.safety"  # the approval is now sam's own
        events[2]["details"]["decider"] = "sam.safety"
        del events[2]["details"]["attestation"]  # which would name lena.fischer
        dossier["audit"] = rehash(events)
        dossier["anchors"] = []  # and the forger drops the anchors they cannot re-sign

        result = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert result.bad_seq == 2
        assert result.message.startswith("altered: event #2 (decision_approve at ")
        assert "the head signed by the worker at" in result.message

    def test_renaming_the_actor_of_a_signed_request(self, inst: Installation) -> None:
        release = Release(inst)
        release.event("release_started")
        release.signed("approve", "lena.fischer", {"decider": "lena.fischer", "role": "safety"})
        dossier = release.dossier()
        dossier["audit"][1]["actor"] = "sam.safety"
        dossier["audit"] = rehash(dossier["audit"])

        result = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert result.bad_seq == 1
        assert "the event names sam.safety, the signed statement lena.fischer" in result.message

    def test_a_statement_edited_after_signing(self, inst: Installation) -> None:
        release = Release(inst)
        release.event("release_started")
        release.signed("approve", "lena.fischer", {"decider": "lena.fischer", "role": "safety"})
        dossier = release.dossier()
        dossier["audit"][1]["details"]["attestation"]["statement"]["request"]["role"] = "legal"
        dossier["audit"] = rehash(dossier["audit"])

        result = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert result.bad_seq == 1
        assert "the signature of lena.fischer does not verify" in result.message

    def test_stripping_every_signature_of_an_ended_release(self, inst: Installation) -> None:
        dossier = rejected(inst).dossier()
        kept = [e for e in dossier["audit"] if e["action"] != HEAD_ACTION]
        for event in kept:
            event["details"].pop("attestation", None)
        dossier["audit"] = rehash(kept)
        dossier["anchors"] = []

        result = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert result.message.startswith("not signed: the release ended at event #7")
        unsigned = verify_text(
            text(dossier), checks=Checks(trust_root=inst.root_id, unsigned_ok=True)
        )
        assert unsigned.ok, unsigned.message

    def test_a_head_signed_by_a_person(self, inst: Installation) -> None:
        release = rejected(inst)
        release.inst.worker = inst.people["sam.safety"]
        release.sign_head("forged")
        dossier = release.dossier()
        dossier["anchors"] = dossier["anchors"][:2]

        result = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert result.bad_seq == 10
        assert "signed by sam.safety, not by a worker" in result.message

    def test_a_key_revoked_before_it_signed(self, inst: Installation) -> None:
        inst.records[3] = certified(
            inst.people["sam.safety"],
            "sam.safety",
            PrincipalKind.PERSON,
            inst.admin,
            revoked_at=T0,
        )

        result = verify_text(text(rejected(inst).dossier()), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert result.bad_seq == 2
        assert "of sam.safety was revoked at" in result.message


class TestRelayedOrderRequests:
    """An access order's request relayed to a release counts when a worker's key signed it, and
    only then; a person's request counts only with that person's key."""

    def test_a_worker_signs_what_an_order_relays(self, inst: Installation) -> None:
        release = Release(inst)
        release.event("release_started")
        request = {"order_id": "ord-1", "by": "access-order-ord-1", "scope": "everyone"}
        release.signed("suspend_access", "access-order-ord-1", request, key=inst.worker)

        result = verify_text(text(release.dossier()), checks=Checks(trust_root=inst.root_id))

        assert result.ok, result.message
        assert "1 signed request(s)" in result.message

    def test_a_person_cannot_sign_for_an_order(self, inst: Installation) -> None:
        release = Release(inst)
        release.event("release_started")
        request = {"order_id": "ord-1", "by": "access-order-ord-1", "scope": "everyone"}
        release.signed(
            "suspend_access", "access-order-ord-1", request, key=inst.people["sam.safety"]
        )

        result = verify_text(text(release.dossier()), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert "access-order-ord-1's request is signed by sam.safety, not by a worker" in (
            result.message
        )

    def test_a_worker_cannot_sign_for_a_person(self, inst: Installation) -> None:
        release = Release(inst)
        release.event("release_started")
        release.signed(
            "approve", "sam.safety", {"decider": "sam.safety", "role": "safety"}, key=inst.worker
        )

        result = verify_text(text(release.dossier()), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert "signed with a key of worker, not of sam.safety" in result.message


class TestTrustRoot:
    """Keys must chain, certificate by certificate, to the pinned root."""

    def test_a_dossier_signed_under_another_root_fails(self, inst: Installation) -> None:
        other = Installation()

        result = verify_text(
            text(rejected(other).dossier()), checks=Checks(trust_root=inst.root_id)
        )

        assert not result.ok
        assert result.bad_seq == 2
        assert f"chains to root {other.root_id}, not to the pinned trust root {inst.root_id}" in (
            result.message
        )

    def test_a_key_swapped_into_the_dossier_has_no_valid_certificate(
        self, inst: Installation
    ) -> None:
        dossier = rejected(inst).dossier()
        mallory = Ed25519PrivateKey.generate()
        forged = certified(mallory, "sam.safety", PrincipalKind.PERSON, None).model_copy(
            update={"certified_by": inst.records[1].key_id}
        )
        dossier["keys"].append(forged.model_dump(mode="json"))
        dossier["audit"][2]["details"]["attestation"]["statement"]["key_id"] = forged.key_id
        dossier["audit"] = rehash(dossier["audit"])

        result = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert result.bad_seq == 2
        assert f"the certificate of key {forged.key_id} does not verify" in result.message

    def test_a_certificate_by_someone_who_is_not_an_admin(self, inst: Installation) -> None:
        rogue = Ed25519PrivateKey.generate()
        inst.people["sam.safety"] = rogue
        inst.records[3] = certified(
            rogue, "sam.safety", PrincipalKind.PERSON, inst.people["lena.fischer"]
        )

        result = verify_text(text(rejected(inst).dossier()), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert "which is not an identity admin" in result.message


class TestAnchors:
    """A chain that disagrees with an anchored head is a fork, named by its first event."""

    def test_a_chain_rewritten_after_the_last_anchor_forks(self, inst: Installation) -> None:
        original = rejected(inst)
        # What a reset to before the rejection leaves: the chain up to event 6, then it runs on
        # differently (no rejection), signed again by the same worker.
        reset = Release(inst)
        reset.chain = AuditChain(RELEASE, original.chain.events[:7])
        reset.signed_through = original.signed_through
        reset.anchors = list(original.anchors[:1])
        reset.clock = original.clock
        reset.signed("approve", "sam.safety", {"decider": "sam.safety", "role": "safety"})
        dossier = reset.dossier()

        offline = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))
        stored = verify_text(
            text(dossier),
            checks=Checks(trust_root=inst.root_id, anchors=original.anchors, anchors_from="db"),
        )

        assert offline.ok, offline.message
        assert not stored.ok
        assert stored.bad_seq == 7
        assert stored.message.startswith(
            f"fork at event 7: anchored head {original.anchors[1].head.hash[:16]}… (event 8, "
            f"release rejected) signed at {original.anchors[1].head.signed_at} is not this "
            "dossier's"
        )

    def test_a_shorter_chain_than_an_anchored_head_forks(self, inst: Installation) -> None:
        original = rejected(inst)
        cut = copy.deepcopy(original)
        cut.chain.events[:] = cut.chain.events[:7]
        dossier = cut.dossier()

        result = verify_text(
            text(dossier),
            checks=Checks(trust_root=inst.root_id, anchors=original.anchors, anchors_from="db"),
        )

        assert not result.ok
        assert result.message.startswith("fork at event 7: anchored head")
        assert result.message.endswith("(the dossier ends at event 6)")

    def test_a_forged_anchor_is_refused(self, inst: Installation) -> None:
        release = rejected(inst)
        dossier = release.dossier()
        dossier["anchors"][0]["head"]["hash"] = "f" * 64

        result = verify_text(text(dossier), checks=Checks(trust_root=inst.root_id))

        assert not result.ok
        assert "the anchored head's signature does not verify" in result.message


class TestAuditStoreFile:
    """An audit-store file carries no keys: only its chain is checked, and the verdict says so."""

    def test_chain_only(self, inst: Installation) -> None:
        lines = "\n".join(
            json.dumps(e.model_dump(mode="json")) for e in rejected(inst).chain.events
        )

        result = verify_text(lines, checks=Checks(trust_root=inst.root_id))

        assert result.ok
        assert result.message.endswith(
            "chain only (an audit-store file carries no keys: verify a dossier)"
        )
