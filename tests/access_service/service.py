"""A real access service for the tests: uvicorn on a free loopback port, in a thread of its own.

The service runs exactly as ``gatekeeper access serve`` runs it (:func:`run_service`), on its own
event loop in a background thread, so a test drives it with a plain ``httpx.Client`` over real
HTTP and changes the registry through :class:`AccessRegistry` meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gatekeeper.access_service.server import Running, run_service
from gatekeeper.access_service.settings import ServiceSettings
from gatekeeper.config import AccessServiceConfig
from gatekeeper.settings import Settings

#: A gateway token the tests configure (long enough to be accepted).
TOKEN = "gw-token-0123456789abcdef"
#: The token of a rotation's second gateway.
OTHER_TOKEN = "gw-token-fedcba9876543210"


def service_settings(
    registry_url: str,
    tmp_path: Path,
    *,
    tokens: list[str] | None = None,
    env: dict[str, str] | None = None,
    insecure_no_caller_auth: bool = False,
    host: str = "127.0.0.1",
    **section: Any,
) -> ServiceSettings:
    """Settings for a service on a free loopback port: ``tokens`` go to a tokens file (default:
    :data:`TOKEN`; ``[]`` for none), the edge log to ``tmp_path/edge.jsonl``, no allow sampled
    unless ``allow_sample`` is given."""
    tokens = [TOKEN] if tokens is None else tokens
    if tokens:
        tokens_file = tmp_path / "gateway-tokens"
        tokens_file.write_text("# gateway tokens\n" + "\n".join(tokens) + "\n")
        section.setdefault("tokens_file", str(tokens_file))
    section.setdefault("log_file", str(tmp_path / "edge.jsonl"))
    # No allow sampled unless a test asks: a sampled allow (1 % by default) would make the log's
    # exact lines a matter of chance.
    section.setdefault("allow_sample", 0.0)
    config = AccessServiceConfig.model_validate(section)
    settings = Settings(registry_url=registry_url, data_dir=tmp_path, env=env or {})
    return ServiceSettings.resolve(
        settings,
        host=host,
        port=0,
        insecure_no_caller_auth=insecure_no_caller_auth,
        section=config,
    )


@contextmanager
def running(settings: ServiceSettings) -> Iterator[Running]:
    """The service, answering on its port until the block ends."""
    ready = threading.Event()
    box: dict[str, Running] = {}
    failed: list[BaseException] = []

    def on_ready(handle: Running) -> None:
        box["running"] = handle
        ready.set()

    def main() -> None:
        try:
            asyncio.run(run_service(settings, on_ready=on_ready, own_signals=False))
        except BaseException as err:
            failed.append(err)
            ready.set()

    thread = threading.Thread(target=main, name="access-service", daemon=True)
    thread.start()
    assert ready.wait(60), "the access service did not start within 60 s"
    if failed:
        raise failed[0]
    handle = box["running"]
    try:
        yield handle
    finally:
        handle.server.stop()
        thread.join(15)
        assert not thread.is_alive(), "the access service did not stop"


@dataclass
class Gateway:
    """A caller of the service, as a gateway's authorization subrequest calls it."""

    client: httpx.Client
    token: str | None = TOKEN

    def ask(
        self,
        person: str | None,
        model: str | None = "aurora",
        *,
        path: str = "/v1/decision",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **inputs: str,
    ) -> httpx.Response:
        sent: dict[str, str] = {}
        if self.token is not None:
            sent["X-Gatekeeper-Gateway-Token"] = self.token
        if person is not None:
            sent["X-Gatekeeper-Person"] = person
        if model is not None:
            sent["X-Gatekeeper-Model"] = model
        for name, value in inputs.items():
            sent[f"X-Gatekeeper-{name.capitalize()}"] = value
        return self.client.get(path, params=params, headers=sent | (headers or {}))


@contextmanager
def gateway(handle: Running, token: str | None = TOKEN, **client: Any) -> Iterator[Gateway]:
    with httpx.Client(base_url=handle.url, timeout=10, **client) as http:
        yield Gateway(http, token)


def edge_lines(settings: ServiceSettings) -> list[dict[str, Any]]:
    """Every line of the service's edge log, parsed."""
    assert settings.log_file is not None
    if not settings.log_file.exists():
        return []
    return [json.loads(line) for line in settings.log_file.read_text().splitlines()]
