"""Refusals as Temporal failures: one line, a rule type, non-retryable, and no stack trace.

A refused request is an answer, not a crash: the workflow raises :class:`Refused` (an
``ApplicationError`` whose ``type`` is the rule broken, e.g. ``separation_of_duties`` or
``bad_input``), and :class:`RefusalFailureConverter` (installed on the data converter every
Gatekeeper worker and client uses, see :func:`gatekeeper.client.data_converter`) writes it without
the Python stack trace, so the history of a release holds no worker file paths and no code.
Every other failure keeps its trace, which is what an operator debugging it needs — with every
secret masked (:mod:`gatekeeper.redact`) in its message and trace, through the whole cause chain,
so an adapter's error quoting a database URL never writes its password into history.
"""

from __future__ import annotations

import dataclasses

import temporalio.api.failure.v1
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import ApplicationError, FailureError

from gatekeeper import redact


class Refused(ApplicationError):
    """A request refused by a rule: ``type`` names the rule; never retried."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message, type=rule, non_retryable=True)


def cause_message(err: BaseException) -> str:
    """The message of what made ``err`` fail (an activity's or child's cause), without the
    ``Type: `` prefix ``str()`` of an ``ApplicationError`` carries: the text a person reads in
    a status, an outbox record or a refusal, where an internal class name means nothing."""
    cause = err.__cause__ if err.__cause__ is not None else getattr(err, "cause", None)
    target = cause if cause is not None else err
    if isinstance(target, FailureError):
        return target.message
    return str(target)


class RefusalFailureConverter(DefaultFailureConverter):
    """The default failure converter, except that a :class:`Refused` carries no stack trace and
    no failure carries a secret the process knows of or a pattern recognises."""

    def _error_to_failure(
        self,
        error: FailureError,
        payload_converter: PayloadConverter,
        failure: temporalio.api.failure.v1.Failure,
    ) -> None:
        # The one place the default converter fills ``stack_trace``; with encoded attributes it
        # moves message and trace into the (encrypted) attributes afterwards, in to_failure.
        super()._error_to_failure(error, payload_converter, failure)
        if isinstance(error, Refused):
            failure.stack_trace = ""
        # Each error of a cause chain passes through here (the default converter recurses
        # through ``to_failure``), so every level is masked.
        failure.message = redact.mask(failure.message)
        failure.stack_trace = redact.mask(failure.stack_trace)


class EncodedRefusalFailureConverter(RefusalFailureConverter):
    """With a codec: messages (and any stack traces) move into the encrypted attributes."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)


#: Pydantic models as JSON, refusals without traces: the converter when no codec is configured.
CONVERTER: DataConverter = dataclasses.replace(
    pydantic_data_converter, failure_converter_class=RefusalFailureConverter
)
