"""Service objects behind the activities: plain Python, no Temporal, deduplicating side effects."""

from gatekeeper.adapters.audit_store import AuditStore, DatabaseAuditStore
from gatekeeper.adapters.clearinghouse import Clearinghouse, DatabaseClearinghouse
from gatekeeper.adapters.deliveries import DeliveryStore
from gatekeeper.adapters.evidence import EvidenceVerifier, LocalEvidenceVerifier
from gatekeeper.adapters.launch import DatabaseLaunchPublisher, LaunchPublisher
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
    "DatabaseAuditStore",
    "DatabaseClearinghouse",
    "DatabaseLaunchPublisher",
    "DeliveryChannel",
    "DeliveryStore",
    "EvidenceVerifier",
    "LaunchPublisher",
    "LocalEvidenceVerifier",
    "LogChannel",
    "Notifier",
    "Outbox",
    "OutboxChannel",
    "delivery_key",
]
