"""Errors become ApplicationError in one place: typed by class, retryable only when it can help."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities._errors import activity_errors
from gatekeeper.errors import (
    AdapterError,
    ClearinghouseError,
    DeliveryError,
    EvidenceError,
    SpecError,
)
from gatekeeper.models.io import NotifyRequest


def raising(error: BaseException) -> None:
    with activity_errors():
        raise error


def translated(error: BaseException) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        ActivityEnvironment().run(raising, error)
    assert caught.value.__cause__ is error
    return caught.value


class TestAdapterErrors:
    """An adapter error keeps its class name and its own retryable flag."""

    @pytest.mark.parametrize(
        "error",
        [
            DeliveryError("smtp down"),
            ClearinghouseError("endpoint 503"),
            EvidenceError("bucket unreachable"),
            AdapterError("disk full"),
        ],
    )
    def test_retryable(self, error: AdapterError) -> None:
        failure = translated(error)

        assert failure.type == type(error).__name__
        assert failure.non_retryable is False
        assert failure.message == str(error)

    def test_not_retryable(self) -> None:
        failure = translated(DeliveryError("no such channel", retryable=False))

        assert (failure.type, failure.non_retryable) == ("DeliveryError", True)


class TestInputErrors:
    """Bad input fails for good: trying the same input again cannot help."""

    def test_validation_error_is_one_line_and_final(self) -> None:
        with pytest.raises(ValidationError) as invalid:
            NotifyRequest.model_validate({"notification": {}, "recipients": "x"})

        failure = translated(invalid.value)

        assert failure.type == "ValidationError"
        assert failure.non_retryable is True
        assert "\n" not in failure.message
        assert failure.message.startswith("invalid NotifyRequest: notification.idempotency_key:")
        assert "more)" in failure.message

    def test_other_gatekeeper_errors_are_final(self) -> None:
        failure = translated(SpecError("spec.yaml", []))

        assert (failure.type, failure.non_retryable) == ("SpecError", True)


class TestPassThrough:
    """Application errors and unexpected errors are left as they are."""

    def test_application_error_is_unchanged(self) -> None:
        error = ApplicationError("already translated", type="Custom", non_retryable=True)

        with pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(raising, error)

        assert caught.value is error

    def test_unexpected_errors_are_left_to_temporal(self) -> None:
        with pytest.raises(ZeroDivisionError):
            ActivityEnvironment().run(raising, ZeroDivisionError("bug"))
