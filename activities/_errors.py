"""The one place where activity errors become Temporal failures.

Every activity body runs inside :func:`activity_errors`. An :class:`~gatekeeper.errors.AdapterError`
becomes an ``ApplicationError`` typed with its class name and retryable exactly when the adapter
said so; bad input (pydantic ``ValidationError``, any other Gatekeeper error) becomes a
non-retryable one, since sending the same input again cannot help. Anything else is left to
Temporal, which retries it under the activity's retry policy.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from gatekeeper.errors import AdapterError, GatekeeperError


@contextmanager
def activity_errors() -> Iterator[None]:
    """Translate errors raised inside the block into ``ApplicationError``.

    Raises:
        ApplicationError: ``type`` is the error's class name; ``non_retryable`` is true for bad
            input and for adapter errors that are not retryable.
    """
    try:
        yield
    except ApplicationError:
        raise
    except AdapterError as err:
        raise _failure(str(err), type(err).__name__, non_retryable=not err.retryable) from err
    except ValidationError as err:
        raise _failure(_summary(err), "ValidationError", non_retryable=True) from err
    except GatekeeperError as err:
        raise _failure(str(err), type(err).__name__, non_retryable=True) from err


def _failure(message: str, error_type: str, *, non_retryable: bool) -> ApplicationError:
    activity.logger.warning(
        "%s: %s (%s)", error_type, message, "final" if non_retryable else "will retry"
    )
    return ApplicationError(message, type=error_type, non_retryable=non_retryable)


def _summary(err: ValidationError) -> str:
    """One line: what was invalid and the first problem, located."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "input"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"invalid {err.title}: {where}: {first['msg']}{more}"
