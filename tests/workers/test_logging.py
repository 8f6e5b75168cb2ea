"""configure_logging: one renderer for structlog and stdlib (temporalio) records."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from temporalio import activity, workflow
from temporalio.client import Client

from gatekeeper.errors import ConfigError
from gatekeeper.logging import configure_logging
from gatekeeper.settings import Settings
from tests.workers.helpers import WaitForFinishWorkflow
from workers.worker import build_worker


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Each test configures logging globally; put everything back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    flags = (workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message)
    alembic_level = logging.getLogger("alembic").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(alembic_level)
    structlog.configure(**config)
    workflow.logger.workflow_info_on_message, activity.logger.activity_info_on_message = flags


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class TestFormat:
    """When stderr is not a terminal, ``auto`` writes one JSON object per line, for structlog
    events and stdlib records (Temporal's own loggers) alike; ``console`` writes readable lines."""

    def test_auto_renders_json_lines_when_not_a_tty(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(Settings(log_format="auto"), forward_core_logs=False)

        structlog.get_logger("gatekeeper.test").info("release started", release_id="r-1")
        logging.getLogger("temporalio.worker").warning("poll failed %s", "twice")

        lines = _json_lines(capsys.readouterr().err)
        assert len(lines) == 2
        ours, temporals = lines
        assert ours["event"] == "release started"
        assert ours["release_id"] == "r-1"
        assert ours["level"] == "info"
        assert ours["logger"] == "gatekeeper.test"
        assert "timestamp" in ours
        assert temporals["event"] == "poll failed twice"
        assert temporals["level"] == "warning"
        assert temporals["logger"] == "temporalio.worker"

    def test_stdlib_extra_becomes_fields(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(Settings(log_format="json"), forward_core_logs=False)

        logging.getLogger("temporalio.workflow").info(
            "gate opened", extra={"temporal_workflow": {"workflow_id": "release-r-1"}}
        )

        (line,) = _json_lines(capsys.readouterr().err)
        assert line["temporal_workflow"] == {"workflow_id": "release-r-1"}

    def test_exceptions_are_structured_in_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(Settings(log_format="json"), forward_core_logs=False)

        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("gatekeeper.test").exception("failed")

        (line,) = _json_lines(capsys.readouterr().err)
        assert line["event"] == "failed"
        assert line["exception"][0]["exc_type"] == "ValueError"

    async def test_workflow_logger_has_its_context_as_fields(
        self, capsys: pytest.CaptureFixture[str], client: Client, task_queue: str
    ) -> None:
        configure_logging(Settings(log_format="json"), forward_core_logs=False)
        workflow_id = f"log-{uuid.uuid4().hex[:8]}"
        worker = build_worker(
            client,
            Settings(task_queue=task_queue),
            workflows=[WaitForFinishWorkflow],
            activities=[],
        )
        async with worker:
            handle = await client.start_workflow(
                WaitForFinishWorkflow.run, "x", id=workflow_id, task_queue=task_queue
            )
            await handle.signal(WaitForFinishWorkflow.finish, "ok")
            await handle.result()

        lines = _json_lines(capsys.readouterr().err)
        (finishing,) = [line for line in lines if line["event"] == "finishing"]
        assert finishing["logger"] == "temporalio.workflow"
        assert finishing["result"] == "ok"
        assert finishing["temporal_workflow"]["workflow_id"] == workflow_id

    def test_console_is_not_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(Settings(log_format="console"), forward_core_logs=False)

        structlog.get_logger("gatekeeper.test").info("release started", release_id="r-1")

        err = capsys.readouterr().err
        assert "release started" in err
        assert "release_id=r-1" in err
        with pytest.raises(json.JSONDecodeError):
            json.loads(err.splitlines()[0])


class TestConfiguration:
    """Configuring twice replaces the first configuration, the level filters both kinds of
    logger, and a bad level or format is a one-line ConfigError."""

    def test_idempotent(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(Settings(log_format="console"), forward_core_logs=False)
        configure_logging(Settings(log_format="json"), forward_core_logs=False)

        structlog.get_logger("gatekeeper.test").info("once")

        assert [line["event"] for line in _json_lines(capsys.readouterr().err)] == ["once"]
        ours = [h for h in logging.getLogger().handlers if h.get_name() == "gatekeeper"]
        assert len(ours) == 1

    def test_level_filters_structlog_and_stdlib(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(Settings(log_format="json", log_level="WARNING"), forward_core_logs=False)

        structlog.get_logger("gatekeeper.test").info("hidden")
        logging.getLogger("temporalio.worker").info("hidden too")
        structlog.get_logger("gatekeeper.test").warning("shown")

        assert [line["event"] for line in _json_lines(capsys.readouterr().err)] == ["shown"]

    def test_workflow_context_is_not_repeated_in_the_message(self) -> None:
        configure_logging(Settings(log_format="json"), forward_core_logs=False)

        assert workflow.logger.workflow_info_on_message is False
        assert activity.logger.activity_info_on_message is False
        assert workflow.logger.workflow_info_on_extra is True

    @pytest.mark.parametrize(
        ("settings", "word"),
        [(Settings(log_level="LOUD"), "level"), (Settings(log_format="xml"), "format")],
    )
    def test_bad_values(self, settings: Settings, word: str) -> None:
        with pytest.raises(ConfigError, match=word):
            configure_logging(settings, forward_core_logs=False)
