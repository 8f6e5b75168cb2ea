"""Activities: thin wrappers that validate input, call a service object, translate its errors.

:func:`open_adapters` builds the embedded-default service objects from the settings (files and a
SQLite registry under ``data_dir``); :func:`activities_from` lists the activity callables a worker
registers. The adapters are opened once per worker process and shared by all activity threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activities.access import AccessActivities
from activities.audit import AuditActivities
from activities.evidence import EvidenceActivities
from activities.government import GovernmentActivities
from activities.launch import LaunchActivities
from activities.notify import NotifyActivities
from gatekeeper.adapters import (
    ChannelRegistry,
    FileDropClearinghouse,
    FileDropLaunchPublisher,
    JsonlAuditStore,
    LocalEvidenceVerifier,
    Notifier,
    Outbox,
)
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.settings import Settings


@dataclass
class Adapters:
    """Every service object a worker's activities use."""

    outbox: Outbox
    notifier: Notifier
    clearinghouse: FileDropClearinghouse
    evidence: LocalEvidenceVerifier
    audit_store: JsonlAuditStore
    launcher: FileDropLaunchPublisher
    registry: AccessRegistry

    def close(self) -> None:
        """Release connections (workers call this on shutdown)."""
        self.registry.close()


def open_adapters(settings: Settings) -> Adapters:
    """The embedded-default adapters, keeping their files under ``settings.data_dir``."""
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    outbox = Outbox(data / "outbox.jsonl")
    return Adapters(
        outbox=outbox,
        notifier=Notifier(ChannelRegistry.embedded(outbox)),
        clearinghouse=FileDropClearinghouse(data / "clearinghouse"),
        evidence=LocalEvidenceVerifier(),
        audit_store=JsonlAuditStore(data / "audit"),
        launcher=FileDropLaunchPublisher(data / "launches"),
        registry=AccessRegistry(settings.effective_registry_url),
    )


def activities_from(adapters: Adapters) -> list[Callable[..., Any]]:
    """The activity callables a worker registers, bound to ``adapters``."""
    notify = NotifyActivities(adapters.notifier)
    government = GovernmentActivities(adapters.clearinghouse)
    evidence = EvidenceActivities(adapters.evidence)
    audit = AuditActivities(adapters.audit_store)
    launch = LaunchActivities(adapters.launcher)
    access = AccessActivities(adapters.registry)
    return [
        notify.notify_stakeholders,
        government.submit_to_government,
        evidence.verify_evidence,
        audit.record_audit_events,
        launch.publish_launch,
        access.grant_partner_access,
        access.revoke_partner_access,
        access.apply_access_order,
        access.lift_access_order,
    ]


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Open the adapters for ``settings`` and return the activities bound to them."""
    return activities_from(open_adapters(settings))


__all__ = ["Adapters", "activities_from", "build_activities", "open_adapters"]
