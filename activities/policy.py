"""``resolve_policy``: the worker's answer to "which rules does this release run under".

The workflow's input names a policy (``policy_id@version``, or nothing for the store's default);
this activity loads that installed version from the worker's policy store, re-runs the full policy
check here, on the worker, plus any check the worker adds (e.g. that every channel the policy
routes to is configured), and returns the content with its sha256 and installer. The activity
result pins all of it in the release's history: a release keeps the version it started under.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities._errors import activity_errors
from gatekeeper.adapters.policy_store import PolicyNotInstalled, PolicyStore
from gatekeeper.failures import Refused
from gatekeeper.models.installed import InstalledPolicy, ResolvePolicyRequest
from gatekeeper.models.policy import Policy
from gatekeeper.policy import check_policy, policy_sha256

#: A worker's own check of a policy: the problems it finds (one line each), empty when none.
PolicyCheck = Callable[[Policy], list[str]]

#: ``ApplicationError.type`` of a reference no installed version answers to.
NOT_INSTALLED = "policy_not_installed"
#: ``ApplicationError.type`` of an installed version this worker will not run.
NOT_RUNNABLE = "policy_not_runnable"


class PolicyActivities:
    """Resolution of policy references, bound to the worker's store and extra checks."""

    def __init__(self, store: PolicyStore, checks: Sequence[PolicyCheck] = ()) -> None:
        self._store = store
        self._checks = checks

    @activity.defn(name="resolve_policy")
    def resolve_policy(self, request: ResolvePolicyRequest) -> InstalledPolicy:
        """The installed version ``request`` names, checked again here.

        Raises:
            ApplicationError: non-retryable, type ``policy_not_installed`` (unknown reference, no
                default) or ``policy_not_runnable`` (it fails a check on this worker); a
                database outage is retryable.
        """
        with activity_errors():
            request = ResolvePolicyRequest.model_validate(request)
            try:
                installed = self._store.resolve(request.policy_ref)
            except PolicyNotInstalled as err:
                raise _refusal(str(err), NOT_INSTALLED) from None
            problems = self.problems(installed)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise _refusal(
                    f"policy {installed.ref} cannot run on this worker: {problems[0]}{more}",
                    NOT_RUNNABLE,
                )
        activity.logger.info(
            "release %s runs under policy %s (sha256 %s)",
            request.release_id,
            installed.ref,
            installed.sha256[:16],
        )
        return installed

    def problems(self, installed: InstalledPolicy) -> list[str]:
        """Everything wrong with ``installed`` as this worker sees it (empty: it may run)."""
        if policy_sha256(installed.policy) != installed.sha256:
            return ["its content does not match its recorded sha256"]
        found = [problem.render() for problem in check_policy(installed.policy)]
        for check in self._checks:
            found += check(installed.policy)
        return found


class _PolicyRefused(Refused):
    """A refusal (no stack trace in history) that the SDK logs at DEBUG, not with a traceback."""

    def __init__(self, message: str, rule: str) -> None:
        ApplicationError.__init__(
            self, message, type=rule, non_retryable=True, category=ApplicationErrorCategory.BENIGN
        )


def _refusal(message: str, rule: str) -> ApplicationError:
    activity.logger.warning("%s: %s", rule, message)  # one line; the SDK adds no traceback
    return _PolicyRefused(message, rule)
