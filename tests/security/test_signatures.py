"""Every state-changing request is signed by a registered, currently valid key of its actor.

Attacks on each update of a release and of an access order, through a raw Temporal client, the
stock ``temporal`` CLI with raw JSON, and our CLI: a missing, forged, tampered, replayed,
cross-release, earlier-release, cross-stage, stale, revoked-key, unknown-key or wrong-digest
signature is refused in its validator in one line; the release (or order) is unchanged and its
history holds no new update. Each attack is checked against a request that, signed honestly,
is then accepted: what refused it was the signature, not the rules.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from gatekeeper.errors import RegistryError
from gatekeeper.models import DecisionKind, DecisionRequest, DelegationRequest, ReleaseStatus
from gatekeeper.models.messages import DelegationRevocation
from gatekeeper.signed_requests import ACTOR_FIELDS, order_binding, release_binding
from gatekeeper.statements import Binding, public_key_b64, sign_request
from tests import factories, signing
from tests.identity_fixtures import admin_key
from tests.orders.conftest import OrderHarness, orders, partner_policy, release_spec, unique
from tests.security.process import environment, gatekeeper
from tests.workflows.test_interop import temporal

OPERATOR, LIAISON, SUBMITTER = factories.OPERATOR, factories.LIAISON, factories.SUBMITTER
UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED,
}
ORDER_ACTOR = "access-order-sig"
__all__ = ["orders"]  # the fixture


def later(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


# --- a release (or order) where the honest request of each update is accepted -----------------


@dataclass
class Target:
    """Where a request goes and what an honest sender would send."""

    handle: WorkflowHandle[Any, Any]
    update: str
    body: dict[str, Any]
    binding: Callable[[], Awaitable[Binding]]
    #: Another subject of the same kind (for the cross-release attack).
    other: Callable[[], Awaitable[Binding]]
    snapshot: Callable[[], Awaitable[Any]]


async def at_review(h: OrderHarness) -> str:
    status = await h.start(spec=factories.spec(f"r-sig-{uuid.uuid4().hex[:8]}"))
    await h.at_stage(status.release_id, "internal_review")
    return status.release_id


async def held(h: OrderHarness) -> str:
    rid = await at_review(h)
    await send(h, rid, "hold", {"by": OPERATOR, "reason": "incident"})
    return rid


async def delegated(h: OrderHarness) -> str:
    rid = await at_review(h)
    await h.releases.delegate(
        rid, DelegationRequest(by="sam.safety", to="lee.legal", role="safety", until=later())
    )
    return rid


async def suspended(h: OrderHarness) -> str:
    rid = await at_review(h)
    await send(
        h,
        rid,
        "suspend_access",
        {"order_id": "sig", "by": ORDER_ACTOR, "scope": "everyone", "reason": "order"},
    )
    return rid


async def in_window(h: OrderHarness) -> str:
    rid = await at_review(h)
    await h.pass_internal_review(rid)
    await h.at_stage(rid, "government_testing_window")
    return rid


async def proposed(h: OrderHarness) -> str:
    policy = partner_policy(timedelta(days=2), government_approves_partners=True)
    status = await h.start(release_spec(unique("sig")), policy)
    await h.until(
        status.release_id,
        lambda s: s.awaiting is not None and "government's decision" in s.awaiting.what,
    )
    return status.release_id


#: update -> (how to get a release where it is accepted, the honest request).
RELEASE_CASES: dict[str, tuple[Callable[[OrderHarness], Awaitable[str]], dict[str, Any]]] = {
    "approve": (at_review, {"decider": "sam.safety", "role": "safety", "comment": "ok"}),
    "reject": (at_review, {"decider": "sam.safety", "role": "safety", "comment": "no"}),
    "request_changes": (at_review, {"decider": "sam.safety", "role": "safety", "comment": "x"}),
    "amend": (at_review, {"by": SUBMITTER, "note": "clarified the model card"}),
    "hold": (at_review, {"by": OPERATOR, "reason": "incident"}),
    "resume": (held, {"by": OPERATOR, "reason": "clear"}),
    "withdraw": (at_review, {"by": OPERATOR, "reason": "flaw"}),
    "delegate": (
        at_review,
        {"by": "sam.safety", "to": "lee.legal", "role": "safety", "until": later()},
    ),
    "revoke_delegation": (delegated, {"by": "sam.safety", "to": "lee.legal", "role": "safety"}),
    "suspend_access": (
        at_review,
        {"order_id": "sig", "by": ORDER_ACTOR, "scope": "everyone", "reason": "order"},
    ),
    "restore_access": (suspended, {"order_id": "sig", "by": ORDER_ACTOR, "reason": "lifted"}),
    "record_government_response": (
        in_window,
        {"by": LIAISON, "kind": "concern_raised", "concern": "c"},
    ),
    "approve_partners": (
        proposed,
        {"by": LIAISON, "partners": ["acme-labs"], "decision": "approve"},
    ),
}


def key_of(actor: str) -> Ed25519PrivateKey:
    return signing.worker_key() if actor.startswith("access-order") else signing.person_key(actor)


async def send(h: OrderHarness, rid: str, update: str, body: dict[str, Any]) -> Any:
    """An honest request: signed by its actor's key over the release's current binding."""
    signed = await signing.signed(h.releases, rid, update, body)
    return await h.handle(rid).execute_update(update, signed, result_type=dict)


async def release_target(h: OrderHarness, update: str) -> Target:
    setup, body = RELEASE_CASES[update]
    rid = await setup(h)
    other = await at_review(h)

    async def binding() -> Binding:
        return release_binding(await h.releases.status(rid))

    async def other_binding() -> Binding:
        return release_binding(await h.releases.status(other))

    async def snapshot() -> Any:
        status = await h.releases.status(rid)
        return status.status_version, status.audit_length, status.model_dump(exclude={"updated_at"})

    return Target(h.handle(rid), update, body, binding, other_binding, snapshot)


async def order_target(h: OrderHarness, update: str) -> Target:
    order_id = unique("sig")
    other_id = unique("sig")
    from gatekeeper.models.orders import OrderSpec

    for oid in (order_id, other_id):
        spec = OrderSpec(
            order_id=oid, models=[unique("m")], scope="foreign_persons", reason="export control"
        )
        await h.orders.apply(spec, OPERATOR)
    body: dict[str, Any] = (
        {"by": OPERATOR, "partners": ["acme-labs"], "reason": "licensed"}
        if update == "exempt"
        else {"by": OPERATOR, "reason": "the order ended"}
    )

    async def binding() -> Binding:
        return order_binding(order_id, (await h.orders.status(order_id)).first_run_id)

    async def other_binding() -> Binding:
        return order_binding(other_id, (await h.orders.status(other_id)).first_run_id)

    async def snapshot() -> Any:
        return (await h.orders.status(order_id)).model_dump()

    return Target(h.orders.handle(order_id), update, body, binding, other_binding, snapshot)


# --- the attacks ------------------------------------------------------------------------------


def signed(
    target: Target,
    binding: Binding,
    *,
    key: Ed25519PrivateKey | None = None,
    body: dict[str, Any] | None = None,
    **over: Any,
) -> dict[str, Any]:
    body = body if body is not None else target.body
    actor = body[ACTOR_FIELDS[target.update]]
    return sign_request(
        key or key_of(actor),
        action=target.update,
        actor=actor,
        request=body,
        binding=binding,
        **over,
    )


Attack = Callable[[Target, Binding, OrderHarness], Awaitable[dict[str, Any]]]


async def missing(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    return dict(t.body)


async def someone_elses_key(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    actor = t.body[ACTOR_FIELDS[t.update]]
    # A person for an order's relay, another person for a person.
    other = "sara.safety" if actor != "sara.safety" else "sam.safety"
    return signed(t, b, key=signing.person_key(other))


#: A free-text field of each update, changed after signing (the request stays well-formed).
TAMPER_FIELD = {
    "approve": "comment",
    "reject": "comment",
    "request_changes": "comment",
    "amend": "note",
    "record_government_response": "reference",
}


async def tampered(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    request = signed(t, b)
    return {**request, TAMPER_FIELD.get(t.update, "reason"): "changed after signing"}


async def unknown_key(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    return signed(t, b, key=Ed25519PrivateKey.generate())


async def cross_release(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    return signed(t, await t.other())


async def earlier_release(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    return signed(t, b.model_copy(update={"first_run_id": str(uuid.uuid4())}))


async def cross_stage(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    return signed(t, b.model_copy(update={"stage": "launch_approval"}))


async def wrong_digest(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    evidence = dict(b.evidence)
    if evidence:
        first = sorted(evidence)[0]
        evidence[first] = "0" * 64
        return signed(t, b.model_copy(update={"evidence": evidence}))
    return signed(t, b.model_copy(update={"artifact_sha256": "f" * 64}))


async def stale(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    return signed(t, b, signed_at=datetime.now(UTC) - timedelta(hours=2))


async def from_the_future(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    return signed(t, b, signed_at=datetime.now(UTC) + timedelta(hours=1))


async def revoked_key(t: Target, b: Binding, h: OrderHarness) -> dict[str, Any]:
    """A second key of the actor, registered and then revoked a minute ago."""
    actor = t.body[ACTOR_FIELDS[t.update]]
    order = actor.startswith("access-order")
    key = Ed25519PrivateKey.generate()
    registry = h.adapters.identity
    record = registry.register(
        principal=signing.WORKER if order else actor,
        principal_kind=signing.PrincipalKind.WORKER if order else signing.PrincipalKind.PERSON,
        public_key=public_key_b64(key),
        valid_from=datetime.now(UTC) - timedelta(hours=1),
        admin_key=admin(h),
    )
    registry.revoke(
        record.key_id,
        at=datetime.now(UTC) - timedelta(minutes=1),
        reason="lost laptop",
        admin_key=admin(h),
    )
    return signed(t, b, key=key)


def admin(h: OrderHarness) -> Ed25519PrivateKey:
    """The identity admin the harness registered the test keys with."""
    assert h.adapters.worker_key_path is not None
    return admin_key(h.adapters.identity, h.adapters.worker_key_path.parent / "admin-keys")


#: attack -> the rule that refuses it.
ATTACKS: dict[str, tuple[Attack, str]] = {
    "missing": (missing, "signature_required"),
    "forged (someone else's key)": (someone_elses_key, "signature_wrong_signer"),
    "forged (tampered request)": (tampered, "signature_invalid"),
    "unknown key": (unknown_key, "signature_unknown_key"),
    "cross-release": (cross_release, "signature_binding"),
    "earlier release with the id": (earlier_release, "signature_binding"),
    "cross-stage": (cross_stage, "signature_binding"),
    "wrong digest": (wrong_digest, "signature_binding"),
    "stale": (stale, "signature_stale"),
    "from the future": (from_the_future, "signature_stale"),
    "revoked key": (revoked_key, "signature_key_not_valid"),
}
#: Orders have no stage or digests: those attacks do not apply.
ORDER_ATTACKS = {k: v for k, v in ATTACKS.items() if k not in ("cross-stage", "wrong digest")}


async def update_events(handle: WorkflowHandle[Any, Any]) -> int:
    return len([e async for e in handle.fetch_history_events() if e.event_type in UPDATE_EVENTS])


async def refused_unchanged(
    target: Target, body: dict[str, Any], rule: str, via: Callable[[dict[str, Any]], Awaitable[str]]
) -> None:
    """``body`` is refused by ``rule`` in one line; nothing changed, nothing in history."""
    before, events = await target.snapshot(), await update_events(target.handle)
    message = await via(body)
    assert f"type: {rule}" in message or message.startswith(f"{rule}:"), message
    assert "\n" not in message.strip(), message
    assert await target.snapshot() == before
    assert await update_events(target.handle) == events, "a refused request leaves no history"


def raw_client(target: Target) -> Callable[[dict[str, Any]], Awaitable[str]]:
    async def via(body: dict[str, Any]) -> str:
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await target.handle.execute_update(target.update, body, result_type=dict)
        cause = err.value.cause
        assert isinstance(cause, ApplicationError) and cause.non_retryable
        return f"{cause.type}: {cause.message}"

    return via


def temporal_cli(h: OrderHarness, target: Target) -> Callable[[dict[str, Any]], Awaitable[str]]:
    async def via(body: dict[str, Any]) -> str:
        code, out = await temporal(
            h,
            "workflow",
            "update",
            "execute",
            "-w",
            target.handle.id,
            "--name",
            target.update,
            "--input",
            json.dumps(body),
        )
        assert code != 0, out
        return out.strip()

    return via


async def honest_is_accepted(target: Target) -> None:
    """The same request, signed honestly now, is accepted: the refusals were the signature's."""
    body = signed(target, await target.binding())
    await target.handle.execute_update(target.update, body, result_type=dict)


class TestEveryReleaseUpdate:
    """Each attack on each update of a release is refused in its validator, changing nothing."""

    @pytest.mark.parametrize("update", sorted(RELEASE_CASES))
    async def test_attacks_through_a_raw_client(
        self, orders: OrderHarness, update: str, subtests: Any
    ) -> None:
        target = await release_target(orders, update)
        for name, (attack, rule) in ATTACKS.items():
            with subtests.test(attack=name):
                body = await attack(target, await target.binding(), orders)
                await refused_unchanged(target, body, rule, raw_client(target))
        await honest_is_accepted(target)

    @pytest.mark.parametrize("update", sorted(RELEASE_CASES))
    async def test_attacks_through_the_temporal_cli(
        self, orders: OrderHarness, update: str
    ) -> None:
        target = await release_target(orders, update)
        for name in ("missing", "forged (someone else's key)", "cross-release", "stale"):
            attack, rule = ATTACKS[name]
            body = await attack(target, await target.binding(), orders)
            await refused_unchanged(target, body, rule, temporal_cli(orders, target))
        await honest_is_accepted(target)


class TestOrderUpdates:
    """Exempt and lift are signed like a release's updates, and only the policy's
    export_control_officer may send them."""

    @pytest.mark.parametrize("update", ["exempt", "lift"])
    async def test_attacks_through_a_raw_client(
        self, orders: OrderHarness, update: str, subtests: Any
    ) -> None:
        target = await order_target(orders, update)
        for name, (attack, rule) in ORDER_ATTACKS.items():
            with subtests.test(attack=name):
                body = await attack(target, await target.binding(), orders)
                await refused_unchanged(target, body, rule, raw_client(target))
        await honest_is_accepted(target)

    @pytest.mark.parametrize("update", ["exempt", "lift"])
    async def test_a_person_without_the_role_is_refused(
        self, orders: OrderHarness, update: str
    ) -> None:
        target = await order_target(orders, update)
        # Signed correctly by intern.nobody's own registered key: authentic, but not allowed.
        orders.adapters.identity.register(
            principal="intern.nobody",
            public_key=public_key_b64(signing.person_key("intern.nobody")),
            admin_key=admin(orders),
        )
        body = {**target.body, "by": "intern.nobody"}
        request = signed(target, await target.binding(), body=body)
        await refused_unchanged(target, request, "not_authorised", raw_client(target))
        await refused_unchanged(target, request, "not_authorised", temporal_cli(orders, target))

    async def test_the_relay_to_releases_needs_a_workers_key(self, orders: OrderHarness) -> None:
        """A person cannot pose as an access order to restore a suspended release."""
        rid = await suspended(orders)
        target = await release_target_for(orders, rid, "restore_access")
        body = signed(target, await target.binding(), key=signing.person_key(OPERATOR))
        await refused_unchanged(target, body, "signature_wrong_signer", raw_client(target))


async def release_target_for(h: OrderHarness, rid: str, update: str) -> Target:
    target = await release_target(h, update)
    handle = h.handle(rid)

    async def binding() -> Binding:
        return release_binding(await h.releases.status(rid))

    async def snapshot() -> Any:
        status = await h.releases.status(rid)
        return status.status_version, status.audit_length

    return Target(handle, update, target.body, binding, target.other, snapshot)


class TestReplay:
    """A signature counts once, whatever the update: resent bytes that the rules would accept
    again are refused as a replay."""

    async def test_replayed_hold_and_amend(self, orders: OrderHarness) -> None:
        rid = await at_review(orders)
        target = await release_target_for(orders, rid, "hold")
        hold = signed(target, await target.binding())
        await target.handle.execute_update("hold", hold, result_type=dict)
        await send(orders, rid, "resume", {"by": OPERATOR, "reason": "clear"})
        await refused_unchanged(target, hold, "signature_replayed", raw_client(target))

        amend_target = await release_target_for(orders, rid, "amend")
        amend = signed(amend_target, await amend_target.binding())
        await amend_target.handle.execute_update("amend", amend, result_type=dict)
        await refused_unchanged(amend_target, amend, "signature_replayed", raw_client(amend_target))

    async def test_a_nonce_counts_once_across_updates(self, orders: OrderHarness) -> None:
        rid = await at_review(orders)
        hold_target = await release_target_for(orders, rid, "hold")
        hold = signed(hold_target, await hold_target.binding())
        await hold_target.handle.execute_update("hold", hold, result_type=dict)
        resume_target = await release_target_for(orders, rid, "resume")
        resume = signed(
            resume_target,
            await resume_target.binding(),
            signed_at=datetime.fromisoformat(hold["signature"]["signed_at"]),
            nonce=hold["signature"]["nonce"],
        )
        await refused_unchanged(
            resume_target, resume, "signature_replayed", raw_client(resume_target)
        )


class TestDelegation:
    """A delegation is signed by the delegator: an unsigned one lets nobody decide; a revoked
    one stops counting at once, and decisions made with it no longer stand."""

    async def test_an_unsigned_delegation_cannot_let_someone_approve(
        self, orders: OrderHarness
    ) -> None:
        rid = await at_review(orders)
        lend = {"by": "sam.safety", "to": "lee.legal", "role": "safety", "until": later()}
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await orders.handle(rid).execute_update("delegate", lend, result_type=dict)
        assert getattr(err.value.cause, "type", None) == "signature_required"
        # lee.legal, signing honestly with their own key, still does not hold safety.
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await send(orders, rid, "approve", {"decider": "lee.legal", "role": "safety"})
        assert getattr(err.value.cause, "type", None) == "role_not_held"
        assert not (await orders.releases.status(rid)).gates["internal_review"].decisions

    async def test_a_revoked_delegation_stops_counting(self, orders: OrderHarness) -> None:
        rid = await at_review(orders)
        await orders.releases.delegate(
            rid, DelegationRequest(by="sam.safety", to="lee.legal", role="safety", until=later())
        )
        await orders.releases.decide(
            rid, DecisionKind.APPROVE, DecisionRequest(decider="lee.legal", role="safety")
        )
        gate = (await orders.releases.status(rid)).gates["internal_review"]
        assert [(d.person, d.on_behalf_of) for d in gate.valid_approvals()] == [
            ("lee.legal", "sam.safety")
        ]
        result = await orders.releases.revoke_delegation(
            rid, DelegationRevocation(by="sam.safety", to="lee.legal", role="safety")
        )
        assert "no longer stand" in result.message
        status = await orders.releases.status(rid)
        assert not status.gates["internal_review"].valid_approvals()
        assert status.delegations[0].revoked_at is not None
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await send(orders, rid, "approve", {"decider": "lee.legal", "role": "safety"})
        assert getattr(err.value.cause, "type", None) == "role_not_held"
        audit = await orders.releases.audit(rid)
        revoked = next(e for e in audit if e.action == "delegation_revoked")
        assert revoked.actor == "sam.safety"
        assert revoked.details["attestation"]["statement"]["action"] == "revoke_delegation"

    async def test_only_the_delegator_revokes(self, orders: OrderHarness) -> None:
        rid = await delegated(orders)
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await send(
                orders,
                rid,
                "revoke_delegation",
                {"by": "sara.safety", "to": "lee.legal", "role": "safety"},
            )
        assert getattr(err.value.cause, "type", None) == "invalid_delegation"
        assert (await orders.releases.status(rid)).delegations[0].revoked_at is None


class TestSignaturesBindWhatWasSeen:
    """A signature covers the evidence digests the signer saw: after an amend swaps evidence,
    a decision signed before it is refused."""

    async def test_swapped_evidence_invalidates_earlier_signatures(
        self, orders: OrderHarness
    ) -> None:
        rid = await at_review(orders)
        target = await release_target_for(orders, rid, "approve")
        target.body = {"decider": "sam.safety", "role": "safety"}
        early = signed(target, await target.binding())
        status: ReleaseStatus = await orders.releases.status(rid)
        item = status.spec.evidence[0]
        swapped = {**item.model_dump(mode="json"), "sha256": "a" * 64}
        await send(orders, rid, "amend", {"by": SUBMITTER, "evidence": [swapped]})
        before = await target.snapshot()
        message = await raw_client(target)(early)
        assert "signature_binding" in message and item.id in message, message
        assert await target.snapshot() == before

    async def test_the_audit_event_keeps_the_statement(self, orders: OrderHarness) -> None:
        rid = await at_review(orders)
        body = await signing.signed(
            orders.releases, rid, "hold", {"by": OPERATOR, "reason": "incident"}
        )
        await orders.handle(rid).execute_update("hold", body, result_type=dict)
        event = (await orders.releases.audit(rid))[-1]
        attestation = event.details["attestation"]
        assert attestation["signature"] == body["signature"]["value"]
        statement = attestation["statement"]
        assert (statement["action"], statement["actor"], event.actor) == (
            "hold",
            OPERATOR,
            OPERATOR,
        )
        assert statement["request"] == {"by": OPERATOR, "reason": "incident"}
        assert (
            statement["binding"]["first_run_id"] == (await orders.releases.status(rid)).first_run_id
        )


class TestThroughOurCli:
    """Our CLI signs with the actor's key; without one it says how to make one, in one line
    and before sending; with someone else's key (--key) the worker refuses it."""

    async def test_missing_and_wrong_keys(self, orders: OrderHarness, tmp_path: Any) -> None:
        rid = await at_review(orders)
        keys = signing.write_keys(tmp_path / "keys", ["sam.safety", OPERATOR, SUBMITTER])
        env = environment(orders, GATEKEEPER_KEYS_DIR=str(keys))
        before = await orders.releases.status(rid)
        commands = [
            ("review", "approve", rid, "--as", "sec.one", "--role", "security"),
            ("review", "reject", rid, "--as", "sec.one", "--role", "security"),
            ("review", "request-changes", rid, "--as", "sec.one", "--role", "security"),
            (
                "review",
                "delegate",
                rid,
                "--as",
                "sec.one",
                "--to",
                "sec.two",
                "--role",
                "security",
                "--until",
                "+1d",
            ),
            (
                "review",
                "delegate",
                rid,
                "--as",
                "sec.one",
                "--to",
                "sec.two",
                "--role",
                "security",
                "--revoke",
            ),
            ("ops", "hold", rid, "--as", "kim.nobody", "--reason", "x"),
            ("release", "amend", rid, "--as", "ada.author", "--note", "x"),
            ("gov", "respond", rid, "--as", LIAISON, "--cleared"),
        ]
        for command in commands:
            ran = await gatekeeper(*command, env=env)
            line = ran.stderr.strip()
            assert ran.code == 2 and "\n" not in line, (command, ran)
            assert "gatekeeper keys generate --as" in line, line
        wrong_key = ["--key", str(keys / "sam.safety.pem")]
        signed_by_someone_else = [
            ("review", "approve", rid, "--as", "sec.one", "--role", "security", *wrong_key),
            ("ops", "hold", rid, "--as", OPERATOR, "--reason", "x", *wrong_key),
            ("ops", "withdraw", rid, "--as", OPERATOR, "--reason", "x", *wrong_key),
            ("release", "amend", rid, "--as", SUBMITTER, "--note", "x", *wrong_key),
            (
                "review",
                "delegate",
                rid,
                "--as",
                "lee.legal",
                "--to",
                "sec.two",
                "--role",
                "legal",
                "--until",
                "+1d",
                *wrong_key,
            ),
        ]
        for command in signed_by_someone_else:
            ran = await gatekeeper(*command, env=env)
            line = ran.stderr.strip()
            assert ran.code == 7 and "\n" not in line, (command, ran)
            assert "belongs to sam.safety" in line, line
        after = await orders.releases.status(rid)
        assert after.audit_length == before.audit_length
        assert after.status_version == before.status_version


class TestUnsignedMode:
    """Only a worker configured with ``[identity] unsigned = "allow"`` takes unsigned requests;
    a signature that is present is still checked."""

    async def test_unsigned_allowed_only_by_the_workers_setting(self, orders: OrderHarness) -> None:
        from gatekeeper.identity import authority

        rid = await at_review(orders)
        queue, registry = orders.releases.task_queue, orders.adapters.identity
        handle = orders.handle(rid)
        unsigned = {"decider": "sam.safety", "role": "safety"}
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update("approve", unsigned, result_type=dict)
        assert getattr(err.value.cause, "type", None) == "signature_required"
        authority.install(queue, registry, unsigned_allowed=True)
        try:
            target = await release_target_for(orders, rid, "approve")
            target.body = {"decider": "sec.one", "role": "security"}
            forged = signed(target, await target.binding(), key=signing.person_key("sam.safety"))
            await refused_unchanged(target, forged, "signature_wrong_signer", raw_client(target))
            await handle.execute_update("approve", unsigned, result_type=dict)
        finally:
            authority.install(queue, registry)
        gate = (await orders.releases.status(rid)).gates["internal_review"]
        assert [d.person for d in gate.valid_approvals()] == ["sam.safety"]
        event = (await orders.releases.audit(rid))[-1]
        assert "attestation" not in event.details


class TestOrderStart:
    """Applying an order is signed by the export control officer who applies it: an unsigned,
    forged or unauthorised start ends the order at once, with nothing in the registry."""

    async def start(self, h: OrderHarness, body: dict[str, Any]) -> ApplicationError:
        from temporalio.client import WorkflowFailureError

        from gatekeeper.ids import order_workflow_id
        from gatekeeper.orders import ORDER_WORKFLOW_TYPE

        handle = await h.env.client.start_workflow(
            ORDER_WORKFLOW_TYPE,
            body,
            id=order_workflow_id(body["order_id"]),
            task_queue=h.releases.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.non_retryable
        assert "\n" not in cause.message
        with pytest.raises(RegistryError):  # nothing was applied
            h.registry.get_order(body["order_id"])
        return cause

    def order(self, by: str = OPERATOR) -> dict[str, Any]:
        return {
            "order_id": unique("sig"),
            "models": [unique("m")],
            "scope": "foreign_persons",
            "reason": "export control",
            "issued_by": by,
        }

    def sign(self, body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
        return sign_request(
            key,
            action="apply_order",
            actor=body["issued_by"],
            request=body,
            binding=order_binding(body["order_id"]),
        )

    async def test_unsigned_forged_and_unauthorised_starts(self, orders: OrderHarness) -> None:
        unsigned = await self.start(orders, self.order())
        assert unsigned.type == "signature_required"
        forged = self.sign(self.order(), signing.person_key("sam.safety"))
        assert (await self.start(orders, forged)).type == "signature_wrong_signer"
        other = self.order()
        elsewhere = sign_request(
            signing.person_key(OPERATOR),
            action="apply_order",
            actor=OPERATOR,
            request=other,
            binding=order_binding("another-order"),
        )
        assert (await self.start(orders, elsewhere)).type == "signature_binding"
        tampered = self.sign(self.order(), signing.person_key(OPERATOR))
        tampered["scope"] = "everyone"
        assert (await self.start(orders, tampered)).type == "signature_invalid"
        not_an_officer = self.sign(self.order("sam.safety"), signing.person_key("sam.safety"))
        refused = await self.start(orders, not_an_officer)
        assert refused.type == "not_authorised" and "export_control_officer" in refused.message
        honest = self.sign(self.order(), signing.person_key(OPERATOR))
        handle = await orders.env.client.start_workflow(
            "AccessOrderWorkflow",
            honest,
            id=f"access-order-{honest['order_id']}",
            task_queue=orders.releases.task_queue,
        )
        status = await orders.orders.wait_applied(honest["order_id"], within=30)
        assert status.state == "active"
        assert orders.registry.get_order(honest["order_id"]).status != "lifted"
        del handle
