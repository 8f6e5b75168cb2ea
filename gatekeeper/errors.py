"""Gatekeeper's one error tree. Every error a user can see is one of these, with a one-line message.

    GatekeeperError
    ├── ConfigError            settings or connection configuration is wrong
    ├── InputError             a file or argument the user gave is wrong
    │   ├── BadInput           a request's fields are malformed (rule ``bad_input``)
    │   ├── SpecError          a release spec failed validation
    │   ├── PolicyError        a policy failed validation (carries every problem, with line numbers)
    │   └── OrderFileError     an access order, exemption or lift file failed validation
    ├── ConnectionFailed       the Temporal server could not be reached
    ├── ReleaseNotFound        no release with that id
    │   └── OrderNotFound      no access order with that id
    ├── ReleaseExists          a release with that id was already started
    │   └── OrderExists        an access order with that id was already applied
    ├── DecisionRefused        the workflow refused an update; ``rule`` names the rule broken
    ├── NoAnswer               a release did not answer in time (usually: no worker is running)
    ├── ReleaseNeedsRepair     a release's workflow task keeps failing (its history does not
    │                          replay); ``gatekeeper ops repair ID`` brings it back
    └── AdapterError           a side effect failed (``retryable`` says whether trying again helps)
        ├── DeliveryError      a notification could not be delivered
        ├── ClearinghouseError the government clearinghouse refused or failed
        ├── RegistryError      the access registry refused or failed
        └── EvidenceError      evidence could not be read or did not match its digest

Third-party errors (Temporal RPC, pydantic, YAML, SQLAlchemy, httpx) are translated into these at
one boundary each, so the CLI prints one line and exits non-zero. Every message is masked as the
error is made (:func:`gatekeeper.redact.mask`): a URL's password, a token or a key the process
was configured with never reaches a terminal, a log line or a release's history.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gatekeeper.redact import mask


class GatekeeperError(Exception):
    """Base of every Gatekeeper error. ``str(err)`` is one line meant for a person, masked."""

    exit_code = 1

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(mask(str(message)), *args)


class ConfigError(GatekeeperError):
    exit_code = 3


class InputError(GatekeeperError):
    exit_code = 2


class BadInput(InputError):
    """A request's fields are malformed (wrong type, unknown field, too long, control characters).

    The message is :func:`gatekeeper.models.payloads.one_line`'s; the rule is ``bad_input``.
    """

    rule = "bad_input"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, source: str | None = None) -> str:
        where = source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" + (f":{self.column}" if self.column else "")
        prefix = f"{where}: " if where else ""
        field = f"{self.path}: " if self.path else ""
        return f"{prefix}{field}{self.message}"


class _FileProblems(InputError):
    """An input file with one or more problems. The message is the first; all are kept."""

    what = "file"

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        first = problems[0].render(source) if problems else f"{source}: invalid {self.what}"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


class SpecError(_FileProblems):
    what = "release spec"


class PolicyError(_FileProblems):
    what = "policy"


class OrderFileError(_FileProblems):
    what = "access order file"


class ConnectionFailed(GatekeeperError):
    exit_code = 4


class ReleaseNotFound(GatekeeperError):
    exit_code = 5


class ReleaseExists(GatekeeperError):
    exit_code = 6


class OrderNotFound(ReleaseNotFound):
    """No access order with that id was ever applied."""


class OrderExists(ReleaseExists):
    """An access order with that id was applied before; order ids are never reused."""


class DecisionRefused(GatekeeperError):
    """The release refused a decision. The release is unchanged (a refused attempt may be audited)."""

    exit_code = 7

    def __init__(self, message: str, rule: str = "refused") -> None:
        super().__init__(message)
        self.rule = rule


class NoAnswer(GatekeeperError):
    """A running release did not answer in time: almost always, no worker polls its task queue."""

    exit_code = 8


class ReleaseNeedsRepair(GatekeeperError):
    """The release cannot answer or take a decision: its workflow task fails on every attempt,
    almost always because the worker's code cannot replay its history (non-determinism). Nothing
    was decided or changed; ``gatekeeper ops repair ID`` resets it to its last good task."""

    exit_code = 9

    def __init__(self, release_id: str) -> None:
        super().__init__(
            f"release {release_id} needs repair: its workflow task is failing (the worker cannot "
            f"replay its history); nothing was changed; run `gatekeeper ops repair {release_id}`"
        )
        self.release_id = release_id


class AdapterError(GatekeeperError):
    """A side effect failed. Activities map this to ``ApplicationError`` in one place."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class DeliveryError(AdapterError):
    pass


class ClearinghouseError(AdapterError):
    pass


class RegistryError(AdapterError):
    pass


class EvidenceError(AdapterError):
    pass


class StartRefused(InputError):
    """The worker refused to start a release (e.g. its policy is not installed); nothing ran."""

    def __init__(self, message: str, rule: str = "refused") -> None:
        super().__init__(message)
        self.rule = rule


def _class_names(root: type[BaseException]) -> set[str]:
    names = {root.__name__}
    for sub in root.__subclasses__():
        names |= _class_names(sub)
    return names


#: Class names from outside our tree a failure relayed through Temporal carries in its text
#: (``str()`` of an ``ApplicationError`` is ``"<type>: <message>"``).
OTHER_INTERNAL_NAMES = frozenset(
    {
        "ApplicationError",
        "ActivityError",
        "ChildWorkflowError",
        "WorkflowFailureError",
        "WorkflowUpdateFailedError",
        "ValidationError",
        "OrderRefused",
        "Refused",
    }
)


def scrub_class_names(message: str) -> str:
    """``message`` without internal class names quoted as ``Name: `` prefixes, as a failure
    relayed through an activity or a workflow reads (``the registry refused the exemption:
    RegistryError: no partner x`` becomes ``...: no partner x``). Every subclass of
    :class:`GatekeeperError` counts, wherever it is defined."""
    names = _class_names(GatekeeperError) | OTHER_INTERNAL_NAMES
    pattern = r"\b(?:" + "|".join(sorted(names)) + r"):\s*"
    return re.sub(pattern, "", message)
