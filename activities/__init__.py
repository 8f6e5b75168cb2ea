"""Activities: thin wrappers that validate input, call a service object, translate its errors.

:func:`open_adapters` builds the embedded-default service objects from the settings: everything a
worker keeps (send journal, audit chains, clearinghouse receipts, launch records, grants, policies,
keys, anchors) in the one registry database (``settings.effective_registry_url``: SQLite under
``data_dir`` by default, PostgreSQL by URL, shared by workers on every host), plus the outbox
file, a human-readable mirror of this worker's deliveries. :func:`activities_from` lists the
activity callables a worker registers. The adapters are opened once per worker process and shared
by all activity threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from activities.access import AccessActivities
from activities.audit import AnchorActivities, AuditActivities
from activities.evidence import EvidenceActivities
from activities.government import GovernmentActivities
from activities.identity import IdentityActivities
from activities.launch import LaunchActivities
from activities.notify import NotifyActivities
from activities.orders import OrderActivities
from activities.policy import PolicyActivities, PolicyCheck
from gatekeeper.adapters import (
    ChannelRegistry,
    DatabaseAuditStore,
    DatabaseClearinghouse,
    DatabaseLaunchPublisher,
    DeliveryStore,
    LocalEvidenceVerifier,
    Notifier,
    Outbox,
)
from gatekeeper.adapters.anchors import AnchorStore
from gatekeeper.adapters.legacy import import_data_dir
from gatekeeper.adapters.notifier import granted_partners
from gatekeeper.adapters.outbox import OUTBOX_FILE
from gatekeeper.adapters.policy_store import PolicyStore
from gatekeeper.adapters.registry import AccessRegistry
from gatekeeper.channels import ChannelContext, SendJournal
from gatekeeper.config import UnsignedRequests, WorkerConfig
from gatekeeper.errors import ConfigError
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.identity.worker_key import worker_key_path
from gatekeeper.models.policy import Policy
from gatekeeper.routing import unconfigured_channels
from gatekeeper.settings import Settings
from gatekeeper.signer import load_private_key

if TYPE_CHECKING:
    from temporalio.client import Client


@dataclass
class Adapters:
    """Every service object a worker's activities use."""

    #: This worker's outbox file: one human-readable line per delivery it made (a mirror; the
    #: deliveries themselves are :attr:`deliveries`).
    outbox: Outbox
    #: The send journal (the registry's database): every worker's deliveries, once per key.
    deliveries: DeliveryStore
    notifier: Notifier
    clearinghouse: DatabaseClearinghouse
    evidence: LocalEvidenceVerifier
    audit_store: DatabaseAuditStore
    launcher: DatabaseLaunchPublisher
    registry: AccessRegistry
    #: What the channels share (journal, secrets, egress rules, one HTTP client).
    channels: ChannelContext
    #: Installed policies (the registry's database); ``resolve_policy`` reads it.
    policies: PolicyStore
    #: The append-only table of signed audit heads (the registry's database).
    anchors: AnchorStore
    #: Registered keys (the registry's database): the worker installs it as its update
    #: validators' key directory (``workers.worker.key_directory``).
    identity: IdentityRegistry
    #: The worker's own checks of a policy, run by ``resolve_policy`` after the full policy check.
    policy_checks: list[PolicyCheck] = field(default_factory=list)
    #: ``[identity] unsigned = "allow"``: unsigned requests are accepted (local experiments).
    unsigned_allowed: bool = False
    #: The worker's own Ed25519 key (PEM; ``[identity] worker_key``, default
    #: ``<data_dir>/worker-key.pem``): signs audit heads and what access orders relay to
    #: releases (read when first needed: the worker may create it after the adapters open).
    worker_key_path: Path | None = None

    def worker_key(self) -> Ed25519PrivateKey | None:
        """The worker's private key, or ``None`` while it has none."""
        path = self.worker_key_path
        if path is None or not path.exists():
            return None
        return load_private_key(path)

    def close(self) -> None:
        """Release connections (workers call this on shutdown)."""
        self.registry.close()
        self.deliveries.close()
        self.clearinghouse.close()
        self.audit_store.close()
        self.launcher.close()
        self.policies.close()
        self.anchors.close()
        self.identity.close()
        self.channels.close()


def open_adapters(settings: Settings) -> Adapters:
    """The embedded-default adapters on ``settings.effective_registry_url``, and the outbox file
    under ``settings.data_dir``.

    A data directory from before the database kept the worker's state (its outbox, send claims,
    audit chains, clearinghouse receipts, launch records) is imported into the database first,
    once (:func:`gatekeeper.adapters.legacy.import_data_dir`), so an upgraded worker neither
    sends again nor forks a chain.
    """
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    url = settings.effective_registry_url
    opened: list[Any] = []
    try:
        deliveries = _opened(opened, DeliveryStore(url))
        audit_store = _opened(opened, DatabaseAuditStore(url))
        clearinghouse = _opened(opened, DatabaseClearinghouse(url))
        launcher = _opened(opened, DatabaseLaunchPublisher(url))
        import_data_dir(
            data,
            deliveries=deliveries,
            audit=audit_store,
            clearinghouse=clearinghouse,
            launches=launcher,
        )
        registry = _opened(opened, AccessRegistry(url))
        policies = _opened(opened, PolicyStore(url))
        anchors = _opened(opened, AnchorStore(url))
        identity = _opened(
            opened, IdentityRegistry(url, trust_root=settings.config.identity.trust_root)
        )
        outbox = Outbox(data / OUTBOX_FILE)
        # What every channel type is bound to; what the factories open (one HTTP client for
        # every webhook channel) is closed with the adapters.
        channels = ChannelContext(
            journal=SendJournal(deliveries, outbox),
            env=settings.env,
            egress=settings.config.egress.rules,
        )
        notifier = _notifier(settings, channels, registry)
    except BaseException:
        for store in reversed(opened):
            store.close()
        raise
    return Adapters(
        outbox=outbox,
        deliveries=deliveries,
        notifier=notifier,
        clearinghouse=clearinghouse,
        evidence=LocalEvidenceVerifier.from_settings(settings.config.evidence, data),
        audit_store=audit_store,
        launcher=launcher,
        registry=registry,
        channels=channels,
        policies=policies,
        anchors=anchors,
        worker_key_path=worker_key_path(settings),
        identity=identity,
        policy_checks=[channels_configured(settings.config)],
        unsigned_allowed=settings.config.identity.unsigned is UnsignedRequests.ALLOW,
    )


T = TypeVar("T")


def _opened(opened: list[Any], store: T) -> T:
    opened.append(store)
    return store


def channels_configured(config: WorkerConfig) -> PolicyCheck:
    """The worker's own check of a policy: every channel its routes name is one this worker
    delivers on (built in, or defined in its configuration). A release under a policy that fails
    it is refused at start, rather than silently dropping its notifications."""

    def check(policy: Policy) -> list[str]:
        return [
            f"notifications: channel '{name}' is not configured on this worker "
            "(define it under [channels] in the worker's configuration file)"
            for name in unconfigured_channels(policy, config)
        ]

    return check


def _notifier(settings: Settings, context: ChannelContext, registry: AccessRegistry) -> Notifier:
    """Log and outbox channels, and the channels the worker's configuration defines, of every
    type in :data:`gatekeeper.channels.CHANNEL_TYPES`, with secrets from the settings'
    environment and destinations limited by its egress rules; cohorts expanded to the partners
    the registry granted.

    Raises:
        ConfigError: a configured channel's secret variable is not set (the worker does not
            start, rather than failing every notification on that channel later).
    """
    config = settings.config
    for name, channel in sorted(config.channels.items()):
        for field_name, variable in channel.secret_variables().items():
            if not settings.env.get(variable):
                raise ConfigError(
                    f"channel {name!r}: the variable {variable} named by its {field_name} is "
                    "not set in the worker's environment"
                )
    channels = ChannelRegistry.for_worker(context)
    return Notifier(
        channels,
        configured=config.channels,
        cohorts=granted_partners(registry.list_grants),
        console_url=config.console.url,
    )


def activities_from(adapters: Adapters, client: Client | None = None) -> list[Callable[..., Any]]:
    """The activity callables a worker registers, bound to ``adapters``.

    With ``client`` (the worker's Temporal client), also the activities through which access
    orders reach running releases; without it, a worker cannot run ``AccessOrderWorkflow``.
    """
    notify = NotifyActivities(adapters.notifier)
    government = GovernmentActivities(adapters.clearinghouse)
    evidence = EvidenceActivities(adapters.evidence)
    audit = AuditActivities(adapters.audit_store)
    anchor = AnchorActivities(
        adapters.audit_store,
        adapters.anchors,
        adapters.worker_key_path or Path("worker-key.pem"),
    )
    launch = LaunchActivities(adapters.launcher, adapters.registry)
    access = AccessActivities(adapters.registry)
    policy = PolicyActivities(adapters.policies, adapters.policy_checks)
    found: list[Callable[..., Any]] = [
        policy.resolve_policy,
        notify.notify_stakeholders,
        government.submit_to_government,
        evidence.verify_evidence,
        audit.record_audit_events,
        anchor.anchor_audit_head,
        launch.publish_launch,
        access.grant_partner_access,
        access.revoke_partner_access,
        access.apply_access_order,
        access.lift_access_order,
        access.exempt_access_order,
        access.list_eligible_partners,
        access.find_orders_in_force,
    ]
    if client is not None:
        orders = OrderActivities(client, worker_key=adapters.worker_key)
        identity = IdentityActivities(adapters.identity, unsigned_allowed=adapters.unsigned_allowed)
        found += [
            orders.find_affected_releases,
            orders.send_release_updates,
            identity.check_signed_request,
        ]
    return found


def build_activities(settings: Settings, client: Client | None = None) -> list[Callable[..., Any]]:
    """Open the adapters for ``settings`` and return the activities bound to them."""
    return activities_from(open_adapters(settings), client)


__all__ = [
    "Adapters",
    "PolicyCheck",
    "activities_from",
    "build_activities",
    "channels_configured",
    "open_adapters",
]
