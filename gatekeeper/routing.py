"""Notification routing: which people and cohorts hear about an event, on which channels.

Pure: the workflow resolves recipients from its policy snapshot, so a release keeps notifying
the audience it started with even if the policy file changes later. Channels are names; what a
channel is, the notify activity looks up in the worker's configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from gatekeeper.models.enums import NotificationEvent
from gatekeeper.models.io import Recipient
from gatekeeper.models.policy import BUILTIN_CHANNELS, Policy

if TYPE_CHECKING:  # the workflow imports this module; the configuration stays on the worker
    from gatekeeper.config import WorkerConfig


def recipients_for(
    policy: Policy,
    event: NotificationEvent,
    *,
    concerned: Iterable[str] = (),
    roles: Iterable[str] = (),
) -> list[Recipient]:
    """Everyone the policy routes ``event`` to, once per (recipient, channel).

    Args:
        policy: the release's policy snapshot.
        event: what happened.
        concerned: people the event is about (awaited reviewers, the submitter, reviewers whose
            approvals lapsed); routes with ``concerned: true`` reach them.
        roles: roles the event is about (e.g. the roles a gate awaits); routes with
            ``concerned: true`` reach every roster member holding them.
    """
    concerned_people = set(concerned)
    for role in roles:
        concerned_people.update(p.id for p in policy.people_with_role(role))
    found: dict[tuple[str, str], Recipient] = {}
    for route in policy.notifications.routes:
        if event not in route.events and "*" not in route.events:
            continue
        people = set(route.to.people)
        for role in route.to.roles:
            people.update(p.id for p in policy.people_with_role(role))
        if route.to.concerned:
            people.update(concerned_people)
        for channel in route.channels:
            for person_id in people:
                person = policy.person(person_id)
                if person is None:
                    continue
                found.setdefault(
                    (person_id, channel),
                    Recipient(id=person_id, name=person.name, email=person.email, channel=channel),
                )
            for cohort_id in route.to.cohorts:
                cohort = policy.cohort(cohort_id)
                key = f"cohort:{cohort_id}"
                found.setdefault(
                    (key, channel),
                    Recipient(id=key, name=cohort.title if cohort else cohort_id, channel=channel),
                )
    return [found[k] for k in sorted(found)]


def unconfigured_channels(policy: Policy, config: WorkerConfig) -> list[str]:
    """Channel names the policy's routes use that this worker cannot deliver on, sorted.

    A channel exists if it is built in (``log``, ``outbox``) or the worker's configuration
    defines it. The worker refuses to start a release under a policy for which this is not empty,
    rather than dropping its notifications.

    Args:
        policy: the policy to check.
        config: the worker's configuration (``Settings.config``).
    """
    return [
        name
        for name in policy.notifications.channel_names
        if name not in BUILTIN_CHANNELS and name not in config.channels
    ]
