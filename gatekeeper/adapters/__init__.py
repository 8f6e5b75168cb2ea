"""Service objects behind the activities: plain Python, no Temporal, deduplicating side effects."""

from gatekeeper.adapters.audit_store import AuditStore, JsonlAuditStore
from gatekeeper.adapters.clearinghouse import Clearinghouse, FileDropClearinghouse
from gatekeeper.adapters.evidence import EvidenceVerifier, LocalEvidenceVerifier
from gatekeeper.adapters.launch import FileDropLaunchPublisher, LaunchPublisher
from gatekeeper.adapters.notifier import ChannelRegistry, Notifier, delivery_key
from gatekeeper.adapters.outbox import Outbox
from gatekeeper.channels import ChannelFactory, DeliveryChannel
from gatekeeper.channels.log import LogChannel
from gatekeeper.channels.outbox import OutboxChannel

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
