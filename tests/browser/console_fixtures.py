"""The console's real-browser tests: everything they run against, all real and on loopback.

- a real OpenID Connect provider (``oidc-provider-mock``, in a child process) on a free
  loopback port, which knows each roster person under their own subject (``sub-<person id>``)
  with their roster e-mail; the identity admin links each subject to its person;
- a real Gatekeeper worker on the session's dev server (its own task queue and data directory,
  the identity registry there trusting the test keys of every roster person, the packaged demo
  policy installed as the store's default), and the sample evidence of ``examples/``;
- the console (``gatekeeper.console.create_app``) served by uvicorn on a free loopback port in a
  thread of its own (its event loop is not the worker's), configured with the provider as its
  issuer and ``http://localhost:<port>`` as its URL (WebAuthn accepts plain http only there);
- Debian's chromium driven by Playwright; each person gets a browser context of their own with a
  CDP virtual authenticator (ctap2, internal, resident keys, user verification) holding their
  passkey, signs in through the provider's authorize page, and acts in the console.

The identity admin's steps that the tests are about run through the real CLI (``gatekeeper keys
passkey approve``, ``gatekeeper keys gateway register``), the way an admin would type them: the
console never approves a passkey. The console holds a gateway key (registered so), so where the
demo policy allows it a decision may carry the console's attestation instead of a passkey.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities import Adapters
from gatekeeper.config import ConsoleConfig, WorkerConfig
from gatekeeper.identity.registry import IdentityRegistry
from gatekeeper.models import ReleaseSpec, ReleaseStatus
from gatekeeper.policy import load_demo_policy
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.spec import load_spec
from tests import factories, replaying, signing
from tests.helpers import adapters_for, running_worker, status_until
from tests.identity_fixtures import admin_key

if TYPE_CHECKING:
    import uvicorn
    from playwright.async_api import Browser, BrowserContext, CDPSession, Dialog, Page, ViewportSize

REPO = Path(__file__).resolve().parents[2]
DOCS_IMG = REPO / "docs" / "img"
EXAMPLES = REPO / "examples"
SAMPLE_SPEC = EXAMPLES / "release.yaml"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The identity admin whose key (``admin-keys/identity-admin.pem``) approves passkeys.
ADMIN = "identity-admin"
#: How long a browser step may take before it fails (the machine is shared).
STEP_MS = 20_000
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}


def chromium_path() -> str:
    """Debian's chromium, or skip (fail in CI) saying what to install, before any server starts."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    missing = None
    if importlib.util.find_spec("playwright") is None:
        missing = "playwright is not installed (pip install playwright; it is a dev extra)"
    elif path is None:
        missing = "chromium is not installed (apt-get install -y chromium chromium-driver)"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test: {missing}")
        pytest.skip(missing)
    assert path is not None
    return path


def subject_of(person: str) -> str:
    """The provider's subject for ``person``: not their roster id, so only the identity
    registry's SSO link (``link_everyone``) ties the two together."""
    return f"sub-{person}"


def loopback_socket() -> socket.socket:
    """A listening-ready socket bound to a free loopback port (handed to uvicorn as is, so no
    other process can take the port in between)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


# --- the OpenID provider ----------------------------------------------------------------------


@dataclass
class Provider:
    """The running provider: its issuer URL (what the console is configured with)."""

    issuer: str


@contextlib.contextmanager
def oidc_provider(people: dict[str, str], log: Path) -> Iterator[Provider]:
    """``oidc-provider-mock`` on a free loopback port, in a child process of its own (its
    authlib warns of deprecations, which this test session turns into errors); ``people`` maps
    each roster id to their e-mail. The authorize page lets a person type their subject (what
    the tests do); the issuer is ``http://localhost:<port>``."""
    import httpx

    claims = [
        json.dumps({"sub": subject_of(person), "email": email, "email_verified": True})
        for person, email in people.items()
    ]
    for _ in range(3):  # a port taken in between: try another
        port = free_port()
        with log.open("ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1",
                 "--port", str(port), *(a for c in claims for a in ("--user-claims", c))],
                stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "NO_COLOR": "1"},
            )  # fmt: skip
        issuer = f"http://localhost:{port}"
        try:
            deadline = time.monotonic() + 30
            while process.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    found = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
                    if found.status_code == 200 and found.json()["issuer"] == issuer:
                        break
                time.sleep(0.1)
            else:
                if process.poll() is None:
                    raise RuntimeError(f"the OpenID provider did not answer (log: {log})")
                continue
            yield Provider(issuer=issuer)
            return
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    raise RuntimeError(f"the OpenID provider did not start (log: {log})")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the console, served by uvicorn in a thread -------------------------------------------------


class ConsoleServer:
    """The console app served by uvicorn on ``sock`` in a thread with its own event loop."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        import uvicorn

        self.sock = sock
        self.server: uvicorn.Server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="console", daemon=True
        )

    def __enter__(self) -> ConsoleServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console did not start (see its log above)")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


# --- the whole stack ----------------------------------------------------------------------------


@dataclass
class Stack:
    """Everything the console's browser tests touch."""

    env: WorkflowEnvironment
    task_queue: str
    data_dir: Path
    adapters: Adapters
    releases: Releases
    provider: Provider
    console: str
    admin_keys: Path
    browser: Browser
    policy_ref: str
    people: dict[str, str] = field(default_factory=dict)
    #: Each person's approved passkey, as the virtual authenticator exported it (re-added to
    #: the authenticator of every later browser context of theirs).
    passkeys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def client_env(self, data_dir: Path | None = None) -> dict[str, str]:
        """The environment the real CLI runs with: this stack's server, queue, data (or
        ``data_dir``) and the identity admin's keys."""
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("GATEKEEPER_", "TEMPORAL_"))
        }
        env.update(
            TEMPORAL_ADDRESS=self.env.client.service_client.config.target_host,
            TEMPORAL_NAMESPACE=self.env.client.namespace,
            GATEKEEPER_TASK_QUEUE=self.task_queue,
            GATEKEEPER_DATA_DIR=str(data_dir or self.data_dir),
            GATEKEEPER_KEYS_DIR=str(self.admin_keys),
            GATEKEEPER_LOG_LEVEL="WARNING",
            PYTHONPATH=str(REPO),
            COLUMNS="200",
        )
        return env

    async def cli(
        self, *args: str, ok: bool = True, data_dir: Path | None = None
    ) -> tuple[int, str, str]:
        """``gatekeeper <args>`` in a child process (never blocking the worker's loop), on this
        stack's data directory or ``data_dir`` (an empty one: offline)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gatekeeper",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.client_env(data_dir),
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        code = process.returncode
        assert code is not None
        stdout, stderr = out.decode(), err.decode()
        if ok:
            assert code == 0, f"gatekeeper {' '.join(args)} exited {code}: {stderr or stdout}"
        return code, stdout, stderr

    async def approve_passkeys(self, person: str) -> list[str]:
        """The identity admin approves ``person``'s pending passkeys with the real CLI
        (``gatekeeper keys passkey list --pending``, then ``approve ID --as identity-admin``)."""
        _, listed, _ = await self.cli("keys", "passkey", "list", "--pending", "--json")
        pending = [p for p in json.loads(listed) if p.get("person") == person]
        assert pending, f"no pending passkey of {person} to approve: {listed}"
        ids = [str(p.get("enrollment_id") or p.get("id")) for p in pending]
        for enrollment in ids:
            await self.cli("keys", "passkey", "approve", enrollment, "--as", ADMIN)
        return ids

    async def start(self, release_id: str | None = None, **overrides: Any) -> ReleaseStatus:
        """The release manager starts the sample release (``examples/release.yaml``, a fresh id)
        through the client API, as ``gatekeeper release start`` does; until it waits for its
        internal review."""
        spec = sample_spec(release_id or f"aurora-{uuid.uuid4().hex[:6]}", **overrides)
        await self.releases.start(spec, self.policy_ref)
        return await self.until(spec.release_id, "internal_review")

    async def until(self, release_id: str, stage: str, within: float = 30) -> ReleaseStatus:
        return await status_until(
            self.releases,
            release_id,
            lambda s: s.stage == stage and s.awaiting is not None,
            what=f"waiting at {stage}",
            within=within,
        )

    async def attest_authorship(self, release_id: str, by: str) -> None:
        """A reviewer attests who wrote each evidence item of the sample spec (the demo policy
        requires it before a gate closes)."""
        from gatekeeper.models.messages import AuthorshipAttestation

        status = await self.releases.status(release_id)
        for item in status.spec.evidence:
            await self.releases.attest_authorship(
                release_id,
                AuthorshipAttestation(by=by, evidence_id=item.id, authors=list(item.authors)),
            )

    @contextlib.asynccontextmanager
    async def person(self, person: str, *, sign_in: bool = True) -> AsyncIterator[Visitor]:
        """A browser context of ``person``'s own, with a virtual authenticator (their passkey
        lives there), signed in through the provider unless ``sign_in`` is False."""
        context = await self.browser.new_context(base_url=self.console, viewport=VIEWPORT)
        try:
            context.set_default_timeout(STEP_MS)
            page = await context.new_page()
            dialogs: list[str] = []

            async def dialog(opened: Dialog) -> None:
                """A dialog a page opened (none should): noted, then dismissed."""
                dialogs.append(opened.message)
                await opened.dismiss()

            page.on("dialog", dialog)
            cdp = await context.new_cdp_session(page)
            await cdp.send("WebAuthn.enable", {"enableUI": False})
            made = await cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "internal",
                        "hasResidentKey": True,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                        "automaticPresenceSimulation": True,
                    }
                },
            )
            visitor = Visitor(self, person, context, page, cdp, made["authenticatorId"], dialogs)
            if person in self.passkeys:
                await cdp.send(
                    "WebAuthn.addCredential",
                    {"authenticatorId": visitor.authenticator, "credential": self.passkeys[person]},
                )
            if sign_in:
                await visitor.sign_in()
            yield visitor
        finally:
            await context.close()


@dataclass
class Visitor:
    """One person in their own browser context."""

    stack: Stack
    person: str
    context: BrowserContext
    page: Page
    cdp: CDPSession
    authenticator: str
    dialogs: list[str]

    async def sign_in(self, landing: str = "/inbox") -> None:
        """Sign in as a person would: the console's sign-in page (the browser asks for its
        favicon too), the provider's authorize page (type the subject, Authorize), back through
        the console's callback to ``landing`` (the inbox, or the page asked for before)."""
        from playwright.async_api import expect

        page = self.page
        if not page.url.endswith("/signin"):
            await page.goto("/signin")
        await page.get_by_test_id("signin-oidc").click()
        await page.wait_for_url(re.compile(re.escape(self.stack.provider.issuer) + "/"))
        await page.locator("input[name=sub]").fill(subject_of(self.person))
        await page.get_by_role("button", name="Authorize").click()
        await page.wait_for_url(re.compile(re.escape(self.stack.console + landing) + "$"))
        await expect(page.get_by_test_id("signout")).to_be_visible()

    async def credentials(self) -> list[dict[str, Any]]:
        found = await self.cdp.send(
            "WebAuthn.getCredentials", {"authenticatorId": self.authenticator}
        )
        return list(found["credentials"])

    async def register_passkey(self, *, approve: bool = True) -> None:
        """Register a passkey on the Passkeys page (the browser makes it in the authenticator);
        then (``approve``) the identity admin approves it with the CLI, and the stack keeps it
        for the person's later browser contexts."""
        from playwright.async_api import expect

        await self.page.goto("/passkeys")
        await self.page.get_by_test_id("passkey-register").click()
        await expect(self.page.get_by_test_id("passkey-status")).to_contain_text(
            "waiting for an identity admin"
        )
        [credential] = await self.credentials()
        if approve:
            await self.stack.approve_passkeys(self.person)
            self.stack.passkeys[self.person] = credential

    async def ensure_passkey(self) -> None:
        """The person has an approved passkey in this context's authenticator."""
        if self.person not in self.stack.passkeys:
            await self.register_passkey()

    async def at_stage(self, release_id: str, stage: str) -> None:
        """The release page shows ``stage`` as the current step of its stage graph."""
        from playwright.async_api import expect

        await self.page.goto(f"/releases/{release_id}")
        current = self.page.locator("[data-testid=stage-graph] [aria-current=step]")
        await expect(current).to_have_attribute("data-stage", stage)

    async def csrf(self) -> str:
        """The session's CSRF token, as the page's own forms carry it."""
        token = await self.page.locator("input[name=csrf_token]").first.get_attribute("value")
        assert token
        return token

    async def decide(self, release_id: str, action: str, **fields: str) -> str:
        """Open the release, fill the ``action`` form (its comment or other fields), submit it
        (the browser signs with the passkey), and return the flash line shown after."""
        from playwright.async_api import expect

        page = self.page
        await page.goto(f"/releases/{release_id}")
        form = page.locator(f"[data-testid=decision-form][data-action={action}]")
        await expect(form).to_have_count(1)
        for name, value in fields.items():
            control = form.locator(f"[name={name}]")
            if await control.evaluate("e => e.tagName") == "SELECT":
                await control.select_option(value)
            else:
                await control.fill(value)
        await form.get_by_test_id("decision-submit").click()
        flash = page.get_by_test_id("flash")
        await expect(flash).to_be_visible()
        return await flash.inner_text()


def sample_spec(release_id: str, **overrides: Any) -> ReleaseSpec:
    """``examples/release.yaml`` under another id (its evidence is the sample files there)."""
    spec = load_spec(SAMPLE_SPEC)
    data = spec.model_dump(mode="json")
    data.update(release_id=release_id, **overrides)
    return ReleaseSpec.model_validate(data)


def link_everyone(registry: IdentityRegistry, admin_keys: Path, issuer: str) -> None:
    """The identity admin links each roster person's subject at the provider to them."""
    admin = admin_key(registry, admin_keys)
    for person, email in roster_emails().items():
        if registry.sso_person(issuer, subject_of(person)) is None:
            registry.link_sso(
                person, issuer=issuer, subject=subject_of(person), email=email, admin_key=admin
            )


def roster_emails() -> dict[str, str]:
    return {p.id: str(p.email) for p in load_demo_policy().policy.roster if p.email}


def console_app(
    env: WorkflowEnvironment, gatekeeper: Settings, sock: socket.socket, issuer: str
) -> Any:
    """The console app for this stack at ``http://localhost:<port of sock>``: OIDC sign-in at
    ``issuer``, its own Temporal connection (made in its own event loop) to the test server."""
    from gatekeeper.console import ConsoleSettings, create_app
    from gatekeeper.console.settings import OidcSettings

    port = sock.getsockname()[1]
    url = f"http://localhost:{port}"
    client = env.client
    settings = ConsoleSettings(
        gatekeeper=gatekeeper.with_overrides(
            env={
                "TEMPORAL_ADDRESS": client.service_client.config.target_host,
                "TEMPORAL_NAMESPACE": client.namespace,
            }
        ),
        host="127.0.0.1",
        port=port,
        url=url,
        session_secret=secrets.token_urlsafe(32),
        oidc=OidcSettings(issuer, "gatekeeper-console", secrets.token_urlsafe(16)),
    )
    return create_app(settings)


@pytest.fixture(scope="module")
def console_chromium() -> str:
    return chromium_path()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def playwright_browser(console_chromium: str) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright, expect

    # Every wait of the tests (a passkey signing, the worker answering) gets the same patience
    # as a browser step: the machine may be busy with the rest of the suite.
    expect.set_options(timeout=STEP_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=console_chromium, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stack(
    env: WorkflowEnvironment,
    playwright_browser: Browser,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """The worker, the provider and the console for a module's tests; at the end every history
    its releases left replays with today's workflow code."""
    root = tmp_path_factory.mktemp("console")
    task_queue = f"tq-console-{uuid.uuid4().hex[:8]}"
    data_dir = root / "data"
    gatekeeper = Settings(task_queue=task_queue, data_dir=data_dir, config=_worker_config())
    adapters = adapters_for(task_queue, data_dir, config=gatekeeper.config)
    admin_keys = root / "admin-keys"
    demo = load_demo_policy().policy
    policy_ref = await asyncio.to_thread(
        factories.install_policy, adapters.policies, demo, default=True
    )
    try:
        with oidc_provider(roster_emails(), root / "oidc.log") as provider:
            async with running_worker(env.client, task_queue, adapters, admin_keys=admin_keys):
                await asyncio.to_thread(
                    link_everyone, adapters.identity, admin_keys, provider.issuer
                )
                sock = loopback_socket()
                url = f"http://localhost:{sock.getsockname()[1]}"
                stack = Stack(
                    env=env,
                    task_queue=task_queue,
                    data_dir=data_dir,
                    adapters=adapters,
                    releases=Releases(env.client, task_queue, signer=signing.signer()),
                    provider=provider,
                    console=url,
                    admin_keys=admin_keys,
                    browser=playwright_browser,
                    policy_ref=policy_ref,
                    people=roster_emails(),
                )
                # The console's own key, registered as a trusted gateway by the identity admin
                # with the real CLI (which makes the PEM): where the policy allows, a decision
                # may carry the console's attestation of the OIDC identity instead of a passkey.
                gateway = root / "console-gateway.pem"
                await stack.cli(
                    "keys", "gateway", "register", "--name", "console",
                    "--key-file", str(gateway), "--as", ADMIN,
                )  # fmt: skip
                config = gatekeeper.config.model_copy(
                    update={"console": ConsoleConfig(gateway_key=gateway)}
                )
                app = console_app(
                    env, gatekeeper.with_overrides(config=config), sock, provider.issuer
                )
                with ConsoleServer(app, sock):
                    yield stack
            checked = await replaying.check_task_queue(env.client, task_queue)
            assert not checked.failures, "\n".join(checked.failures)
    finally:
        adapters.close()


def _worker_config() -> WorkerConfig:
    return WorkerConfig().with_evidence_roots(EXAMPLES)
