"""Logging for Gatekeeper processes: configured once at the process edge, one format for everything.

structlog renders both its own events and every stdlib record (``temporalio``'s loggers,
``workflow.logger``, ``activity.logger``, the SDK Core's logs forwarded from Rust), so a process
writes either readable console lines or one JSON object per line, never a mix.

Every line is masked once rendered (:func:`gatekeeper.redact.mask`): URL passwords, bearer
tokens, ``password=``-style pairs and every secret the process was configured with (the registry
URL's password, codec keys and token, variables whose names say secret) read ``***``, whichever
library logged them and whatever field or traceback carried them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from temporalio import activity, workflow
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from gatekeeper import redact
from gatekeeper.errors import ConfigError
from gatekeeper.settings import Settings

#: Marks the handler we install, so configuring again replaces it instead of adding a second one.
_HANDLER_NAME = "gatekeeper"

#: Record attributes not worth a field: Core's raw entry (its fields are already in the message).
_DROPPED_EXTRAS = ("temporal_log",)

#: Libraries whose INFO is a running commentary (alembic announces every plugin and migration
#: context on each start); they speak at WARNING unless the level is DEBUG.
_CHATTY_LOGGERS = ("alembic",)

_core_logs_forwarded = False


def configure_logging(settings: Settings, *, forward_core_logs: bool = True) -> None:
    """Route structlog and stdlib logging to stderr in the format the settings ask for.

    ``log_format`` ``auto`` means console lines on a terminal and JSON lines otherwise. Calling
    this again replaces the previous configuration (it never stacks handlers).

    Args:
        settings: supplies ``log_format`` and ``log_level``.
        forward_core_logs: also send the SDK Core's (Rust) logs through stdlib logging. This
            replaces Temporal's default runtime, so call it before the first client connects;
            it happens at most once per process.

    Raises:
        ConfigError: the level or format is not one we know.
    """
    level = _level(settings.log_level)
    renderer = _renderer(settings.log_format)
    redact.remember_environment(settings.env)
    redact.remember_url(settings.registry_url)
    redact.remember(settings.codec_server_token, *_codec_secrets(settings.codec_keys))
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: module-level loggers must follow a later reconfiguration.
        cache_logger_on_first_use=False,
    )
    final: list[structlog.typing.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta
    ]
    if isinstance(renderer, structlog.processors.JSONRenderer):
        # Frames without their local variables: a local may hold a secret (a webhook's key, SMTP
        # credentials) or a channel's destination, which never go into a log line.
        final.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    final.append(_Masked(renderer))
    formatter = structlog.stdlib.ProcessorFormatter(
        # ExtraAdder turns ``extra=`` (and the ``temporal_workflow``/``temporal_activity`` context
        # Temporal's loggers attach) into fields.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(), _drop_extras],
        processors=final,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)

    # The workflow/activity context travels as structured fields; repeating it in the message
    # text would print it twice.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    if forward_core_logs:
        _forward_core_logs(level)


class _Masked:
    """The renderer, with every secret in the rendered line replaced by ``***``."""

    def __init__(self, renderer: Any) -> None:
        self.renderer = renderer

    def __call__(
        self, logger: Any, method_name: str, event_dict: structlog.typing.EventDict
    ) -> str | bytes:
        line = self.renderer(logger, method_name, event_dict)
        if isinstance(line, bytes):
            return redact.mask(line.decode("utf-8", "replace")).encode("utf-8")
        return redact.mask(str(line))


def _codec_secrets(keys: str | None) -> list[str]:
    """The key material of ``id:<base64>,id:<base64>`` (the ids are not secret)."""
    return [item.split(":", 1)[-1] for item in (keys or "").split(",") if item.strip()]


def _drop_extras(
    logger: Any, method_name: str, event_dict: structlog.typing.EventDict
) -> structlog.typing.EventDict:
    for key in _DROPPED_EXTRAS:
        event_dict.pop(key, None)
    return event_dict


def _level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise ConfigError(f"log level must be DEBUG, INFO, WARNING or ERROR, not {name!r}")
    return level


def _renderer(log_format: str) -> Any:
    chosen = log_format.lower()
    if chosen == "auto":
        chosen = "console" if sys.stderr.isatty() else "json"
    if chosen == "json":
        return structlog.processors.JSONRenderer()
    if chosen == "console":
        colors = sys.stderr.isatty()
        return structlog.dev.ConsoleRenderer(
            colors=colors,
            # Like the JSON tracebacks: no local variables, which may hold secrets.
            exception_formatter=structlog.dev.RichTracebackFormatter(
                show_locals=False, color_system="truecolor" if colors else None
            ),
        )
    raise ConfigError(f"log format must be auto, console or json, not {log_format!r}")


def _forward_core_logs(level: int) -> None:
    """Make the SDK Core log through ``temporalio.core`` instead of writing to stderr itself."""
    global _core_logs_forwarded
    if _core_logs_forwarded:
        return
    core_level = "DEBUG" if level <= logging.DEBUG else "WARN"
    runtime = Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level=core_level, other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            )
        )
    )
    Runtime.set_default(runtime, error_if_already_set=False)
    _core_logs_forwarded = True
