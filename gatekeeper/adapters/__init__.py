"""Service objects behind the activities: plain Python, no Temporal, deduplicating side effects."""

from gatekeeper.adapters.audit_store import AuditStore, JsonlAuditStore
from gatekeeper.adapters.clearinghouse import Clearinghouse, FileDropClearinghouse
from gatekeeper.adapters.evidence import EvidenceVerifier, LocalEvidenceVerifier
from gatekeeper.adapters.launch import FileDropLaunchPublisher, LaunchPublisher
from gatekeeper.adapters.notifier import (
    ChannelFactory,
    ChannelRegistry,
    DeliveryChannel,
    LogChannel,
    Notifier,
    OutboxChannel,
    delivery_key,
)
from gatekeeper.adapters.outbox import Outbox

__all__ = [
    "AuditStore",
    "ChannelFactory",
    "ChannelRegistry",
    "Clearinghouse",
    "DeliveryChannel",
    "EvidenceVerifier",
    "FileDropClearinghouse",
    "FileDropLaunchPublisher",
    "JsonlAuditStore",
    "LaunchPublisher",
    "LocalEvidenceVerifier",
    "LogChannel",
    "Notifier",
    "Outbox",
    "OutboxChannel",
    "delivery_key",
]
