"""``gatekeeper release``: start releases from a spec, read, list, watch and amend them."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from gatekeeper.cli import common, render
from gatekeeper.cli.session import parse_when, releases
from gatekeeper.cli.watch import EXIT_STOPPED, WatchView, awaits, exit_code, follow_for
from gatekeeper.errors import InputError
from gatekeeper.models.audit import AuditEvent
from gatekeeper.models.enums import EvidenceKind
from gatekeeper.models.installed import POLICY_REF_PATTERN
from gatekeeper.models.messages import AmendRequest, AuthorshipAttestation
from gatekeeper.models.payloads import parse_request
from gatekeeper.models.spec import EvidenceRef
from gatekeeper.models.status import ReleaseStatus, UpdateResult
from gatekeeper.policy import LoadedPolicy, load_default_policy, load_policy
from gatekeeper.release_list import ReleaseSummary, checked_filter
from gatekeeper.settings import Settings
from gatekeeper.spec import load_checked_spec, local_path, sha256_file

app = typer.Typer(help="Start, inspect, list, watch and amend releases.", no_args_is_help=True)


def policy_for(settings: Settings, path: Path | None) -> LoadedPolicy:
    """The policy file other commands read a roster from (not what a release runs under)."""
    chosen = path or settings.policy_path
    return load_policy(chosen) if chosen else load_default_policy()


def policy_reference(value: str | None) -> str | None:
    """``--policy``'s value as an installed policy's ``ID@VERSION``; a file is refused.

    Raises:
        InputError: (one line) a file, a policy body or anything else that is not a reference.
    """
    if value is None:
        return None
    if re.match(POLICY_REF_PATTERN, value) and not Path(value).exists():
        return value
    raise InputError(
        "--policy names an installed policy as ID@VERSION, never a policy file or body: install it "
        "with `gatekeeper policy install FILE --as YOU` and start with --policy ID@VERSION "
        "(see `gatekeeper policy list`)"
    )


@app.command()
def start(
    ctx: typer.Context,
    spec_file: Path = typer.Argument(..., help="The release spec (YAML)."),
    policy: str = typer.Option(
        None,
        "--policy",
        help="Installed policy ID@VERSION to run under (default: the store's default policy; "
        "see `gatekeeper policy list`).",
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Start a release under an installed policy. The spec is checked against that policy and its
    evidence digests first; the worker resolves the policy again through its own store."""
    from gatekeeper.cli.policy import open_store

    settings = common.settings(ctx)
    ref = policy_reference(policy)
    with open_store(settings) as store:
        installed = store.resolve(ref)
    spec = load_checked_spec(spec_file, installed.policy)

    async def go() -> ReleaseStatus:
        async with releases(settings) as api:  # answers once the first stage waits
            return await api.start(spec, installed.ref)

    status = common.run(go())
    if json_:
        common.print_json(status)
        return
    common.console.print(
        f"[green]✔[/] started release [bold]{spec.release_id}[/] "
        + render.markup(
            f"({spec.model.name} {spec.model.version}) under policy "
            f"{status.policy_id}@{status.policy_version} "
        )
        + f"(sha256 {status.policy_sha256[:16]}…)"
    )
    render.print_status(common.console, status)


@app.command()
def status(
    ctx: typer.Context,
    release_id: str = typer.Argument(
        ..., help="Release id (the 'release-' prefix the Temporal UI shows is optional)."
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Show a release: stages, what it waits for and from whom, decisions, government, grants."""
    settings = common.settings(ctx)

    async def go() -> tuple[ReleaseStatus, list[AuditEvent]]:
        async with releases(settings) as api:
            status = await api.status(release_id)
            # How each decision was signed (passkey, gateway) is in its audit event.
            audit = [] if json_ else await api.audit(status.release_id)
            return status, audit

    result, audit = common.run(go())
    if json_:
        common.print_json(result)
    else:
        # Imported here: the dossier package is a third of a `release` command's startup.
        from gatekeeper.dossier.model import signature_kinds

        render.print_status(common.console, result, signature_kinds(audit))


@app.command("list")
def list_(
    ctx: typer.Context,
    stage: str = typer.Option(None, "--stage", help="Only releases at this stage."),
    state: str = typer.Option(
        None, "--state", help="active, held, suspended, launched, rejected, withdrawn."
    ),
    model: str = typer.Option(None, "--model", help="Only this model name."),
    awaiting: str = typer.Option(
        None, "--awaiting-role", help="Only releases waiting for this role."
    ),
    window_before: str = typer.Option(
        None, "--window-ends-before", help="Government window ends before this date (e.g. +7d)."
    ),
    submitted_by: str = typer.Option(
        None, "--submitted-by", help="Only releases this person submitted."
    ),
    risk: str = typer.Option(None, "--risk-tier", help="low, medium, high or critical."),
    running: bool = typer.Option(False, "--running", help="Only releases still running."),
    limit: int = typer.Option(100, "--limit", min=1, max=10_000, help="At most this many rows."),
    json_: bool = common.JSON_OPTION,
) -> None:
    """List releases through Temporal visibility, newest first, with filters."""
    settings = common.settings(ctx)
    filters = checked_filter(
        settings,
        stage=stage,
        state=state,
        model=model,
        awaiting_role=awaiting,
        window_ends_before=parse_when(window_before, option="--window-ends-before")
        if window_before
        else None,
        submitted_by=submitted_by,
        risk_tier=risk,
        running_only=running,
    )
    query = filters.query()

    async def go() -> list[ReleaseSummary]:
        async with releases(settings) as api:
            return await api.list(filters, limit=limit)

    rows = common.run(go())
    if json_:
        common.print_json(rows)
        return
    if not rows:
        common.console.print(f"no releases match ({query})", markup=False)
        return
    common.console.print(render.list_table(rows), soft_wrap=False)


@app.command()
def amend(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = typer.Option(..., "--as", help="The submitter."),
    evidence: list[str] = typer.Option(
        [], "--evidence", help="ID=PATH or ID=URI@SHA256: replace an evidence item."
    ),
    new_evidence: list[str] = typer.Option(
        [], "--new-evidence", help="KIND:ID=PATH or KIND:ID=URI@SHA256: add one."
    ),
    remove: list[str] = typer.Option([], "--remove-evidence", help="Evidence id to drop."),
    artifact: str = typer.Option(
        None, "--artifact", help="PATH or URI@SHA256 of the new artifact."
    ),
    note: str = typer.Option("", "--note", help="What changed and why."),
    key: Path = typer.Option(
        None,
        "--key",
        help="Ed25519 private key (PEM) to sign with (default: <keys dir>/<you>.pem).",
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Change evidence or the artifact. Approvals that covered a changed digest lapse."""
    settings = common.settings(ctx)

    async def go() -> UpdateResult:
        async with releases(settings, key) as api:
            current = await api.status(release_id)
            items = {e.id: e for e in current.spec.evidence}
            updates = []
            for value in evidence:
                item_id, location = _split(value, "--evidence", "ID=PATH")
                if item_id not in items:
                    raise InputError(
                        f"--evidence: release {release_id} has no evidence '{item_id}' (use --new-evidence)"
                    )
                uri, digest = _locate(location, "--evidence")
                updates.append(items[item_id].model_copy(update={"uri": uri, "sha256": digest}))
            for value in new_evidence:
                head, location = _split(value, "--new-evidence", "KIND:ID=PATH")
                kind, _, item_id = head.partition(":")
                if not item_id:
                    raise InputError(
                        "--new-evidence: expected KIND:ID=PATH, e.g. system_card:card-v2=card.md"
                    )
                uri, digest = _locate(location, "--new-evidence")
                try:
                    updates.append(
                        EvidenceRef(id=item_id, kind=EvidenceKind(kind), uri=uri, sha256=digest)
                    )
                except ValueError as err:
                    raise InputError(f"--new-evidence: {err}".splitlines()[0]) from err
            artifact_uri = artifact_sha = None
            if artifact:
                artifact_uri, artifact_sha = _locate(artifact, "--artifact")
            request = parse_request(
                AmendRequest,
                {
                    "by": as_,
                    "evidence": updates,
                    "remove_evidence": remove,
                    "artifact_uri": artifact_uri,
                    "artifact_sha256": artifact_sha,
                    "note": note,
                },
                "amend",
            )
            return await api.amend(release_id, request)

    result = common.run(go())
    render.show_result(result, json_)


@app.command("attest-authorship")
def attest_authorship(
    ctx: typer.Context,
    release_id: str = typer.Argument(...),
    as_: str = typer.Option(..., "--as", help="An author (for yourself) or a reviewer."),
    evidence: str = typer.Option(..., "--evidence", help="The evidence id."),
    author: list[str] = typer.Option(..., "--author", help="Who wrote it (repeat)."),
    comment: str = typer.Option("", "--comment", "-m"),
    key: Path = typer.Option(
        None,
        "--key",
        help="Ed25519 private key (PEM) to sign with (default: <keys dir>/<you>.pem).",
    ),
    json_: bool = common.JSON_OPTION,
) -> None:
    """Attest who wrote an evidence item, signed: an author for themselves, or a reviewer of a
    gate that covers it. Attested authors count for separation of duties."""
    settings = common.settings(ctx)
    request = parse_request(
        AuthorshipAttestation,
        {"by": as_, "evidence_id": evidence, "authors": author, "comment": comment},
        "attest_authorship",
    )

    async def go() -> UpdateResult:
        async with releases(settings, key) as api:
            return await api.attest_authorship(release_id, request)

    render.show_result(common.run(go()), json_)


def _split(value: str, option: str, shape: str) -> tuple[str, str]:
    head, sep, tail = value.partition("=")
    if not sep or not head or not tail:
        raise InputError(f"{option}: expected {shape}, got '{value}'")
    return head, tail


def _locate(location: str, option: str) -> tuple[str, str]:
    """A local file (hashed now) or ``URI@SHA256`` for something we cannot read."""
    if "@" in location and "://" in location:
        uri, _, digest = location.rpartition("@")
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise InputError(f"{option}: '{digest}' is not a sha256 (64 lower-case hex digits)")
        return uri, digest
    path = local_path(location) or Path(location)
    if not path.is_file():
        raise InputError(
            f"{option}: {location} is not a readable file (for remote evidence give URI@SHA256)"
        )
    resolved = path.resolve()
    return resolved.as_uri(), sha256_file(resolved)


@app.command()
def watch(
    ctx: typer.Context,
    release_id: str = typer.Argument(
        ..., help="Release id (the 'release-' prefix the Temporal UI shows is optional)."
    ),
    interval: float = typer.Option(
        0.5, "--interval", min=0.05, max=60.0, help="Seconds between polls of the release."
    ),
    timeout: float = typer.Option(
        None, "--timeout", min=0.0, help="Give up after this many seconds (exit code 124)."
    ),
    json_: bool = typer.Option(
        False, "--json", help="Write one JSON object per change (JSON lines) instead of text."
    ),
    until_awaiting: str = typer.Option(
        None,
        "--until-awaiting",
        metavar="ROLE_OR_PERSON",
        help="Stop (exit 0) as soon as the release waits for a decision from this role or person.",
    ),
) -> None:
    """Follow a release stage by stage until it ends.

    Exits 0 when the release launched, 1 when it was rejected or withdrawn, 124 on --timeout.
    With --until-awaiting: 0 once the release waits for that role or person, 1 if it ended first.
    """
    settings = common.settings(ctx)

    async def go() -> ReleaseStatus | None:
        async with releases(settings) as api:
            with WatchView(common.console, json_lines=json_) as view:
                return await follow_for(
                    api,
                    release_id,
                    view,
                    interval=interval,
                    limit=timeout,
                    until_awaiting=until_awaiting,
                )

    final = common.run(go())
    if final is None and not json_:
        common.err_console.print(f"still running after {timeout:g} s; stopped watching")
    if until_awaiting is not None and final is not None:
        if awaits(final, until_awaiting):
            raise typer.Exit(0)
        common.err_console.print(
            f"the release ended ({final.state.value}) before awaiting {until_awaiting}",
            markup=False,
        )
        raise typer.Exit(EXIT_STOPPED)
    raise typer.Exit(exit_code(final))
