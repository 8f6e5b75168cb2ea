"""Every activity timeout and retry policy, named, in one place.

Side effects that protect people (revoking access, recording the audit trail, submitting to the
government) retry until they succeed: failing closed means never giving up on them. Notifications
retry for a bounded time; a notification that cannot be delivered is recorded in the audit trail
and the release goes on.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

#: Errors that retrying cannot fix (bad input, refused by the far side). Activities raise these as
#: ``ApplicationError(type=..., non_retryable=True)``; listing them here documents the contract.
PERMANENT_ERRORS = ["ValidationError", "InputError"]

#: A fan-out to thousands over a slow webhook can take minutes; a retry resumes where the last
#: attempt stopped (deliveries are deduplicated), and the heartbeat catches a dead worker early.
NOTIFY_TIMEOUT = timedelta(minutes=10)
NOTIFY_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
#: Recipients per notify activity: one history event per batch, never one per recipient.
NOTIFY_BATCH = 500
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=12,
    non_retryable_error_types=PERMANENT_ERRORS,
)

GOVERNMENT_TIMEOUT = timedelta(minutes=2)
GOVERNMENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=PERMANENT_ERRORS,
)

#: Registry writes take well under a second even for thousands of partners; a worker that dies
#: mid-grant is noticed after this (the retry is idempotent on the grant's key).
ACCESS_TIMEOUT = timedelta(seconds=20)
ACCESS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=2),
    non_retryable_error_types=PERMANENT_ERRORS,
)

#: Reading an installed policy is one row; a store that is down is waited for (fail closed: the
#: release does not start under anything else meanwhile).
POLICY_TIMEOUT = timedelta(seconds=20)
POLICY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=PERMANENT_ERRORS,
)

EVIDENCE_TIMEOUT = timedelta(minutes=5)
EVIDENCE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)

AUDIT_TIMEOUT = timedelta(seconds=30)
AUDIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
)

LAUNCH_TIMEOUT = timedelta(minutes=2)
LAUNCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=PERMANENT_ERRORS,
)

#: The activities stage kinds call (``StageHost.execute``): each one's timeout and retry policy.
STAGE_ACTIVITIES: dict[str, tuple[timedelta, RetryPolicy]] = {
    "submit_to_government": (GOVERNMENT_TIMEOUT, GOVERNMENT_RETRY),
    "grant_partner_access": (ACCESS_TIMEOUT, ACCESS_RETRY),
    "list_eligible_partners": (ACCESS_TIMEOUT, ACCESS_RETRY),
    "find_orders_in_force": (ACCESS_TIMEOUT, ACCESS_RETRY),
    "publish_launch": (LAUNCH_TIMEOUT, LAUNCH_RETRY),
}

# --- access orders ----------------------------------------------------------------------------

ORDER_RELEASE_UPDATE_TIMEOUT = timedelta(seconds=30)
#: Releases per ``send_release_updates`` activity, and such activities in flight at once.
ORDER_BATCH_SIZE = 50
ORDER_PARALLEL_BATCHES = 4
#: One batch may take this long; a worker that dies mid-batch is noticed by the heartbeat.
ORDER_FANOUT_TIMEOUT = timedelta(minutes=5)
ORDER_FANOUT_HEARTBEAT = timedelta(seconds=30)
#: Reaching releases is what the order is for: retry until it succeeds (fail closed).
ORDER_FANOUT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=PERMANENT_ERRORS,
)
ORDER_FIND_TIMEOUT = timedelta(minutes=1)
#: Releases that gave no answer in time are sent the update again this often, this many times.
ORDER_REDELIVER_EVERY = timedelta(minutes=1)
ORDER_MAX_REDELIVERIES = 10
