"""The console app over HTTP (httpx, no browser) against the session's real Temporal server.

:func:`console_for` builds the app for a harness (its task queue, its data directory: the policy
store and identity registry the worker reads) and an httpx client that talks to it in-process
(ASGI) from a loopback address, or from another address when a test says so.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from gatekeeper.config import WorkerConfig
from gatekeeper.console import ConsoleSettings, create_app
from gatekeeper.console.settings import OidcSettings
from gatekeeper.orders import Orders
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from tests import factories, signing
from tests.helpers import adapters_for, running_worker
from tests.workflows.conftest import Harness

__all__ = ["Console", "ConsoleHarness", "console", "harness"]

BASE_URL = "http://127.0.0.1:8400"
SECRET = "s" * 48
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def gatekeeper_settings(data_dir: Path, task_queue: str, **config: Any) -> Settings:
    return Settings(
        task_queue=task_queue,
        data_dir=data_dir,
        config=WorkerConfig.model_validate(config),
        env={},
    )


def console_settings(
    client: Client,
    data_dir: Path,
    task_queue: str,
    *,
    dev_sign_in: bool = True,
    oidc: OidcSettings | None = None,
    url: str = BASE_URL,
    **config: Any,
) -> ConsoleSettings:
    return ConsoleSettings(
        gatekeeper=gatekeeper_settings(data_dir, task_queue, **config),
        url=url,
        session_secret=SECRET,
        dev_sign_in=dev_sign_in,
        oidc=oidc,
        client=client,
    )


@dataclass
class ConsoleHarness(Harness):
    """The workflow harness of a worker that knows the console (``[console] url``) and
    reaches releases with access orders, plus the orders API."""

    orders: Orders


@pytest_asyncio.fixture(loop_scope="session")
async def harness(
    env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> AsyncIterator[ConsoleHarness]:
    """A real worker whose configuration names the console (``[console] url``: notifications
    link to it), the test policy its store's default."""
    config = WorkerConfig.model_validate({"console": {"url": BASE_URL}})
    data_dir = tmp_path / "data"
    adapters = adapters_for(task_queue, data_dir, config=config)
    factories.install_policy(adapters.policies, factories.policy(), default=True)
    async with running_worker(env.client, task_queue, adapters, orders=True):
        yield ConsoleHarness(
            env,
            Releases(env.client, task_queue, signer=signing.signer()),
            adapters,
            data_dir,
            Orders(env.client, task_queue, signer=signing.signer()),
        )
    adapters.close()


class Console:
    """An httpx client of one console app, with the steps every test takes."""

    def __init__(self, http: httpx.AsyncClient, settings: ConsoleSettings, app: Any) -> None:
        self.http = http
        self.settings = settings
        self.app = app

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.post(path, **kwargs)

    async def csrf(self, path: str = "/signin") -> str:
        """The CSRF token a page's forms carry (the session's)."""
        page = await self.get(path)
        found = _CSRF.search(page.text)
        assert found, f"no CSRF token on {path}: {page.status_code} {page.text[:300]}"
        return found.group(1)

    async def dev_signin(self, person: str) -> httpx.Response:
        token = await self.csrf()
        answer = await self.post("/signin/dev", data={"person": person, "csrf_token": token})
        assert answer.status_code == 303, answer.text
        return answer


@asynccontextmanager
async def console_for(
    settings: ConsoleSettings, *, client_host: str = "127.0.0.1", base_url: str = BASE_URL
) -> AsyncIterator[Console]:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=(client_host, 50123))
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        yield Console(http, settings, app)
    state = app.state.console
    if state is not None:
        await asyncio.to_thread(state.close)


@pytest_asyncio.fixture(loop_scope="session")
async def console(harness: ConsoleHarness) -> AsyncIterator[Console]:
    """The console on the harness's task queue and data directory, dev sign-in on (the test
    policy, the store's default, says who people are)."""
    settings = console_settings(harness.env.client, harness.data_dir, harness.releases.task_queue)
    async with console_for(settings) as found:
        yield found
