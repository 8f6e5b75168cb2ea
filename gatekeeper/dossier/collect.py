"""Gathering a release's dossier from Temporal and the registry's database.

The policy snapshot is the workflow's own input, read from the first event of its history, so
the dossier shows the exact policy the release ran under. A finished release's status comes from
its result in history (no worker needed) and its audit chain from the audit store (the registry's
database, so whole from any host), accepted only as exactly the chain that status names (see
:func:`completed_chain`); a running release is queried. The
notifications sent are the deliveries every worker recorded in the database's send journal, so a
dossier is whole whichever worker (on whichever host) delivered them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from gatekeeper.audit import verify_chain
from gatekeeper.dossier.model import Dossier, build_dossier, key_ids_used, sso_identities
from gatekeeper.errors import ConnectionFailed, GatekeeperError, ReleaseNotFound
from gatekeeper.identity.heads import Anchor
from gatekeeper.identity.keys import KeyRecord
from gatekeeper.identity.log import IdentityLogEntry
from gatekeeper.ids import release_workflow_id
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.installed import InstalledPolicy
from gatekeeper.models.status import ReleaseOutcome, ReleaseStatus
from gatekeeper.releases import Releases
from gatekeeper.temporal_errors import not_found


class ChainMismatch(GatekeeperError):
    """The audit store's chain of a finished release is not the chain its result names."""


def completed_chain(outcome: ReleaseOutcome, stored: list[AuditEvent]) -> list[AuditEvent]:
    """The complete audit chain of a finished release: the one its result carries (releases that
    ended before issue 16), else ``stored`` (the audit store's) if it is exactly the chain the
    result's status names: ``status.audit_length`` events, each linked to the one before it from
    the genesis hash and hashing to its own content, the last one's hash ``status.audit_head``.

    The chain of hashes makes that the same chain the release kept, event for event: the
    result (in Temporal's history) fixes the head, the head fixes every event before it. Events
    the store holds beyond the recorded length are not the release's (it ended there) and make
    the chain a mismatch too, as does any other difference.

    Raises:
        ChainMismatch: ``stored`` is not that chain (one line: what differs).
    """
    if outcome.audit:
        return outcome.audit
    status = outcome.status
    release = status.release_id
    if len(stored) != status.audit_length:
        raise ChainMismatch(
            f"the audit store holds {len(stored)} event(s) of {release}, the release recorded "
            f"{status.audit_length}: not the release's chain"
        )
    check = verify_chain(stored)
    if not check.ok:
        raise ChainMismatch(
            f"the audit store's chain of {release} does not verify at event #{check.bad_seq}: "
            f"{check.reason}"
        )
    if stored and stored[0].release_id != release:
        raise ChainMismatch(f"the audit store's chain of {release} is another release's")
    if check.head != status.audit_head:
        raise ChainMismatch(
            f"the audit store's chain of {release} ends at {check.head[:16]}…, the release "
            f"recorded {status.audit_head[:16]}…: not the release's chain"
        )
    return stored


def journal_source(url: str) -> str:
    """Where a dossier's notifications were read, for the reader: the send journal's database."""
    return f"the send journal (deliveries) in {url}"


async def collect_dossier(
    releases: Releases,
    release_id: str,
    *,
    deliveries: Callable[[str], list[dict[str, Any]]] | None = None,
    deliveries_source: str = "",
    now: datetime | None = None,
    key_chain: Callable[[str], list[KeyRecord]] | None = None,
    anchors: Callable[[str], list[Anchor]] | None = None,
    anchors_source: str = "",
    sso_proof: Callable[[str, str], list[IdentityLogEntry]] | None = None,
    audit_events: Callable[[str], list[AuditEvent]] | None = None,
) -> Dossier:
    """The dossier of ``release_id`` as it stands now.

    Args:
        releases: the client-side release API.
        release_id: the release.
        deliveries: a release's recorded deliveries, each shaped as an outbox line (the send
            journal's ``DeliveryStore.lines``), when the database can be reached.
        deliveries_source: where ``deliveries`` reads, for the reader.
        now: the export time (default: the current time).
        key_chain: a key id's record and the records certifying it up to the trust root (the
            identity registry's ``chain_to_root``); a key it does not know is left out, and
            ``audit verify`` then names it.
        anchors: the heads anchored for a release (the anchor table), when it can be reached.
        anchors_source: where ``anchors`` reads, for the reader.
        sso_proof: the identity log entries that linked (or unlinked) a single sign-on identity
            (the identity registry's ``sso_link_entries``): the dossier carries them, and their
            admins' keys, for each identity a gateway attested.
        audit_events: a release's stored audit chain (the audit store's ``read``): where a
            finished release's chain is read (its result no longer carries it). Without it, the
            chain of such a release is queried (a worker replays the release to answer).

    Raises:
        ReleaseNotFound: no such release.
        ConnectionFailed: Temporal could not answer.
        ChainMismatch: the audit store's chain is not the one the release's result names.
    """
    handle = releases.handle(release_id)
    try:
        description = await handle.describe()
        history = await handle.fetch_history()
    except RPCError as err:
        if not_found(err):
            raise ReleaseNotFound(
                f"no release '{release_id}' (workflow {release_workflow_id(release_id)} not found)"
            ) from err
        raise ConnectionFailed(f"cannot read release {release_id}: {err.message}") from err
    converter = releases.client.data_converter
    installed = await _installed_policy(history.events, converter)
    status: ReleaseStatus
    audit: list[AuditEvent]
    outcome = await _outcome(history.events, converter)
    if outcome is not None:
        status = outcome.status
        if outcome.audit or audit_events is None:
            audit = outcome.audit or await releases.audit(release_id)
        else:
            stored = await asyncio.to_thread(audit_events, status.release_id)
            audit = completed_chain(outcome, stored)
    else:
        status = await releases.status(release_id)
        audit = await releases.audit(release_id)
    lines: list[dict[str, Any]] = []
    source = ""
    if deliveries is not None:
        lines = await asyncio.to_thread(deliveries, status.release_id)
        source = deliveries_source
    execution = description.status or WorkflowExecutionStatus.RUNNING
    anchored = await asyncio.to_thread(anchors, release_id) if anchors is not None else []
    keys: list[KeyRecord] = []
    links: list[IdentityLogEntry] = []
    if sso_proof is not None:
        for issuer, subject in sso_identities(audit):
            links += await asyncio.to_thread(sso_proof, issuer, subject)
    if key_chain is not None:
        used = (
            key_ids_used(audit) + [a.head.key_id for a in anchored] + [e.by_key_id for e in links]
        )
        for key_id in dict.fromkeys(used):
            try:
                keys += await asyncio.to_thread(key_chain, key_id)
            except GatekeeperError:
                continue
    return build_dossier(
        status=status,
        audit=audit,
        policy=installed.policy if installed is not None else None,
        outbox=lines,
        exported_at=now or datetime.now(UTC),
        workflow_id=description.id,
        run_id=description.run_id,
        execution=execution.name.lower(),
        notifications_source=source,
        keys=keys,
        anchors=anchored,
        anchors_source=anchors_source if anchors is not None else "",
        sso_links=links,
    )


async def _installed_policy(
    events: Sequence[HistoryEvent], converter: DataConverter
) -> InstalledPolicy | None:
    """The policy the release runs under: the result of its ``resolve_policy`` activity."""
    scheduled = {
        event.event_id
        for event in events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == "resolve_policy"
    }
    for event in events:
        if not event.HasField("activity_task_completed_event_attributes"):
            continue
        completed = event.activity_task_completed_event_attributes
        if completed.scheduled_event_id in scheduled:
            [found] = await converter.decode(list(completed.result.payloads), [InstalledPolicy])
            return found if isinstance(found, InstalledPolicy) else None
    return None


async def _outcome(
    events: Sequence[HistoryEvent], converter: DataConverter
) -> ReleaseOutcome | None:
    for event in reversed(events):
        if event.HasField("workflow_execution_completed_event_attributes"):
            result = event.workflow_execution_completed_event_attributes.result
            [outcome] = await converter.decode(list(result.payloads), [ReleaseOutcome])
            return outcome if isinstance(outcome, ReleaseOutcome) else None
    return None
